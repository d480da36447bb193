// @ts-check
// The LTI launch page: a short pre-exam check (the camera shows the candidate, who confirms), then the
// candidate page opens in its own window (it stays open for the exam) and this window sends
// LtiStartAssessment to the learning platform: a JWT the hub signs (never this page), posted as a form
// with one field `JWT`.
import { $, setState, setText } from "../lib/dom.js";
import { claims } from "../lib/session.js";

const meta = /** @type {HTMLMetaElement | null} */ (document.querySelector('meta[name="ph-session"]'));
const token = meta ? meta.content : "";
const me = token ? claims(token) : null;
const preview = /** @type {HTMLVideoElement} */ ($("#preview"));
const confirmBox = /** @type {HTMLInputElement} */ ($("#confirm"));
const startButton = /** @type {HTMLButtonElement} */ ($("#start"));
const cameraState = $("#camera-state");
const retry = /** @type {HTMLButtonElement} */ ($("#camera-retry"));
const status = $("#status");
/** @type {MediaStream | null} */
let stream = null;

if (me) setText($("#name"), me.name || me.sub || "");

async function openCamera() {
  retry.hidden = true;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    preview.srcObject = stream;
    setState(cameraState, "on");
    setText(cameraState, "Your camera is on. Check that your face is in the picture.");
    confirmBox.disabled = false;
  } catch (error) {
    const denied = error instanceof DOMException && error.name === "NotAllowedError";
    setState(cameraState, denied ? "denied" : "unavailable");
    setText(
      cameraState,
      denied
        ? "The browser refused the camera. Allow it in the address bar, then press the button."
        : "No camera could be opened. Close other apps that use it, then press the button.",
    );
    retry.hidden = false;
  }
}

/** Post LtiStartAssessment to the platform as an auto-submitted form (the page leaves for the exam). */
function postToPlatform(/** @type {string} */ url, /** @type {string} */ jwt) {
  const form = document.createElement("form");
  form.method = "POST";
  form.action = url;
  const field = document.createElement("input");
  field.type = "hidden";
  field.name = "JWT";
  field.value = jwt;
  form.append(field);
  document.body.append(form);
  form.submit();
}

async function start() {
  const popup = window.open(`/candidate#token=${encodeURIComponent(token)}`, "proctorhub-candidate");
  $("#popup-blocked").hidden = popup != null;
  if (popup == null) return;
  startButton.disabled = true;
  setText(status, "Starting your exam…");
  const response = await fetch("/lti/start-assessment", {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ verified: confirmBox.checked }),
  }).catch(() => null);
  if (response == null || !response.ok) {
    setText(status, "The exam could not be started. Press the button to try again.");
    startButton.disabled = false;
    return;
  }
  const { url, jwt } = await response.json();
  if (stream) for (const track of stream.getTracks()) track.stop();
  postToPlatform(url, jwt);
}

confirmBox.addEventListener("change", () => {
  startButton.disabled = !confirmBox.checked;
});
startButton.addEventListener("click", () => void start());
retry.addEventListener("click", () => void openCamera());
if (!token) {
  setText(status, "This page needs a launch from your course. Open the exam again from there.");
} else {
  void openCamera();
}
