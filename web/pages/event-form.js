// @ts-check
// The event create/edit form: checked here with the hub's own rules (server/api/validation.py) and, for
// what only the hub knows (an id already taken), the hub's answer shown at its field.
import { setText } from "../lib/dom.js";

const INTEGER_FIELDS = {
  room_size: [1, 100],
  proctors_per_room: [1, 10],
  proctor_load: [1, 1000],
  expected_candidates: [0, 100000],
  token_ttl_s: [10, 86400],
};
export const FIELDS = ["event_id", "name", ...Object.keys(INTEGER_FIELDS), "recording", "starts_at", "ends_at"];
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
  return { body, errors };
}

export function showErrors(form, errors) {
  for (const field of FIELDS) {
    const box = errorOf(form, field);
    const control = input(form, field);
    const message = errors[field] || "";
    if (box) setText(box, message);
    if (control) control.setAttribute("aria-invalid", String(Boolean(message)));
  }
  const first = FIELDS.find((f) => errors[f]);
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
  showErrors(form, {});
}
