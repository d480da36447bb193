// @ts-check
// The alerts feed shared by the proctor and admin pages: `alert` open/close applied live, newest first,
// with a visible cue (the panel flashes, the tab title counts open alerts) and an optional audible one.
import { duration, el, setText, time } from "./dom.js";

export const KIND_WORDS = {
  "video.gap": "No video",
  "video.disputed": "Video disputed",
  "recording.gap": "Not recorded",
  "recording.failed": "Recording failed",
  "recording.missing": "Recording missing",
  "room.unwatched": "Room unwatched",
  "proctor.shortage": "Too few proctors",
};
export const CAUSE_WORDS = {
  socket_lost: "connection lost",
  peer_left: "left the video room",
  peer_left_100ms: "left the video room, says 100ms",
  observers_see_no_video: "the page says video, proctors see none",
  video_unpublished: "camera off",
  recording_failed: "recording failed",
  recording_missing: "recording never arrived",
};
const KEEP = 200;

/** A short beep through WebAudio (no media file); off until the user turns it on (autoplay rules). */
export class Cue {
  constructor() {
    this.context = null;
    this.enabled = false;
  }

  toggle() {
    this.enabled = !this.enabled;
    if (this.enabled && !this.context) this.context = new AudioContext();
    return this.enabled;
  }

  beep() {
    if (!this.enabled || !this.context) return;
    const ctx = this.context;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.15, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, ctx.currentTime + 0.25);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.25);
  }
}

export function describe(alert, nameOf) {
  const kind = KIND_WORDS[alert.kind] || alert.kind;
  const who = alert.candidate_id ? nameOf(alert.candidate_id) : "";
  const detail = alert.detail || {};
  const cause = CAUSE_WORDS[detail.cause] || detail.cause || "";
  let extra = "";
  if (alert.kind === "proctor.shortage" && detail.rooms_unwatched != null) {
    extra = `${detail.proctors} proctors for ${detail.rooms_needing} rooms, ${detail.rooms_unwatched} unwatched`;
  }
  return { kind, who, cause: cause || extra };
}

export class AlertsPanel {
  /**
   * @param {object} options
   * @param {HTMLElement} options.panel the panel (shown while alerts are open)
   * @param {HTMLElement} options.list where the alerts are listed
   * @param {HTMLElement} options.count the count of open alerts
   * @param {(candidateId: string) => string} options.nameOf a candidate's display name
   * @param {Cue | null} [options.cue] the sound played for a new alert
   * @param {string} [options.title] the page title the count is put in front of
   * @param {(alert: object) => void} [options.onChange] called with each alert that changed
   */
  constructor({ panel, list, count, nameOf, cue = null, title = document.title, onChange = () => {} }) {
    this.panel = panel;
    this.list = list;
    this.count = count;
    this.nameOf = nameOf;
    this.cue = cue;
    this.baseTitle = title;
    this.onChange = onChange;
    this.alerts = new Map(); // alert_id -> {alert, row, state}
  }

  /** Apply one `alert` message (`quiet`: from a list read back, no cue). */
  apply(alert, { quiet = false } = {}) {
    let entry = this.alerts.get(alert.alert_id);
    const opened = alert.state === "open" && (!entry || entry.state !== "open");
    if (!entry) {
      entry = { row: el("li", { data: { alertId: alert.alert_id } }) };
      this.alerts.set(alert.alert_id, entry);
      this.list.prepend(entry.row);
      this.trim();
    }
    entry.alert = alert;
    entry.state = alert.state === "open" ? "open" : "closed";
    this.render(entry);
    if (opened && !quiet) {
      this.panel.classList.remove("flash");
      void this.panel.offsetWidth; // restart the animation
      this.panel.classList.add("flash");
      if (this.cue) this.cue.beep();
    }
    this.changed(alert);
  }

  render(entry) {
    const { alert, row, state } = entry;
    const { kind, who, cause } = describe(alert, this.nameOf);
    row.dataset.alertState = state;
    row.dataset.kind = alert.kind;
    row.replaceChildren(
      el("strong", { text: who ? `${kind}: ${who}` : kind }),
      cause ? el("span", { text: ` (${cause})` }) : "",
      el("br"),
      el("small", { class: "muted", text: this.when(alert, state) }),
    );
  }

  when(alert, state) {
    if (state === "stale") return `since ${time(alert.started_at)}, not confirmed since the reconnect`;
    if (state === "open") return `open since ${time(alert.started_at)}`;
    const end = alert.ended_at;
    const lasted = end ? `, lasted ${duration(end - alert.started_at)}` : "";
    return `closed ${end ? `at ${time(end)}` : ""}${lasted}`;
  }

  trim() {
    const rows = [...this.alerts.entries()];
    for (const [id, entry] of rows.slice(0, Math.max(0, rows.length - KEEP))) {
      if (entry.state === "open") continue;
      entry.row.remove();
      this.alerts.delete(id);
    }
  }

  /** After a reconnect the hub re-sends what is open; until then what we had is not confirmed. */
  markStale() {
    for (const entry of this.alerts.values()) {
      if (entry.state !== "open") continue;
      entry.state = "stale";
      this.render(entry);
      this.changed(entry.alert);
    }
  }

  /** The hub's list (`GET .../alerts`, open first, then newest first): what it does not list as open is
   * closed. `mine` picks the alerts this page shows (a proctor: its candidates'). */
  reconcile(alerts, mine = () => true) {
    const shown = alerts.filter(mine);
    const listed = new Map(shown.map((a) => [a.alert_id, a]));
    const order = [...shown].sort((a, b) => a.started_at - b.started_at);
    for (const alert of order) this.apply(alert, { quiet: true });
    for (const entry of this.alerts.values()) {
      if (entry.state === "stale" && !listed.has(entry.alert.alert_id)) {
        entry.state = "closed";
        this.render(entry);
        this.changed(entry.alert);
      }
    }
  }

  openFor(candidateId) {
    return [...this.alerts.values()].filter(
      (e) => e.state !== "closed" && e.alert.candidate_id === candidateId,
    );
  }

  changed(alert) {
    const open = [...this.alerts.values()].filter((e) => e.state !== "closed").length;
    setText(this.count, open ? String(open) : "");
    document.title = open ? `(${open}) ${this.baseTitle}` : this.baseTitle;
    this.onChange(alert);
  }
}
