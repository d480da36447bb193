// @ts-check
// The media adapter on the 100ms Web SDK (@100mslive/hms-video-store, pinned in web/package.json and
// bundled into web/vendor/ by web/vendor.mjs). Loaded by media.js only when the hub uses real 100ms.
//
// One HMSReactiveStore per room: a candidate has one room and publishes its camera; a proctor joins each of
// its rooms subscribe-only (camera and microphone muted) and attaches candidates' video tracks to tiles.
// The SDK reconnects by itself; when it gives up (a terminal error) or the room changes, we leave and join
// again with the newest token the hub pushed (contract §1.5).

import {
  HMSReactiveStore,
  selectIsConnectedToRoom,
  selectIsLocalVideoEnabled,
  selectIsPeerVideoEnabled,
  selectLocalPeer,
  selectLocalVideoTrackID,
  selectPeers,
  selectTracksMap,
} from "../vendor/hms-video-store.js";
import { MediaBase, viewOf } from "./media.js";

// 100ms error codes for capture devices: permission refused, no device, device in use.
const DENIED = new Set([3001]);
const UNAVAILABLE = new Set([3002, 3003, 3011]);

class RoomConnection {
  constructor() {
    this.hms = new HMSReactiveStore();
    this.hms.triggerOnSubscribe();
    this.actions = this.hms.getActions();
    this.store = this.hms.getStore();
    this.notifications = this.hms.getNotifications();
    this.unsubscribe = [];
  }

  close() {
    for (const off of this.unsubscribe) off();
    return this.actions.leave().catch(() => null);
  }
}

export class HmsMedia extends MediaBase {
  constructor({ role, name, selfView = null }) {
    super({ role, name });
    this.selfView = selfView;
    this.rooms = new Map(); // room_id -> RoomConnection
    this.wanted = [];
    this.tiles = new Map(); // candidate_id -> video element
    globalThis.addEventListener("pagehide", () => this.leaveAll());
  }

  assign(rooms) {
    for (const r of rooms) this.tokens.set(r.room_id, r.hms_token);
    this.wanted = rooms.map((r) => r.room_id);
    return this.serial(() => this.converge());
  }

  async converge() {
    for (const [roomId, conn] of [...this.rooms]) {
      if (!this.wanted.includes(roomId)) {
        this.rooms.delete(roomId);
        this.setView(roomId, null);
        await conn.close();
      }
    }
    for (const roomId of this.wanted) if (!this.rooms.has(roomId)) await this.join(roomId);
    this.report();
  }

  async join(roomId) {
    const conn = new RoomConnection();
    this.rooms.set(roomId, conn);
    conn.unsubscribe.push(
      conn.notifications.onNotification((n) => {
        if (n.type === "ERROR") this.failed(roomId, conn, n.data);
      }),
      conn.store.subscribe(() => this.report(), selectIsConnectedToRoom),
      conn.store.subscribe(() => this.report(), selectIsLocalVideoEnabled),
      conn.store.subscribe(() => this.attachAll(), selectPeers),
      conn.store.subscribe(() => this.look(roomId, conn), selectPeers),
      conn.store.subscribe(() => this.look(roomId, conn), selectTracksMap),
      conn.store.subscribe(() => this.look(roomId, conn), selectIsConnectedToRoom),
    );
    const candidate = this.role === "candidate";
    await conn.actions.join({
      userName: this.name,
      authToken: this.tokens.get(roomId),
      settings: { isAudioMuted: true, isVideoMuted: !candidate },
      rememberDeviceSelection: false,
    });
    if (candidate && this.selfView) {
      const local = conn.store.getState(selectLocalPeer);
      if (local && local.videoTrack) await conn.actions.attachVideo(local.videoTrack, this.selfView);
    }
  }

  /** A proctor's view of a room: which users' peers have their video track live (issue 12's witness). */
  look(roomId, conn) {
    if (this.role !== "proctor" || this.rooms.get(roomId) !== conn) return;
    if (!conn.store.getState(selectIsConnectedToRoom)) {
      this.setView(roomId, null);
      return;
    }
    const peers = conn.store.getState(selectPeers).filter((p) => !p.isLocal);
    const video = (p) => Boolean(p.videoTrack) && Boolean(conn.store.getState(selectIsPeerVideoEnabled(p.id)));
    this.setView(roomId, viewOf(peers.map((p) => ({ user_id: p.customerUserId, video: video(p) }))));
  }

  failed(roomId, conn, error) {
    const code = error && error.code;
    if (DENIED.has(code)) this.update({ camera: "denied", error: "camera permission refused" });
    else if (UNAVAILABLE.has(code)) this.update({ camera: "unavailable", error: error.message });
    else this.update({ error: error && error.message });
    if (error && error.isTerminal) {
      // The SDK gave up: join again with the newest token the hub pushed.
      this.serial(async () => {
        if (this.rooms.get(roomId) !== conn) return;
        this.rooms.delete(roomId);
        await conn.close();
        if (this.wanted.includes(roomId)) await this.join(roomId);
        this.report();
      });
    }
  }

  report() {
    const roomId = this.wanted[0] || null;
    const conn = roomId && this.rooms.get(roomId);
    const joined = Boolean(conn && conn.store.getState(selectIsConnectedToRoom));
    const video = Boolean(joined && this.role === "candidate" && conn.store.getState(selectIsLocalVideoEnabled));
    const local = conn ? conn.store.getState(selectLocalPeer) : null;
    const camera = video ? "on" : this.status.camera === "on" ? "off" : this.status.camera;
    this.update({ room_id: roomId, peer_id: local ? local.id : null, joined, video, camera });
  }

  /** The published camera track as a stream (the page's own local recording takes it), else null. */
  localStream() {
    const conn = this.rooms.get(this.wanted[0]);
    const id = conn && this.status.video ? conn.store.getState(selectLocalVideoTrackID) : null;
    const track = id ? conn.actions.getNativeTrackById(id) : null;
    if (!track || track.readyState !== "live") return null;
    if (!this.local || this.local.getVideoTracks()[0] !== track) this.local = new MediaStream([track]);
    return this.local;
  }

  async startCamera() {
    const conn = this.rooms.get(this.wanted[0]);
    if (conn) await conn.actions.setLocalVideoEnabled(true);
  }

  /** A proctor's tile: the candidate's video track, attached whenever it (re)appears. */
  attach(candidateId, videoElement) {
    this.tiles.set(candidateId, videoElement);
    this.attachAll();
    return videoElement;
  }

  attachAll() {
    for (const conn of this.rooms.values()) {
      for (const peer of conn.store.getState(selectPeers)) {
        const element = this.tiles.get(peer.customerUserId);
        if (element && peer.videoTrack) conn.actions.attachVideo(peer.videoTrack, element).catch(() => null);
      }
    }
  }

  async leaveAll() {
    this.wanted = [];
    const conns = [...this.rooms.values()];
    for (const roomId of this.rooms.keys()) this.setView(roomId, null);
    this.rooms.clear();
    await Promise.all(conns.map((c) => c.close()));
    this.update({ joined: false, video: false, peer_id: null });
  }
}
