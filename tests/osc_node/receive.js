// Receives OSC over UDP with the npm `osc` package and prints each message as one JSON line:
// {"address": "...", "args": [...]} (bundles unpacked in order). Prints {"port": N} once listening.
const osc = require("osc");

const port = new osc.UDPPort({ localAddress: "127.0.0.1", localPort: 0, metadata: false });
port.on("ready", () => console.log(JSON.stringify({ port: port.socket.address().port })));
port.on("message", (message) => console.log(JSON.stringify({ address: message.address, args: message.args })));
port.on("error", (error) => console.error(String(error)));
port.open();
