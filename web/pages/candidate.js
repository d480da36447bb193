// @ts-check
// The candidate page: camera, connection and recording state in plain words, the proctor's warnings, a
// reconnecting banner that never blocks the exam, and Finish. Embeddable beside a host's exam page
// (postMessage events for the host: connected, warning, finished, session.expiring).
import { clientConfig } from "../lib/api.js";
import { $, el, setState, setText, showConnection, time } from "../lib/dom.js";
import { createMedia, roomsOf } from "../lib/media.js";
import { claims, Host, pageHub, sessionToken } from "../lib/session.js";

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
const media = await createMedia(await clientConfig(), { role: "candidate", name: me.name || me.sub, selfView: $("#self") });
const hub = pageHub(host, token);
showConnection(hub, $("#conn"), $("#conn-detail"));

let lastSent = "";
let announced = false;
let finished = false;

function sendMedia() {
  const wire = JSON.stringify(media.wire());
  if (wire !== lastSent && hub.send("media.status", media.wire()) != null) lastSent = wire;
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
  setText($("#f-camera"), CAMERA_WORDS[status.camera] || status.camera);
  setState($("#f-camera"), status.camera);
  setText($("#camera-help"), CAMERA_HELP[status.camera] || "");
  $("#camera-retry").hidden = status.camera !== "denied";
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
  finished = true;
  hub.send("finish", {});
  await media.leaveAll();
  hub.stop("you finished the exam");
  $("#finish").hidden = true;
  $("#finished").hidden = false;
  $("#banner").hidden = true;
  host.post("finished");
});

media.startCamera();
hub.start();
