// The piposer console: polls /api/state, shows the live MJPEG, sends commands, edits rule zones.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let csrf = "", since = 0, paused = false;
let zones = [], deleted = [], selected = null, dirty = false, mode = "select", drag = null, draft = null;
let served = "";  // the zones as last served, to notice a change made elsewhere (a reload)

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function say(text) { $("message").textContent = text; }

async function command(body) {
  try { await post("/api/command", body); } catch (error) { say(error.message); }
}

// -- state ------------------------------------------------------------------------------------

async function poll() {
  try {
    const response = await fetch(`/api/state?since=${since}`);
    if (response.status === 401) { location.href = "/login"; return; }
    show(await response.json());
  } catch (error) { /* the appliance restarting: try again */ }
  setTimeout(poll, 1000);
}

function show(state) {
  csrf = state.csrf;
  const s = state.stats || {};
  $("people").textContent = s.people ?? "-";
  $("fps").textContent = s.fps ?? "-";
  $("latency").textContent = s.latency_ms ? `${s.latency_ms.p50} ms` : "-";
  $("frames").textContent = s.frames ?? "-";
  $("model").textContent = s.model ?? "-";
  $("active").textContent = state.active.join(", ") || "none";
  $("stages").replaceChildren(...Object.entries(s.stages_ms || {}).map(([name, ms]) => {
    const row = document.createElement("tr");
    row.innerHTML = "<th></th><td></td>";
    row.cells[0].textContent = name; row.cells[1].textContent = ms;
    return row;
  }));
  const source = s.source || {};
  pill("source", source.connected, source.connected === undefined ? "source" : `source ${source.connected ? "up" : "down"}`);
  const mqtt = (s.sinks || {}).MqttSink;
  pill("mqtt", mqtt && mqtt.connected, mqtt ? `MQTT ${mqtt.connected ? "connected" : "disconnected"}` : "MQTT off");
  paused = !!s.paused;
  $("pause").textContent = paused ? "Resume" : "Pause";
  for (const event of state.events) {
    since = Math.max(since, event.n);
    const item = document.createElement("li");
    const { n, time, kind, ...fields } = event;
    item.textContent = `${new Date(time * 1000).toLocaleTimeString()} ${kind} ${JSON.stringify(fields)}`;
    $("events").prepend(item);
    if (kind === "command_failed") say(fields.error);
  }
  while ($("events").children.length > 50) $("events").lastChild.remove();
  fillSelect("zone-keypoint", state.keypoints);
  fillSelect("zone-output", ["", ...state.outputs]);
  if (!dirty && JSON.stringify(state.zones) !== served) {
    served = JSON.stringify(state.zones);
    zones = state.zones.map((z) => ({ ...z, name: z.rule }));
    deleted = []; selected = null;
  }
  draw();
  $("editor").hidden = !state.editable;
}

function pill(id, ok, text) { $(id).textContent = text; $(id).classList.toggle("ok", !!ok); }

function fillSelect(id, values) {
  const select = $(id);
  if (select.options.length === values.length) return;
  select.replaceChildren(...values.map((v) => new Option(v || "(none)", v)));
}

// -- the zone editor ----------------------------------------------------------------------------

const svg = $("zones");

function size() { const r = svg.getBoundingClientRect(); return [r.width, r.height]; }

function at(event) {
  const r = svg.getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((event.clientX - r.left) / r.width), clamp((event.clientY - r.top) / r.height)];
}

function corners(zone) {
  if (zone.kind === "polygon") return zone.points;
  const [x0, y0, x1, y1] = zone.points;
  return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
}

function draw() {
  const [w, h] = size();
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.replaceChildren();
  const shapes = draft ? [...zones, draft] : zones;
  for (const zone of shapes) {
    const points = corners(zone);
    const shape = document.createElementNS(SVG, "polygon");
    shape.setAttribute("points", points.map(([x, y]) => `${x * w},${y * h}`).join(" "));
    shape.classList.toggle("selected", zone === selected);
    shape.dataset.rule = zone.name;
    shape.addEventListener("pointerdown", (e) => grab(e, zone, -1));
    svg.append(shape);
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", Math.min(...points.map((p) => p[0])) * w + 4);
    label.setAttribute("y", Math.min(...points.map((p) => p[1])) * h - 4);
    label.textContent = zone.name;
    svg.append(label);
    if (zone !== selected) continue;
    points.forEach(([x, y], i) => {
      const handle = document.createElementNS(SVG, "circle");
      handle.setAttribute("cx", x * w); handle.setAttribute("cy", y * h); handle.setAttribute("r", 9);
      handle.addEventListener("pointerdown", (e) => grab(e, zone, i));
      svg.append(handle);
    });
  }
  $("selected").hidden = !selected;
  if (selected) {
    $("zone-name").value = selected.name;
    $("zone-keypoint").value = selected.keypoint;
    $("zone-output-label").hidden = selected.rule !== null;
    $("zone-output").value = selected.output || "";
  }
  $("save").disabled = !dirty;
}

function changed() { dirty = true; draw(); }

function grab(event, zone, corner) {
  if (mode !== "select") return;
  event.stopPropagation();
  selected = zone;
  drag = { zone, corner, from: at(event), points: JSON.parse(JSON.stringify(zone.points)) };
  svg.setPointerCapture(event.pointerId);
  draw();
}

function moveTo(event) {
  const [x, y] = at(event);
  const { zone, corner, from, points } = drag;
  if (corner < 0) {  // the whole zone, kept inside the image
    const pts = zone.kind === "rect" ? [[points[0], points[1]], [points[2], points[3]]] : points;
    const dx = Math.min(Math.max(x - from[0], -Math.min(...pts.map((p) => p[0]))), 1 - Math.max(...pts.map((p) => p[0])));
    const dy = Math.min(Math.max(y - from[1], -Math.min(...pts.map((p) => p[1]))), 1 - Math.max(...pts.map((p) => p[1])));
    zone.points = zone.kind === "rect" ? [points[0] + dx, points[1] + dy, points[2] + dx, points[3] + dy]
      : points.map(([px, py]) => [px + dx, py + dy]);
  } else if (zone.kind === "rect") {  // a corner: the opposite one stays put
    const [ox, oy] = corners({ kind: "rect", points })[(corner + 2) % 4];
    zone.points = [Math.min(x, ox), Math.min(y, oy), Math.max(x, ox), Math.max(y, oy)];
  } else {
    zone.points[corner] = [x, y];
  }
  changed();
}

function newName() {
  for (let i = 1; ; i++) if (!zones.some((z) => z.name === `zone_${i}`)) return `zone_${i}`;
}

svg.addEventListener("pointerdown", (event) => {
  const p = at(event);
  if (mode === "rect") {
    draft = { rule: null, path: null, name: newName(), keypoint: "nose", kind: "rect", points: [...p, ...p], start: p, output: "" };
    svg.setPointerCapture(event.pointerId);
  } else if (mode === "polygon") {
    draft = draft || { rule: null, path: null, name: newName(), keypoint: "nose", kind: "polygon", points: [], output: "" };
    draft.points.push(p);
    $("finish").hidden = draft.points.length < 3;
  } else {
    selected = null;
  }
  draw();
});

svg.addEventListener("pointermove", (event) => {
  if (drag) moveTo(event);
  else if (mode === "rect" && draft && draft.start) {
    const [x, y] = at(event), [sx, sy] = draft.start;
    draft.points = [Math.min(x, sx), Math.min(y, sy), Math.max(x, sx), Math.max(y, sy)];
    draw();
  }
});

svg.addEventListener("pointerup", () => {
  drag = null;
  if (mode === "rect" && draft) {
    const [x0, y0, x1, y1] = draft.points;
    if (x1 - x0 > 0.01 && y1 - y0 > 0.01) { delete draft.start; zones.push(draft); selected = draft; dirty = true; }
    draft = null;
    setMode("select");
  }
});

$("finish").addEventListener("click", () => {
  zones.push(draft); selected = draft; draft = null; dirty = true;
  setMode("select");
});

function setMode(name) {
  mode = name;
  if (name !== "polygon") { draft = null; $("finish").hidden = true; }
  for (const m of ["select", "rect", "polygon"]) $(`mode-${m}`).classList.toggle("on", m === name);
  draw();
}
for (const m of ["select", "rect", "polygon"]) $(`mode-${m}`).addEventListener("click", () => setMode(m));

$("zone-name").addEventListener("input", (e) => { selected.name = e.target.value; changed(); });
$("zone-keypoint").addEventListener("change", (e) => { selected.keypoint = e.target.value; changed(); });
$("zone-output").addEventListener("change", (e) => { selected.output = e.target.value; changed(); });
$("delete").addEventListener("click", () => {
  if (selected.rule !== null) deleted.push({ rule: selected.rule, path: selected.path });
  zones = zones.filter((z) => z !== selected);
  selected = null;
  changed();
});

$("save").addEventListener("click", async () => {
  say("saving...");
  try {
    const body = { zones: zones.map(({ rule, path, name, keypoint, kind, points, output }) =>
      ({ rule, path, name, keypoint, kind, points, output })), deleted };
    const reply = await post("/api/zones", body);
    say(`saved to ${reply.saved}; reloading`);
    dirty = false; selected = null;
    $("save").disabled = true;
  } catch (error) { say(error.message); }
});

// -- controls -------------------------------------------------------------------------------------

$("pause").addEventListener("click", () => command({ command: paused ? "resume" : "pause" }));
$("reload").addEventListener("click", () => command({ command: "reload" }));
$("logout").addEventListener("click", async () => {
  await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": csrf } });
  location.href = "/login";
});
$("thresholds").addEventListener("submit", (event) => {
  event.preventDefault();
  const body = { command: "thresholds" };
  for (const key of ["keypoint_threshold", "pose_threshold"]) if ($(key).value !== "") body[key] = Number($(key).value);
  command(body);
});
$("teach").addEventListener("submit", async (event) => {
  event.preventDefault();
  const label = $("teach-label").value;
  try {
    const reply = await post("/api/poses", { label });
    $("teach-message").textContent = `recorded '${reply.label}': ${reply.examples} examples`;
  } catch (error) { $("teach-message").textContent = error.message; }
});
window.addEventListener("resize", draw);
$("live").addEventListener("load", draw, { once: true });
poll();
