// @ts-check
// The candidate page: camera, connection and recording state in plain words, the proctor's warnings, a
// reconnecting banner that never blocks the exam, and Finish. Embeddable beside a host's exam page
// (postMessage events for the host: connected, warning, finished, session.expiring).
//
// Backfill (issue 14, E15): while sitting, the page records its own camera in segments kept on this
// computer (local-recorder.js, segment-store.js) and uploads those the hub asks for
// (backfill-uploader.js). After Finish it stays connected while it holds video, shows a progress bar and
// "keep this page open" while uploads are pending, and a later visit of the same link (token still valid)
// goes straight to that screen and finishes them.
import { Api, clientConfig } from "../lib/api.js";
import { Backfill } from "../lib/backfill-uploader.js";
import { $, duration, el, setState, setText, showConnection, time } from "../lib/dom.js";
import { LocalRecorder } from "../lib/local-recorder.js";
import { createMedia, roomsOf } from "../lib/media.js";
import { openStore, persist } from "../lib/segment-store.js";
import { claims, fragment, Host, pageHub, sessionToken } from "../lib/session.js";

const CAMERA_WORDS = {
  on: "On",
  off: "Off",
  ended: "Lost: trying again…",
  denied: "Permission refused",
  unavailable: "Not available: trying again…",
};
const CAMERA_HELP = {
  denied: "The browser refused the camera. Allow it in the address bar, then press the button.",
  ended: "The camera stopped. Check that it is plugged in; we try again every few seconds.",
  unavailable: "No camera could be opened. Close other apps that use it; we try again every few seconds.",
};

const host = new Host();
const token = await sessionToken(host);
const me = claims(token);
setText($("#name"), me.name || me.sub || "");
const config = await clientConfig();
const media = await createMedia(config, { role: "candidate", name: me.name || me.sub, selfView: $("#self") });
const hub = pageHub(host, token);
showConnection(hub, $("#conn"), $("#conn-detail"));

// The local copy's settings (client-config `backfill`; the tests shorten segments): off with enabled:false.
const local = { enabled: true, segment_s: 30, video_bps: 500000, upload_bps: 1000000, max_bytes: 0, ...(config.backfill || {}) };
let lastSent = "";
let announced = false;
const finishedKey = `proctorhub.finished:${me.event}:${me.sub}`;
let finished = readFinished();
const store = local.enabled ? await openStore(me.event, me.sub, { prefer: fragment().get("store") || "opfs" }) : null;
const backfill = new Backfill({
  store,
  api: new Api(token),
  event: me.event,
  candidate: me.sub,
  capBps: finished ? 0 : local.upload_bps,
  maxBytes: local.max_bytes,
  onChange: () => showLocal(),
});
await backfill.init();
if (store) persist();
const recorder = new LocalRecorder({
  segmentMs: local.segment_s * 1000,
  videoBps: local.video_bps,
  onSegment: (piece) => backfill.add(piece),
  onError: (message) => setText($("#f-local"), message),
});
host.onToken((fresh) => (backfill.api.token = fresh));

function readFinished() {
  try {
    return globalThis.localStorage.getItem(finishedKey) === "1";
  } catch {
    return false;
  }
}

function wire() {
  return store ? { ...media.wire(), local: backfill.local() } : media.wire();
}

function sendMedia() {
  if (finished) return;
  const data = wire();
  const text = JSON.stringify(data);
  if (text !== lastSent && hub.send("media.status", data) != null) lastSent = text;
}

/** The held copy in the facts, `local` to the hub, and the Finish screen's progress. */
function showLocal() {
  const held = backfill.local();
  setText($("#f-local"), !store ? "Not kept (this browser cannot)" : held.held_s ? `${duration(held.held_s * 1000)}${held.quota_short ? " (disk nearly full)" : ""}` : "None");
  sendMedia();
  if (!finished) return;
  const { total, sent, pending } = backfill.progress();
  $("#uploading").hidden = pending === 0;
  $("#finished").hidden = pending > 0;
  $("#upload-progress").max = Math.max(1, total);
  $("#upload-progress").value = sent;
  setText($("#upload-words"), `${Math.round((100 * sent) / Math.max(1, total))} % (${(sent / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB)${backfill.error ? `: retrying (${backfill.error})` : ""}`);
}

hub.on("state", ({ state }) => {
  const words = { online: "Connected", reconnecting: "Reconnecting", connecting: "Connecting", stopped: "Disconnected" };
  setText($("#f-connection"), words[state] || state);
  setState($("#f-connection"), state);
  $("#banner").hidden = finished || !(state === "reconnecting" || (state === "connecting" && announced));
  if (state === "online") {
    lastSent = ""; // the hub's view is rebuilt on every connect: tell it again
    sendMedia();
    if (!announced) host.post("connected");
    announced = true;
  }
});

hub.on("backfill.request", (data) => backfill.request(data));
hub.on("backfill.cancel", (data) => backfill.cancel(data));
hub.on("backfill.release", (data) => backfill.release(data));

hub.on("room.assign", (data) => {
  media.assign(roomsOf(data));
  setText($("#f-room"), "Assigned");
  setState($("#f-room"), "on");
});
hub.on("token.refresh", (data) => media.refreshToken(data.room_id, data.hms_token));
hub.on("warning", (data) => {
  $("#no-warnings").hidden = true;
  $("#warnings").prepend(el("li", {}, el("strong", { text: `${time(Date.now())} ${data.from}: ` }), data.text));
  host.post("warning", { from: data.from, text: data.text });
});
hub.on("error", (data, message) => {
  if (message.re != null) return;
  if (data.code === "event_unknown") {
    setText($("#f-room"), "The exam is not open yet");
    hub.reconnect("the exam is not open on the hub yet", 3000);
  } else if (data.code === "room_unavailable") {
    setText($("#f-room"), "Waiting for a video room…");
  }
});

media.onStatus((status) => {
  if (finished) return; // the facts say "finished" now (showFinished)
  setText($("#f-camera"), CAMERA_WORDS[status.camera] || status.camera);
  setState($("#f-camera"), status.camera);
  setText($("#camera-help"), CAMERA_HELP[status.camera] || "");
  $("#camera-retry").hidden = status.camera !== "denied";
  recorder.setStream(status.camera === "on" ? media.localStream() : null);
  if (status.joined) setText($("#f-room"), "Joined");
  const recording = { on: "On", off: "Off", unknown: status.joined ? "Starting" : "Not started" };
  setText($("#f-recording"), recording[status.recording]);
  setState($("#f-recording"), status.recording);
  sendMedia();
});

$("#camera-retry").addEventListener("click", () => media.startCamera());
$("#finish").addEventListener("click", () => $("#finish-dialog").showModal());
$("#finish-dialog").addEventListener("close", async () => {
  if ($("#finish-dialog").returnValue !== "finish") return;
  hub.send("finish", {});
  finished = true;
  try {
    globalThis.localStorage.setItem(finishedKey, "1");
  } catch {
    // storage disabled: a later visit starts as a fresh one
  }
  // Leave the room first, then stop recording: the last segment (kept too, the hub may still ask for
  // it) then reaches past the moment the 100ms peer left.
  await media.leaveAll();
  await recorder.stop();
  await backfill.chain;
  showFinished();
  host.post("finished");
});

/** After Finish: no camera, no room; the socket stays while this page holds video the hub may ask for. */
function showFinished() {
  backfill.finishing();
  for (const [id, words] of [["#f-camera", "Off"], ["#f-room", "Left"], ["#f-recording", "Stopped"]]) {
    setText($(id), words);
    setState($(id), "off");
  }
  if (!store || !backfill.segments.length) hub.stop("you finished the exam");
  $("#finish").hidden = true;
  $("#banner").hidden = true;
  showLocal();
}

if (finished) showFinished();
else media.startCamera();
if (hub.state !== "stopped") hub.start();
