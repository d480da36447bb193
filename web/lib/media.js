// @ts-check
// The media adapter: one interface, two implementations.
//
//   const media = await createMedia(config, { role: "candidate", name, selfView: videoElement });
//   media.onStatus((status) => hub.send("media.status", media.wire()));
//   hub.on("room.assign", (d) => media.assign(roomsOf(d)));
//   hub.on("token.refresh", (d) => media.refreshToken(d.room_id, d.hms_token));
//
// `SimulatorMedia` (here) talks to the 100ms simulator's media plane (`/hms-sim/media`, docs/simulator.md)
// and owns the camera through getUserMedia; `HmsMedia` (media-hms.js, loaded only when the hub says real
// 100ms is configured) drives the 100ms Web SDK. Both keep the newest token the hub pushed for each room and,
// when the room changes or the media connection is lost for good, leave and join again with it (contract
// §1.5). Every change of state is reported at once through `onStatus`.
//
// A proctor's media layer is also a witness (issue 12): `views` holds, for each of its rooms whose picture
// it knows, which users it sees publishing live video; `onViews` tells of every change. The proctor page
// reports it to the hub (`media.observed`), which holds a candidate's own claim of video against it.

export const RETRY_CAMERA_MS = 2000;
const HEALTH_MS = 5000;
/** How often a proctor's page looks at its rooms on the simulator (the SDK tells of changes by itself). */
export const OBSERVE_MS = 500;

/** Two room views (user_id -> sees live video) say the same. */
function sameView(a, b) {
  if (a === b) return true;
  if (!a || !b || a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** A room's view from the peers its media layer shows: user_id -> whether any of its peers has live video. */
export function viewOf(peers) {
  const seen = new Map();
  for (const { user_id, video } of peers) seen.set(user_id, Boolean(seen.get(user_id)) || video);
  return seen;
}

/** The rooms of a `room.assign` (a candidate's one room, or a proctor's list). */
export function roomsOf(data) {
  if (Array.isArray(data.rooms)) return data.rooms.map((r) => ({ room_id: r.room_id, hms_token: r.hms_token }));
  return [{ room_id: data.room_id, hms_token: data.hms_token }];
}

export class MediaBase {
  constructor({ role, name }) {
    this.role = role;
    this.name = name || "";
    this.tokens = new Map();
    this.listeners = new Set();
    this.status = {
      peer_id: null,
      room_id: null,
      joined: false,
      video: false,
      audio: false,
      error: null,
      camera: "off",
      recording: "unknown",
    };
    this.chain = Promise.resolve();
    /** @type {Map<string, Map<string, boolean>>} room_id -> (user_id -> sees live video); known rooms only */
    this.views = new Map();
    this.viewListeners = new Set();
  }

  onViews(fn) {
    this.viewListeners.add(fn);
    return () => this.viewListeners.delete(fn);
  }

  /** What this page sees of a room now (null: it cannot tell, e.g. not connected to it). */
  setView(roomId, view) {
    if (sameView(this.views.get(roomId) || null, view)) return;
    if (view) this.views.set(roomId, view);
    else this.views.delete(roomId);
    for (const fn of this.viewListeners) fn(this.views);
  }

  onStatus(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  update(patch) {
    let changed = false;
    for (const [k, v] of Object.entries(patch)) {
      if (this.status[k] !== v) {
        this.status[k] = v;
        changed = true;
      }
    }
    if (changed) for (const fn of this.listeners) fn({ ...this.status });
  }

  /** The `media.status` message data the hub expects. */
  wire() {
    const s = this.status;
    const data = { peer_id: s.peer_id, room_id: s.room_id, joined: s.joined, video: s.video, audio: s.audio };
    if (s.error) data.error = String(s.error).slice(0, 1000);
    return data;
  }

  refreshToken(roomId, token) {
    this.tokens.set(roomId, token);
  }

  /** Run media operations one at a time, in order (a room.assign may arrive while a join runs). */
  serial(fn) {
    this.chain = this.chain.then(fn).catch((err) => this.update({ error: err.message }));
    return this.chain;
  }
}

/** The camera through getUserMedia: notices a track that ends (device lost) and tries again. */
export class Camera {
  constructor(videoElement, onChange) {
    this.video = videoElement;
    this.onChange = onChange;
    this.stream = null;
    this.state = "off";
    this.error = null;
    this.timers = { retry: null, watch: null };
  }

  async start() {
    clearTimeout(this.timers.retry);
    this.timers.retry = null;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: false });
    } catch (err) {
      const denied = err.name === "NotAllowedError" || err.name === "SecurityError";
      this.set(denied ? "denied" : "unavailable", denied ? "camera permission refused" : err.message);
      if (!denied) this.retryLater();
      return;
    }
    this.stream = stream;
    if (this.video) this.video.srcObject = stream;
    const track = stream.getVideoTracks()[0];
    track.addEventListener("ended", () => this.lost(track));
    clearInterval(this.timers.watch);
    // Not every way a camera goes fires `ended` (a track stopped under us): look once a second too.
    this.timers.watch = setInterval(() => {
      if (track.readyState === "ended") this.lost(track);
    }, 1000);
    this.set("on", null);
  }

  lost(track) {
    if (!this.stream || !this.stream.getVideoTracks().includes(track)) return;
    clearInterval(this.timers.watch);
    for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    if (this.video) this.video.srcObject = null;
    this.set("ended", "the camera stopped (device lost?)");
    this.retryLater();
  }

  retryLater() {
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => this.start(), RETRY_CAMERA_MS);
  }

  stop() {
    clearTimeout(this.timers.retry);
    clearInterval(this.timers.watch);
    if (this.stream) for (const t of this.stream.getTracks()) t.stop();
    this.stream = null;
    this.set("off", null);
  }

  set(state, error) {
    this.state = state;
    this.error = error;
    this.onChange(state, error);
  }
}

class SimulatorError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The simulator's media plane: HTTP calls that stand for what the 100ms SDK does. */
export class SimulatorMedia extends MediaBase {
  constructor({ base, role, name, selfView = null }) {
    super({ role, name });
    this.base = base;
    this.peers = new Map(); // room_id -> peer_id
    this.wanted = [];
    this.camera = role === "candidate" ? new Camera(selfView, () => this.cameraChanged()) : null;
    this.health = setInterval(() => this.serial(() => this.check()), HEALTH_MS);
    this.looking = false;
    this.watch = role === "proctor" ? setInterval(() => this.look(), OBSERVE_MS) : null;
    globalThis.addEventListener("pagehide", () => this.leaveAll({ keepalive: true }));
  }

  /** A proctor's look at each of its rooms: who publishes a live video track (the SDK's remote peers). */
  async look() {
    if (this.looking) return;
    this.looking = true;
    try {
      for (const roomId of this.wanted) {
        const peerId = this.peers.get(roomId);
        const answer = peerId ? await this.call(`/peers/${peerId}/remote`).catch(() => null) : null;
        const peers = answer ? answer.peers || [] : null;
        const live = (p) => Object.values(p.tracks || {}).some((t) => t.type === "video" && !t.mute);
        this.setView(roomId, peers && viewOf(peers.map((p) => ({ user_id: p.user_id, video: live(p) }))));
      }
      for (const roomId of [...this.views.keys()]) if (!this.wanted.includes(roomId)) this.setView(roomId, null);
    } finally {
      this.looking = false;
    }
  }

  async call(path, body, { keepalive = false } = {}) {
    const response = await fetch(`${this.base}${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      keepalive,
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new SimulatorError(response.status, answer.message || `HTTP ${response.status}`);
    return answer;
  }

  startCamera() {
    return this.camera ? this.camera.start() : Promise.resolve();
  }

  /** The camera's stream while it is on (the page's own local recording takes it), else null. */
  localStream() {
    return this.camera && this.camera.state === "on" ? this.camera.stream : null;
  }

  cameraChanged() {
    this.update({ camera: this.camera.state, error: this.camera.error });
    this.serial(() => this.publish());
  }

  assign(rooms) {
    for (const r of rooms) this.tokens.set(r.room_id, r.hms_token);
    this.wanted = rooms.map((r) => r.room_id);
    return this.serial(() => this.converge());
  }

  async converge() {
    for (const [roomId, peerId] of [...this.peers]) {
      if (!this.wanted.includes(roomId)) {
        this.peers.delete(roomId);
        await this.call(`/peers/${peerId}/leave`, {}).catch(() => null);
      }
    }
    for (const roomId of this.wanted) {
      if (!this.peers.has(roomId)) await this.join(roomId);
    }
    this.report();
  }

  async join(roomId) {
    try {
      const peer = await this.call("/join", { token: this.tokens.get(roomId), user_name: this.name });
      this.peers.set(roomId, peer.peer_id);
      this.update({ error: null });
      await this.publish();
    } catch (err) {
      // A refused token (expired, say) waits for the hub's next push; the health check tries again.
      this.update({ error: `could not join the video room: ${err.message}` });
    }
  }

  async publish() {
    if (!this.camera) return;
    const peerId = this.peers.get(this.wanted[0]);
    if (!peerId) return;
    const video = this.camera.state === "on";
    try {
      const view = await this.call(`/peers/${peerId}/publish`, { video, audio: false });
      this.update({ video, recording: view.recording ? "on" : "off" });
    } catch (err) {
      await this.recover(this.wanted[0], err);
    }
    this.report();
  }

  /** The SDK's own reconnect (409: disconnected) or a fresh join when the peer is gone for good (410). */
  async recover(roomId, err) {
    const peerId = this.peers.get(roomId);
    if (err.status === 409 && peerId) {
      await this.call(`/peers/${peerId}/reconnect`, { token: this.tokens.get(roomId) }).catch(() => null);
      return;
    }
    if (err.status === 410 || err.status === 404) {
      this.peers.delete(roomId);
      await this.join(roomId);
      return;
    }
    this.update({ error: err.message });
  }

  async check() {
    for (const roomId of this.wanted) {
      const peerId = this.peers.get(roomId);
      if (!peerId) {
        await this.join(roomId);
        continue;
      }
      const view = await this.call(`/peers/${peerId}`).catch((err) => ({ state: "unknown", err }));
      if (view.state === "left") {
        this.peers.delete(roomId);
        await this.join(roomId);
      } else if (view.state === "disconnected") {
        await this.recover(roomId, { status: 409 });
      } else if (view.recording !== undefined && this.role === "candidate") {
        this.update({ recording: view.recording ? "on" : "off" });
      }
    }
    this.report();
  }

  report() {
    const roomId = this.wanted[0] || null;
    const joined = roomId != null && this.peers.has(roomId);
    this.update({
      room_id: roomId,
      peer_id: joined ? this.peers.get(roomId) : null,
      joined,
      video: joined && this.camera != null && this.camera.state === "on",
    });
  }

  async leaveAll({ keepalive = false } = {}) {
    clearInterval(this.health);
    clearInterval(this.watch);
    this.wanted = [];
    for (const roomId of [...this.views.keys()]) this.setView(roomId, null);
    const peers = [...this.peers.values()];
    this.peers.clear();
    await Promise.all(peers.map((id) => this.call(`/peers/${id}/leave`, {}, { keepalive }).catch(() => null)));
    if (this.camera) this.camera.stop();
    this.update({ joined: false, video: false, peer_id: null });
  }

  /** A proctor's tile: the simulator carries no pictures, so the tile shows the state the hub reports. */
  attach() {
    return null;
  }
}

/** The adapter for the hub's configuration (`/client-config.json`). */
export async function createMedia(config, options) {
  if (config.media === "100ms") {
    const { HmsMedia } = await import("./media-hms.js");
    return new HmsMedia(options);
  }
  return new SimulatorMedia({ base: config.media_base, ...options });
}
