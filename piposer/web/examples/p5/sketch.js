// Live skeletons from piposer's WebSocket stream, in ml5.js poseNet's result shape: a sketch written for
// ml5's webcam poseNet only swaps `poseNet.on('pose', ...)` for the socket below. Served by piposer at
// /examples/p5; copy it next to your own sketch and put your Pi's address in the URL.
let poses = [];

function setup() {
  createCanvas(windowWidth, windowHeight);
  const url = `ws://${location.host}/poses?format=ml5`;
  const connect = () => {
    const socket = new WebSocket(url);
    socket.onmessage = (event) => { poses = JSON.parse(event.data); };
    socket.onclose = () => setTimeout(connect, 1000);  // the appliance restarted: try again
  };
  connect();
}

function draw() {
  background(0);
  for (const { pose, skeleton } of poses) {
    stroke(0, 255, 0);
    strokeWeight(4);
    for (const [a, b] of skeleton) line(a.position.x, a.position.y, b.position.x, b.position.y);
    noStroke();
    fill(255, 0, 255);
    for (const k of pose.keypoints) if (k.score > 0.3) circle(k.position.x, k.position.y, 12);
  }
}

function windowResized() {
  resizeCanvas(windowWidth, windowHeight);
}
