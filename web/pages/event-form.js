// @ts-check
// The event create/edit form: checked here with the hub's own rules (server/api/validation.py) and, for
// what only the hub knows (an id already taken), the hub's answer shown at its field.
import { CAUSE_WORDS, KIND_WORDS } from "../lib/alerts.js";
import { el, setText } from "../lib/dom.js";

const INTEGER_FIELDS = {
  room_size: [1, 100],
  proctors_per_room: [1, 10],
  proctor_load: [1, 1000],
  expected_candidates: [0, 100000],
  token_ttl_s: [10, 86400],
};
export const FIELDS = ["event_id", "name", ...Object.keys(INTEGER_FIELDS), "recording", "starts_at", "ends_at", "events_url", "lti_flag_gap_s", "lti"];

// The `lti` field (server/api/lti_config.py): its choices and the defaults of an event without one.
const LTI_CHOICES = {
  flag_alerts: ["recording.missing", "recording.failed", "video.gap", "video.disputed"],
  flag_proctor_severities: ["low", "medium", "high"],
  extra_time_causes: ["peer_left_100ms", "socket_lost", "peer_left", "video_unpublished"],
};
const LTI_DEFAULTS = {
  flag_alerts: ["recording.missing", "recording.failed", "video.gap"],
  flag_proctor_severities: ["high"],
  extra_time_causes: ["peer_left_100ms"],
};
const LTI_BOXES = { flag_alerts: "#lti-flag-alerts", flag_proctor_severities: "#lti-severities", extra_time_causes: "#lti-causes" };
const CHOICE_WORDS = { ...KIND_WORDS, ...CAUSE_WORDS, low: "low", medium: "medium", high: "high" };
const URL_LIST = /^https?:\/\/[^\s,]+(\s*,\s*https?:\/\/[^\s,]+)*$/;
const EVENT_ID = /^[A-Za-z0-9._-]{1,128}$/;
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

const input = (form, name) => form.querySelector(`[name="${name}"]`);
const errorOf = (form, name) => form.querySelector(`#e-${name}`);

/** The form's values as an API body, and the errors found: {body, errors: {field: message}}. */
export function read(form, { creating }) {
  const body = {};
  const errors = {};
  if (creating) {
    const id = input(form, "event_id").value.trim();
    if (!EVENT_ID.test(id)) errors.event_id = "1-128 characters of A-Z a-z 0-9 . _ -";
    body.event_id = id;
  }
  const name = input(form, "name").value;
  if (!name.trim() || name.length > 200) errors.name = "1-200 characters";
  body.name = name;
  for (const [field, [min, max]] of Object.entries(INTEGER_FIELDS)) {
    const raw = input(form, field).value.trim();
    const value = Number(raw);
    if (raw === "" || !Number.isInteger(value)) errors[field] = "a whole number";
    else if (value < min || value > max) errors[field] = `must be between ${min} and ${max}`;
    body[field] = value;
  }
  body.recording = input(form, "recording").checked;
  for (const field of ["starts_at", "ends_at"]) {
    const raw = input(form, field).value.trim();
    if (raw && !ISO_WITH_ZONE.test(raw)) errors[field] = "a date and time with a time zone, e.g. 2026-06-01T09:00:00Z";
    body[field] = raw || null;
  }
  if (body.starts_at && body.ends_at && !errors.starts_at && !errors.ends_at) {
    if (Date.parse(body.ends_at) <= Date.parse(body.starts_at)) errors.ends_at = "must be after the start";
  }
  const urls = input(form, "events_url").value.trim();
  if (urls && !URL_LIST.test(urls)) errors.events_url = "comma-separated http(s) URLs";
  body.events_url = input(form, "events_off").checked ? "" : urls || null;
  const lti = readLti(form, errors);
  if (lti !== undefined) body.lti = lti;
  return { body, errors };
}

/** The `lti` policy the fieldset shows, or undefined when it is hidden or unchanged (an event that
 * never chose one keeps following the hub's defaults). */
function readLti(form, errors) {
  const box = form.querySelector("#lti-policy");
  if (box.hidden) return undefined;
  const lti = {};
  for (const [member, selector] of Object.entries(LTI_BOXES)) {
    lti[member] = [...box.querySelectorAll(`${selector} input:checked`)].map((i) => i.value);
  }
  const raw = input(form, "lti_flag_gap_s").value.trim();
  if (raw) {
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0.5 || value > 86400) errors.lti_flag_gap_s = "a number of seconds from 0.5 to 86400";
    lti.flag_gap_s = value;
  }
  return JSON.stringify(lti) === box.dataset.shown ? undefined : lti;
}

function fillLti(form, event) {
  const box = form.querySelector("#lti-policy");
  box.hidden = !(event && String(event.event_id).startsWith("lti-"));
  const policy = { ...LTI_DEFAULTS, ...((event && event.lti) || {}) };
  for (const [member, selector] of Object.entries(LTI_BOXES)) {
    const choices = LTI_CHOICES[member].map((value) =>
      el("label", { class: "inline" }, el("input", { type: "checkbox", name: `lti_${member}`, value, checked: policy[member].includes(value) }), ` ${CHOICE_WORDS[value] || value}`),
    );
    box.querySelector(selector).replaceChildren(...choices);
  }
  input(form, "lti_flag_gap_s").value = policy.flag_gap_s ?? "";
  box.dataset.shown = "";
  if (!box.hidden) box.dataset.shown = event.lti ? "" : JSON.stringify(readLti(form, {}));
}

export function showErrors(form, errors) {
  for (const field of FIELDS) {
    const box = errorOf(form, field);
    const control = input(form, field);
    const message = errors[field] || "";
    if (box) setText(box, message);
    if (control) control.setAttribute("aria-invalid", String(Boolean(message)));
  }
  const first = FIELDS.find((f) => errors[f] && input(form, f));
  if (first) input(form, first).focus();
}

export function fill(form, event) {
  for (const field of FIELDS) {
    const control = input(form, field);
    if (!control) continue;
    if (control.type === "checkbox") control.checked = Boolean(event ? event[field] : true);
    else control.value = event ? (event[field] ?? "") : "";
  }
  if (!event) {
    for (const [field, value] of Object.entries({ room_size: 10, proctors_per_room: 1, proctor_load: 10, expected_candidates: 0, token_ttl_s: 3600 })) {
      input(form, field).value = String(value);
    }
  }
  input(form, "event_id").readOnly = Boolean(event);
  input(form, "events_off").checked = Boolean(event) && event.events_url === "";
  fillLti(form, event);
  showErrors(form, {});
}
