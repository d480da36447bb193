// @ts-check
// One proctor tile per candidate: built once, then only the fields that changed are touched, so a stream
// of `candidate.status` for 50 candidates costs a few text and attribute writes each.
import { el, setState, setText } from "../lib/dom.js";

const PRESENCE = { online: "Online", reconnecting: "Reconnecting", offline: "Offline", finished: "Finished" };
const TRISTATE = { on: "On", off: "Off", unknown: "Unknown" };

export function needsAttention(status, openAlerts) {
  if (status.presence === "finished") return openAlerts > 0;
  return (
    status.presence !== "online" || status.video !== "on" || status.recording === "off" || openAlerts > 0
  );
}

export class Tile {
  constructor(candidateId, { onWarn, onFlag, onControl, media }) {
    this.id = candidateId;
    const fact = (label) => {
      const dd = el("dd", { data: { field: label.toLowerCase().replace(" ", "-") } });
      return [el("dt", { text: label }), dd];
    };
    const [presenceDt, presence] = fact("Presence");
    const [videoDt, video] = fact("Video");
    const [recordingDt, recording] = fact("Recording");
    const [alertsDt, alerts] = fact("Open alerts");
    const [flagsDt, flags] = fact("Flags");
    this.fields = { presence, video, recording, alerts, flags };
    this.name = el("h3");
    this.mediaBox = el("div", { class: "media" });
    const attached = media ? media.attach(candidateId, el("video", { autoplay: true, muted: true, playsInline: true })) : null;
    this.placeholder = attached ? null : el("span");
    this.mediaBox.append(attached || this.placeholder);
    this.alertList = el("ul", { class: "tile-alerts" });
    this.warnButton = el("button", { type: "button", class: "warn", text: "Warn", on: { click: () => onWarn(this) } });
    this.flagButton = el("button", { type: "button", class: "flag", text: "Flag", on: { click: () => onFlag(this) } });
    // LTI candidates: pause, resume or terminate the attempt on the learning platform (ACS)
    this.controlButton = onControl
      ? el("button", { type: "button", class: "control", text: "Exam…", on: { click: () => onControl(this) } })
      : null;
    this.node = el(
      "li",
      { class: "tile", data: { candidate: candidateId }, tabIndex: -1 },
      this.mediaBox,
      this.name,
      el("dl", { class: "facts" }, presenceDt, presence, videoDt, video, recordingDt, recording, alertsDt, alerts, flagsDt, flags),
      this.alertList,
      el("div", { class: "actions" }, this.warnButton, this.flagButton, this.controlButton),
    );
    this.status = null;
    this.openAlerts = [];
  }

  get label() {
    return (this.status && this.status.name) || this.id;
  }

  /** Apply a CandidateStatus; true if the tile's "needs attention" changed. */
  update(status) {
    this.status = status;
    const f = this.fields;
    setText(this.name, status.name || status.candidate_id);
    this.name.title = status.name || status.candidate_id;
    setText(f.presence, PRESENCE[status.presence] || status.presence);
    setState(f.presence, status.presence);
    setText(f.video, TRISTATE[status.video] || status.video);
    setState(f.video, status.video);
    setText(f.recording, TRISTATE[status.recording] || status.recording);
    setState(f.recording, status.recording);
    setText(f.flags, status.flags);
    this.mediaBox.dataset.video = status.video;
    if (this.placeholder) setText(this.placeholder, status.video === "on" ? "Camera on (simulated media)" : "No video");
    this.node.dataset.presence = status.presence;
    return this.refresh();
  }

  setAlerts(open) {
    this.openAlerts = open;
    this.alertList.replaceChildren(...open.map((a) => el("li", { text: a.text })));
    return this.refresh();
  }

  refresh() {
    const count = Math.max(this.openAlerts.length, (this.status && this.status.open_alerts) || 0);
    setText(this.fields.alerts, count);
    setState(this.fields.alerts, count ? "bad" : "ok");
    const alertState = this.openAlerts.length ? "open" : "none";
    if (this.node.dataset.alert !== alertState) this.node.dataset.alert = alertState;
    const attention = String(this.status ? needsAttention(this.status, count) : true);
    const changed = this.node.dataset.attention !== attention;
    if (changed) this.node.dataset.attention = attention;
    return changed;
  }
}
