// @ts-check
// The admin console: events (list, create, edit), live `event.stats`, rooms with their candidates and
// proctors, the event's alerts, rebalance, session links for testing, and the report.
import { AlertsPanel } from "../lib/alerts.js";
import { Api, paths } from "../lib/api.js";
import { $, el, setText, showConnection } from "../lib/dom.js";
import { claims, Host, pageHub, sessionToken } from "../lib/session.js";
import { fill, read, showErrors } from "./event-form.js";
import { downloadCsv, reportTable } from "./report.js";

const STATS = [
  ["online", "Online"],
  ["reconnecting", "Reconnecting"],
  ["offline", "Offline"],
  ["finished", "Finished"],
  ["proctors", "Proctors"],
  ["rooms", "Rooms"],
  ["unwatched_rooms", "Unwatched rooms"],
  ["open_alerts", "Open alerts"],
  ["tokens_refreshed", "Tokens refreshed"],
];
const ALARMS = new Set(["unwatched_rooms", "open_alerts"]);

const host = new Host();
const token = await sessionToken(host);
const me = claims(token);
const allEvents = me.event === "*";
const api = new Api(token);
const hub = pageHub(host, token);
showConnection(hub, $("#conn"), $("#conn-detail"));
setText($("#who"), `${me.name || me.sub} · ${allEvents ? "all events" : `event ${me.event}`}`);

let selected = allEvents ? null : me.event;
let editing = null; // the event being edited, null: creating
const names = new Map();
const proctors = new Map();
const subscribed = new Set();
const form = $("#event-form");
const alerts = new AlertsPanel({
  panel: $("#alerts-panel"),
  list: $("#alerts"),
  count: $("#alert-count"),
  nameOf: (id) => names.get(id) || id,
});

// ------------------------------------------------------------------ events

async function loadEvents() {
  try {
    const { events } = await api.get(paths.events());
    const rows = events.map((e) =>
      el(
        "tr",
        { class: e.event_id === selected ? "selected" : "", data: { event: e.event_id } },
        el("td", { text: e.event_id }),
        el("td", { text: e.name }),
        el("td", { text: e.counts.online }),
        el("td", { text: e.counts.proctors }),
        el("td", {}, el("button", { type: "button", text: "Open", on: { click: () => select(e) } })),
      ),
    );
    $("#events tbody").replaceChildren(...rows);
    setText($("#events-note"), events.length ? "" : "No events yet.");
    if (selected && !editing) {
      const current = events.find((e) => e.event_id === selected);
      if (current) edit(current);
    }
  } catch (err) {
    setText($("#events-note"), `Could not list events: ${err.message}`);
  }
}

function edit(event) {
  editing = event;
  fill(form, event);
  setText($("#form-title"), event ? `Edit ${event.event_id}` : "New event");
  setText($("#save-event"), event ? "Save changes" : "Create event");
  setText($("#form-status"), "");
}

function select(event) {
  selected = event.event_id;
  edit(event);
  for (const row of $("#events tbody").children) row.classList.toggle("selected", row.dataset.event === selected);
  setText($("#live-event"), selected);
  if (allEvents && !subscribed.has(selected) && hub.send("subscribe", { event_id: selected }) != null) {
    subscribed.add(selected);
  }
  loadRooms();
  loadAlerts();
  $("#report").replaceChildren();
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const creating = !editing;
  const { body, errors } = read(form, { creating });
  showErrors(form, errors);
  if (Object.keys(errors).length) {
    setText($("#form-status"), "Please correct the fields marked above.");
    return;
  }
  try {
    const saved = creating ? await api.post(paths.events(), body) : await api.patch(paths.event(editing.event_id), body);
    select(saved);
    setText($("#form-status"), creating ? `Event ${saved.event_id} created.` : `Event ${saved.event_id} saved.`);
    loadEvents();
  } catch (err) {
    // "lti.flag_gap_s: ..." is shown at its own input, any other member of `lti` at the fieldset
    const named = err.field ? err.field.replace(".", "_") : err.code === "exists" ? "event_id" : null;
    const field = named && !form.querySelector(`#e-${named}`) && named.startsWith("lti_") ? "lti" : named;
    if (field && form.querySelector(`#e-${field}`)) {
      showErrors(form, { [field]: err.field ? err.message.slice(err.field.length + 1).trim() : err.message });
    }
    setText($("#form-status"), `Not saved: ${err.message}`);
  }
});
$("#new-event").addEventListener("click", () => edit(null));

// ------------------------------------------------------------------ live

function showStats(stats) {
  if (stats.event_id && stats.event_id !== selected) return;
  $("#stats").replaceChildren(
    ...STATS.map(([key, label]) =>
      el("div", { data: { stat: key, alarm: ALARMS.has(key) && stats[key] > 0 } }, el("dt", { text: label }), el("dd", { text: stats[key] ?? 0 })),
    ),
  );
  scheduleRooms();
}

let roomsTimer = null;
function scheduleRooms() {
  clearTimeout(roomsTimer);
  roomsTimer = setTimeout(loadRooms, 500);
}

async function loadRooms() {
  if (!selected) return;
  try {
    const allocation = await api.get(paths.rooms(selected));
    const rows = allocation.rooms.filter((r) => r.open || r.candidates.length).map((r) => {
      const unwatched = r.candidates.length > 0 && !r.proctors.some((p) => (proctors.get(p) || "online") !== "offline");
      const who = (ids, map) => ids.map((id) => map(id)).join(", ") || "none";
      return el(
        "tr",
        { class: unwatched ? "alarm" : "", data: { room: r.room_id } },
        el("td", { text: `${r.room_name}${unwatched ? " (unwatched)" : ""}${r.open ? "" : " (closed)"}` }),
        el("td", { text: who(r.candidates, (id) => names.get(id) || id) }),
        el("td", { text: who(r.proctors, (id) => `${id}${proctors.has(id) ? ` (${proctors.get(id)})` : ""}`) }),
      );
    });
    $("#rooms tbody").replaceChildren(...rows);
    const shortage = allocation.shortage;
    $("#shortage").hidden = !shortage;
    if (shortage) {
      setText($("#shortage"), `Too few proctors: ${shortage.proctors_present ?? shortage.proctors ?? "?"} for ${shortage.rooms_needing} rooms; ${shortage.rooms_unwatched} unwatched.`);
    }
    setText($("#rooms-note"), rows.length ? "" : "No rooms yet.");
  } catch (err) {
    setText($("#rooms-note"), `Could not load rooms: ${err.message}`);
  }
}

async function loadAlerts() {
  try {
    const answer = await api.get(paths.alerts(selected));
    alerts.reconcile(answer.alerts || []);
    setText($("#alerts-note"), "");
  } catch (err) {
    setText($("#alerts-note"), err.status === 404 ? "Alerts appear here as they happen." : `Could not load alerts: ${err.message}`);
  }
}

hub.on("event.stats", showStats);
hub.on("candidate.status", (data) => {
  if (data.name) names.set(data.candidate_id, data.name);
  scheduleRooms();
});
hub.on("proctor.status", (data) => {
  proctors.set(data.user_id, data.presence);
  scheduleRooms();
});
hub.on("alert", (data) => {
  alerts.apply(data);
  if (data.kind === "proctor.shortage") scheduleRooms();
});
hub.on("state", ({ state }) => {
  if (state !== "online") return;
  subscribed.clear();
  if (allEvents && selected && hub.send("subscribe", { event_id: selected }) != null) subscribed.add(selected);
  if (selected) loadRooms();
});

$("#rebalance").addEventListener("click", async () => {
  if (!selected) return;
  setText($("#rooms-note"), "Rebalancing…");
  try {
    await api.post(paths.rebalance(selected));
    setText($("#rooms-note"), "Rebalanced.");
    loadRooms();
  } catch (err) {
    setText($("#rooms-note"), `Rebalance failed: ${err.message}`);
  }
});
$("#refresh-rooms").addEventListener("click", loadRooms);

// ------------------------------------------------------------------ links and report

$("#link-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { user_id: $("#l-user_id").value.trim(), role: $("#l-role").value };
  if ($("#l-name").value.trim()) body.name = $("#l-name").value.trim();
  setText($("#le-user_id"), body.user_id ? "" : "required");
  setText($("#le-name"), "");
  if (!selected || !body.user_id) {
    setText($("#link-status"), selected ? "" : "Open an event first.");
    return;
  }
  try {
    const minted = await api.post(paths.sessions(selected), body);
    const page = body.role === "admin" ? "admin" : body.role;
    const link = `${location.origin}/${page}#token=${minted.token}`;
    $("#link-out").value = link;
    $("#link-out").hidden = false;
    $("#link-open").href = link;
    $("#link-open").hidden = false;
    setText($("#link-status"), `Link for ${body.user_id} (${body.role}), valid until ${new Date(minted.expires_at * 1000).toLocaleString()}.`);
  } catch (err) {
    if (err.field) setText($(`#le-${err.field}`) || $("#link-status"), err.message);
    setText($("#link-status"), `No link: ${err.message}`);
  }
});

$("#load-report").addEventListener("click", async () => {
  if (!selected) return setText($("#report-status"), "Open an event first.");
  try {
    const report = await api.get(paths.report(selected));
    $("#report").replaceChildren(reportTable(report));
    setText($("#report-status"), `Report of ${selected}, ${(report.candidates || []).length} candidates.`);
  } catch (err) {
    setText($("#report-status"), `No report: ${err.message}`);
  }
});
$("#download-report").addEventListener("click", async () => {
  if (!selected) return setText($("#report-status"), "Open an event first.");
  try {
    await downloadCsv(api, selected);
    setText($("#report-status"), `Downloaded report-${selected}.csv.`);
  } catch (err) {
    setText($("#report-status"), `No report: ${err.message}`);
  }
});

if (selected) setText($("#live-event"), selected);
edit(null);
hub.start();
await loadEvents();
if (selected) {
  loadRooms();
  loadAlerts();
}
