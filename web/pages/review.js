// @ts-check
// Review of one candidate: the timeline drawn as bars (present, in room, video, recorded) with gaps and
// flags on it, and the recording segments played in place (presigned S3 URLs or the app's own archive).
// Segments the candidate's own page uploaded to fill a hole (issue 14, E15: kind `backfill`) are drawn on
// their own timeline row and marked in the list; a click on any segment's bar plays it where it is.
import { Api, paths } from "../lib/api.js";
import { CAUSE_WORDS, KIND_WORDS } from "../lib/alerts.js";
import { $, duration, el, setText, showConnection, time } from "../lib/dom.js";
import { claims, fragment, Host, pageHub, sessionToken } from "../lib/session.js";

const ROWS = [
  ["present", "Present"],
  ["in_room", "In room"],
  ["video", "Video"],
  ["recorded", "Recorded"],
  ["backfilled", "Backfilled"],
];
const isBackfill = (segment) => segment.kind === "backfill";
let shown = { from: 0, to: 0 };
/** @type {any[]} */
let segments = [];

const host = new Host();
const token = await sessionToken(host);
const me = claims(token);
const api = new Api(token);
const hub = pageHub(host, token);
showConnection(hub, $("#conn"), $("#conn-detail"));
setText($("#who"), `${me.name || me.sub} (${me.role})`);
const names = new Map();
const params = fragment();
$("#event").value = params.get("event") || (me.event !== "*" ? me.event : "");
const eventId = () => $("#event").value.trim();
let wanted = params.get("candidate") || "";

async function loadCandidates() {
  if (!eventId()) return;
  try {
    const allocation = await api.get(paths.rooms(eventId()));
    const ids = [...new Set(allocation.rooms.flatMap((r) => r.candidates))].sort();
    if (wanted && !ids.includes(wanted)) ids.unshift(wanted);
    const options = ids.map((id) => el("option", { value: id, text: names.get(id) ? `${names.get(id)} (${id})` : id }));
    $("#candidate").replaceChildren(el("option", { value: "", text: "choose…" }), ...options);
    $("#candidate").value = wanted;
  } catch (err) {
    setText($("#timeline-note"), `Could not list candidates: ${err.message}`);
  }
}

function span(start, end, from, to) {
  const width = Math.max(1, to - from);
  const left = ((Math.max(start, from) - from) / width) * 100;
  const right = ((Math.min(end ?? to, to) - from) / width) * 100;
  const bar = el("div", { class: end == null ? "bar-seg open-end" : "bar-seg" });
  bar.style.left = `${left}%`;
  bar.style.width = `${Math.max(0.4, right - left)}%`;
  return bar;
}

function drawTimeline(t) {
  const starts = [
    ...Object.values(t.intervals).flatMap((list) => list.map((i) => i[0])),
    ...t.gaps.map((g) => g.started_at),
    ...t.flags.map((f) => f.ts),
  ];
  const to = t.now;
  const from = starts.length ? Math.min(...starts) : to - 60000;
  const rows = [];
  shown = { from, to };
  for (const [key, label] of ROWS) {
    if (!(key in t.intervals)) continue; // a hub before E15 has no backfilled row
    const track = el("div", { class: "track", data: { row: key } });
    for (const [start, end] of t.intervals[key] || []) {
      const bar = span(start, end, from, to);
      bar.title = `${label}: ${time(start)} – ${end == null ? "now" : time(end)}`;
      track.append(bar);
    }
    rows.push(el("div", { text: label }), track);
  }
  const gaps = el("div", { class: "track gaps", data: { row: "gaps" } });
  for (const gap of t.gaps) {
    const bar = span(gap.started_at, gap.ended_at, from, to);
    const kind = KIND_WORDS[gap.kind] || gap.kind;
    bar.title = `${kind} (${CAUSE_WORDS[gap.cause] || gap.cause}) ${time(gap.started_at)} – ${gap.ended_at == null ? "open" : time(gap.ended_at)}`;
    bar.dataset.gap = gap.alert_id;
    gaps.append(bar);
  }
  const flags = el("div", { class: "track flags", data: { row: "flags" } });
  for (const flag of t.flags) {
    const mark = el("button", {
      type: "button",
      class: "flag-mark",
      title: `${time(flag.ts)} ${flag.severity}: ${flag.note} (${flag.by})`,
      data: { severity: flag.severity, flag: flag.flag_id },
      attrs: { "aria-label": `flag at ${time(flag.ts)}, ${flag.severity}: ${flag.note}` },
      on: { click: () => document.getElementById(`flag-${flag.flag_id}`)?.focus() },
    });
    mark.style.left = `${((flag.ts - from) / Math.max(1, to - from)) * 100}%`;
    flags.append(mark);
  }
  rows.push(el("div", { text: "Gaps" }), gaps, el("div", { text: "Flags" }), flags);
  rows.push(el("div", { text: "Videos" }), el("div", { class: "track videos", data: { row: "videos" }, id: "video-track" }));
  $("#timeline").replaceChildren(...rows);
  drawVideoTrack();
  $("#axis").replaceChildren(el("span", { text: time(from) }), el("span", { text: `${duration(to - from)} shown` }), el("span", { text: time(to) }));
  $("#flags").replaceChildren(
    ...t.flags.map((f) =>
      el("li", { id: `flag-${f.flag_id}`, tabIndex: -1, data: { severity: f.severity } }, el("strong", { text: `${time(f.ts)} ${f.severity}` }), ` ${f.by}: `, f.note),
    ),
  );
}

const ACTION_WORDS = { flag: "Flag", pause: "Pause", resume: "Resume", terminate: "Terminate", update: "Extra time" };
const STATE_WORDS = { done: "answered", pending: "not answered yet, will be sent again", failed: "failed" };

/** The candidate's LTI Assessment Control calls (timeline.acs), oldest first; hidden when there are none. */
function drawAcs(timeline) {
  const calls = timeline.acs || [];
  $("#acs-panel").hidden = calls.length === 0;
  const lines = calls.map((c) => {
    const body = c.body || {};
    const what = [ACTION_WORDS[c.action] || c.action];
    if (body.extra_time != null) what.push(`${body.extra_time} s`);
    if (body.reason_code) what.push(body.reason_code);
    const said = c.answer && c.answer.status ? `, the platform says: ${c.answer.status}` : "";
    const total = c.answer && c.answer.extra_time != null ? ` (extra time in all: ${c.answer.extra_time} s)` : "";
    const error = c.error ? ` (${c.error})` : "";
    return el(
      "li",
      { data: { acs: c.call_id, action: c.action, state: c.state } },
      el("strong", { text: `${time(c.created_at * 1000)} ${what.join(" · ")}` }),
      ` by ${c.by === "policy" ? "the event's policy" : c.by}: ${STATE_WORDS[c.state] || c.state}${said}${total}${error}`,
      body.reason_msg ? el("span", { class: "muted", text: ` “${body.reason_msg}”` }) : null,
    );
  });
  $("#acs").replaceChildren(...lines);
}

const RECORDING_WORDS = { recorded: "recorded", failed: "failed", missing: "missing", pending: "not arrived yet" };

/** What the monitor knows of each recording (timeline.recordings): the ones not (yet) in the archive. */
function drawRecordingStates(timeline) {
  const lines = (timeline.recordings || [])
    .filter((r) => r.status !== "recorded")
    .map((r) =>
      el("li", { data: { recording: r.status } }, `${time(r.started_at)}: ${RECORDING_WORDS[r.status] || r.status}`),
    );
  $("#recording-states").replaceChildren(...lines);
}

/** Each archived segment as a bar on the timeline's Videos row: a click plays it in the list below. */
function drawVideoTrack() {
  const track = $("#video-track");
  if (!track) return;
  const { from, to } = shown;
  const bars = segments.map((s, i) => {
    const bar = span(s.started_at, s.ended_at, from, to);
    const what = isBackfill(s) ? "Backfilled video (from the candidate's computer)" : "Recorded video";
    bar.classList.add("video-seg");
    bar.dataset.kind = isBackfill(s) ? "backfill" : "hms";
    bar.title = `${what}: ${time(s.started_at)} – ${time(s.ended_at)}`;
    bar.setAttribute("role", "button");
    bar.setAttribute("aria-label", `play ${what.toLowerCase()} from ${time(s.started_at)}`);
    bar.tabIndex = 0;
    const play = () => {
      const video = /** @type {HTMLVideoElement | null} */ (document.getElementById(`segment-${i}`));
      if (!video) return;
      video.scrollIntoView({ block: "nearest" });
      video.play().catch(() => null);
    };
    bar.addEventListener("click", play);
    bar.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") play();
    });
    return bar;
  });
  track.replaceChildren(...bars);
}

function drawSegments(answer) {
  segments = [...(answer.segments || [])].sort((a, b) => a.started_at - b.started_at);
  const items = segments.map((s, i) =>
    el(
      "li",
      { class: isBackfill(s) ? "card backfill" : "card", data: { segment: s.key, kind: isBackfill(s) ? "backfill" : "hms" } },
      el("strong", { text: `${time(s.started_at)} – ${time(s.ended_at)}` }),
      isBackfill(s) ? el("span", { class: "badge", text: " Backfill: from the candidate's computer" }) : null,
      el("span", { class: "muted", text: ` ${duration(s.duration_s * 1000)}, ${Math.round(s.size / 1024)} KiB` }),
      el("video", { id: `segment-${i}`, controls: true, preload: "metadata", src: s.url }),
    ),
  );
  $("#segments").replaceChildren(...items);
  drawVideoTrack();
  setText($("#recordings-note"), items.length ? "" : "No recordings yet.");
}

async function load() {
  const candidate = $("#candidate").value;
  wanted = candidate;
  if (!candidate || !eventId()) return;
  let timeline = null;
  try {
    timeline = await api.get(paths.timeline(eventId(), candidate));
    names.set(candidate, timeline.name || candidate);
    setText($("#timeline-name"), `of ${timeline.name || candidate}`);
    setText($("#timeline-note"), `Gaps shorter than ${timeline.threshold_s} s are not counted.`);
    drawTimeline(timeline);
    drawRecordingStates(timeline);
    drawAcs(timeline);
  } catch (err) {
    setText($("#timeline-note"), `No timeline: ${err.message}`);
  }
  const backfilled = timeline && (timeline.intervals.backfilled || []).length > 0;
  if (timeline && Array.isArray(timeline.recordings) && !backfilled && !timeline.recordings.some((r) => r.status === "recorded")) {
    // Nothing archived yet: the monitor says so, no need to ask the archive (it would answer 404).
    segments = [];
    drawVideoTrack();
    $("#segments").replaceChildren();
    setText($("#recordings-note"), "No recordings yet.");
    return;
  }
  try {
    drawSegments(await api.get(paths.recordings(eventId(), candidate)));
  } catch (err) {
    segments = [];
    $("#segments").replaceChildren();
    drawVideoTrack();
    setText($("#recordings-note"), err.status === 404 ? "No recordings yet." : `No recordings: ${err.message}`);
  }
}

let reloadTimer = null;
const reloadSoon = () => {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(load, 300);
};
hub.on("flag.added", (data) => {
  if (data.candidate_id === wanted) reloadSoon();
});
hub.on("alert", (data) => {
  if (data.candidate_id === wanted) reloadSoon();
});
hub.on("candidate.status", (data) => {
  if (data.name) names.set(data.candidate_id, data.name);
});
$("#candidate").addEventListener("change", load);
$("#event").addEventListener("change", loadCandidates);
$("#reload").addEventListener("click", () => loadCandidates().then(load));

hub.start();
await loadCandidates();
if (wanted) load();
