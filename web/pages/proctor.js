// @ts-check
// The proctor dashboard: a live grid of the candidates this proctor watches (`roster`, `candidate.status`),
// the alerts feed, flag and warn from a tile, and reassignments announced. `#bench` in the fragment adds a
// performance measure per status (message received -> tile updated) for load_tests/benches/page_bench.py.
import { AlertsPanel, Cue, describe } from "../lib/alerts.js";
import { Api, clientConfig, paths } from "../lib/api.js";
import { $, announce, setText, showConnection } from "../lib/dom.js";
import { createMedia, roomsOf } from "../lib/media.js";
import { claims, fragment, Host, pageHub, sessionToken } from "../lib/session.js";
import { Tile } from "./tiles.js";

const host = new Host();
const token = await sessionToken(host);
const me = claims(token);
const bench = fragment().has("bench");
setText($("#who"), `${me.name || me.sub} · event ${me.event}`);
const media = await createMedia(await clientConfig(), { role: "proctor", name: me.name || me.sub });
const hub = pageHub(host, token);
const api = new Api(token);
showConnection(hub, $("#conn"), $("#conn-detail"));

const grid = $("#grid");
const tiles = new Map();
const roomOf = new Map(); // candidate_id -> its room, as the hub last said
const observed = new Map(); // candidate_id -> the media.observed video last sent (true / false)
const names = new Map();
const pending = new Map(); // message id -> what it was, to say which action an `error` refuses
let myRooms = new Set();
let wasOnline = false;
let reconnected = false;
const cue = new Cue();
const log = (text) => announce($("#announcements"), text);
const nameOf = (id) => names.get(id) || id;

const alerts = new AlertsPanel({
  panel: $("#alerts-panel"),
  list: $("#alerts"),
  count: $("#alert-count"),
  nameOf,
  cue,
  onChange: (alert) => {
    const tile = alert.candidate_id && tiles.get(alert.candidate_id);
    if (tile) tile.setAlerts(alerts.openFor(tile.id).map((e) => ({ text: describe(e.alert, nameOf).kind })));
    counts();
  },
});

function counts() {
  const attention = [...tiles.values()].filter((t) => t.node.dataset.attention === "true").length;
  setText($("#count"), tiles.size ? `${tiles.size} watched, ${attention} need attention` : "");
  $("#empty").hidden = tiles.size > 0;
}

function tileFor(id) {
  let tile = tiles.get(id);
  if (!tile) {
    tile = new Tile(id, { onWarn: openWarn, onFlag: openFlag, onControl: launchedByLti ? openControl : null, media });
    tiles.set(id, tile);
    grid.append(tile.node);
    tile.setAlerts(alerts.openFor(id).map((e) => ({ text: describe(e.alert, nameOf).kind })));
  }
  return tile;
}

function removeTile(id) {
  const tile = tiles.get(id);
  if (!tile) return;
  tile.node.remove();
  tiles.delete(id);
  observe();
}

/** Tell the hub what this page sees of each watched candidate's video (a second witness, issue 12): live
 * video or none, for candidates in a room whose picture our media layer knows; null when we stop knowing. */
function observe() {
  const views = media.views;
  const wanted = new Map();
  for (const id of tiles.keys()) {
    const view = views.get(roomOf.get(id));
    if (view) wanted.set(id, view.get(id) === true);
  }
  for (const id of [...observed.keys()]) if (!wanted.has(id)) report(id, null);
  for (const [id, video] of wanted) if (observed.get(id) !== video) report(id, video);
}

function report(id, video) {
  if (hub.send("media.observed", { candidate_id: id, video, at: Date.now() }) == null) return;
  if (video == null) observed.delete(id);
  else observed.set(id, video);
}

function applyStatus(status) {
  if (status.name) names.set(status.candidate_id, status.name);
  if (status.room_id !== undefined && roomOf.get(status.candidate_id) !== status.room_id) {
    roomOf.set(status.candidate_id, status.room_id);
    queueMicrotask(observe);
  }
  const mine = status.room_id != null && myRooms.has(status.room_id);
  if (!mine) {
    // Statuses of the whole event arrive; a candidate whose room we do not watch gets no tile.
    if (status.room_id != null) removeTile(status.candidate_id);
    if (!tiles.has(status.candidate_id)) return false;
  }
  return tileFor(status.candidate_id).update(status);
}

hub.on("room.assign", (data) => {
  const rooms = data.rooms || [];
  const before = myRooms;
  myRooms = new Set(rooms.map((r) => r.room_id));
  media.assign(roomsOf(data));
  if (data.reason === "rebalance") {
    const added = rooms.filter((r) => !before.has(r.room_id)).map((r) => r.room_name);
    const removed = [...before].filter((id) => !myRooms.has(id)).length;
    const parts = [`you now watch ${rooms.length} room${rooms.length === 1 ? "" : "s"}`];
    if (added.length) parts.push(`new: ${added.join(", ")}`);
    if (removed) parts.push(`${removed} handed to another proctor`);
    log(`Your rooms changed (rebalance): ${parts.join("; ")}.`);
  }
});

hub.on("roster", (data) => {
  const ids = new Set(data.candidates.map((c) => c.candidate_id));
  for (const id of [...tiles.keys()]) if (!ids.has(id)) removeTile(id);
  for (const status of data.candidates) {
    if (status.name) names.set(status.candidate_id, status.name);
    roomOf.set(status.candidate_id, status.room_id);
    tileFor(status.candidate_id).update(status);
  }
  observe();
  counts();
  if (reconnected) reconcileAlerts();
  reconnected = false;
});

hub.on("candidate.status", (data, message) => {
  if (applyStatus(data)) counts();
  if (bench) {
    performance.measure("tile-update", { start: message.rx });
    // ...and to the start of the frame that paints it (what the proctor can see).
    requestAnimationFrame(() => performance.measure("tile-frame", { start: message.rx }));
  }
});
hub.on("alert", (data) => alerts.apply(data));
hub.on("flag.added", (data) => {
  if (data.by === me.sub) log(`You flagged ${nameOf(data.candidate_id)} (${data.severity}): ${data.note}`);
});
hub.on("error", (data, message) => {
  const action = message.re != null ? pending.get(message.re) : null;
  if (action) {
    pending.delete(message.re);
    log(`${action} failed: ${data.message}`);
  } else if (data.code === "event_unknown") {
    hub.reconnect("the event is not open on the hub yet", 3000);
  }
});
hub.on("state", ({ state }) => {
  if (state !== "online") return;
  if (wasOnline) {
    alerts.markStale();
    reconnected = true;
  }
  wasOnline = true;
  hub.send("media.status", media.wire());
  observed.clear(); // the hub forgets a proctor's views when it goes: tell them again
  observe();
});
media.onStatus(() => hub.send("media.status", media.wire()));
media.onViews(() => observe());

async function reconcileAlerts() {
  try {
    const answer = await api.get(paths.alerts(me.event));
    alerts.reconcile(answer.alerts || [], (a) => a.candidate_id == null || tiles.has(a.candidate_id));
  } catch {
    // An older hub without the alerts list: what was open stays shown as not confirmed.
  }
}

let target = null;
/** Events made from an LTI launch (`lti-{platform}-{link}`): their attempts live on a learning platform. */
const launchedByLti = String(me.event || "").startsWith("lti-");
function openControl(tile) {
  target = tile;
  setText($("#acs-name"), tile.label);
  $("#acs-reason").value = "";
  $("#acs-action").value = "pause";
  $("#acs-dialog").showModal();
}
$("#acs-dialog").addEventListener("close", async () => {
  if ($("#acs-dialog").returnValue !== "send" || !target) return;
  const tile = target;
  const action = $("#acs-action").value;
  const body = { action, reason_code: "proctor", reason_msg: $("#acs-reason").value };
  try {
    const call = await api.post(paths.acs(me.event, tile.id), body);
    const answer = call.answer && call.answer.status ? ` (the platform says: ${call.answer.status})` : "";
    log(call.state === "done" ? `Platform: ${action} for ${tile.label} done${answer}.` : `Platform: ${action} for ${tile.label} is queued; it will be sent again.`);
  } catch (error) {
    log(`Platform: ${action} for ${tile.label} failed: ${error.message}`);
  }
  tile.node.focus();
});
function openWarn(tile) {
  target = tile;
  setText($("#warn-name"), tile.label);
  $("#warn-text").value = "";
  $("#warn-dialog").showModal();
}
function openFlag(tile) {
  target = tile;
  setText($("#flag-name"), tile.label);
  $("#flag-note").value = "";
  $("#flag-severity").value = "medium";
  $("#flag-dialog").showModal();
}
$("#warn-dialog").addEventListener("close", () => {
  if ($("#warn-dialog").returnValue !== "send" || !target) return;
  const id = hub.send("warn", { candidate_id: target.id, text: $("#warn-text").value });
  if (id == null) log(`Not connected: the warning to ${target.label} was not sent.`);
  else {
    pending.set(id, `Warning to ${target.label}`);
    log(`Warning sent to ${target.label}.`);
  }
  target.node.focus();
});
$("#flag-dialog").addEventListener("close", () => {
  if ($("#flag-dialog").returnValue !== "send" || !target) return;
  const data = { candidate_id: target.id, note: $("#flag-note").value, severity: $("#flag-severity").value };
  const id = hub.send("flag", data);
  if (id == null) log(`Not connected: the flag on ${target.label} was not sent.`);
  else pending.set(id, `Flag on ${target.label}`);
  target.node.focus();
});
$("#attention").addEventListener("change", (event) => grid.classList.toggle("attention-only", event.target.checked));
$("#sound").addEventListener("click", (event) => {
  const on = cue.toggle();
  event.target.setAttribute("aria-pressed", String(on));
  setText(event.target, `Sound: ${on ? "on" : "off"}`);
  if (on) cue.beep();
});

counts();
hub.start();
