// @ts-check
// The candidate page's side of backfill (issue 14, E15): it keeps the segments local-recorder.js makes
// (segment-store.js), follows the hub's `backfill.request` / `backfill.cancel` / `backfill.release`, and
// uploads what an open request needs: announce (POST .../backfill), PUT the bytes where the hub says,
// then POST .../backfill/{segment_id}/complete. Decisions come from backfill-plan.js (pure).
//
// - Idempotent per segment: the hub answers an announce of a segment it already has with `archived`; the
//   page then just counts it done. A reload re-lists the segments from storage, and the hub sends every
//   open request again on each connect, so the uploads resume where they were.
// - Retried with backoff (full jitter, as the socket's) on network errors and 5xx/429; a refused
//   segment (422 segment_rejected: checksum or size did not match) is read again, its sha256 computed
//   again, and asked for again (a few times at most); a closed request (409) is dropped.
// - One upload at a time, paced under `capBps` on average while the exam runs, so the live stream keeps
//   its uplink; after Finish the cap is lifted.

import { ApiError, paths } from "./api.js";
import { backoffDelay } from "./hub.js";
import {
  budget,
  evictionPlan,
  jobKey,
  localStatus,
  nextSeq,
  pauseAfter,
  progress,
  releasable,
  uploadQueue,
  withoutRequest,
  withRequest,
} from "./backfill-plan.js";
import { estimate } from "./segment-store.js";

/** @typedef {import("./backfill-plan.js").SegmentMeta} SegmentMeta */

const REJECTIONS = 3;

/** Lowercase hex SHA-256 of a Blob. */
export async function sha256(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const retryable = (err) => !(err instanceof ApiError) || err.status >= 500 || err.status === 429 || err.status === 408;

export class Backfill {
  /**
   * @param {object} options
   * @param {any} options.store a segment-store.js store (null: nothing is kept, nothing uploaded)
   * @param {import("./api.js").Api} options.api the hub's HTTP API with the candidate's session token
   * @param {string} options.event
   * @param {string} options.candidate
   * @param {number} [options.capBps] average upload rate while the exam runs (bits/s; 0: no cap)
   * @param {number} [options.maxBytes] the most the page keeps (0: only the browser's quota limits it)
   * @param {() => void} [options.onChange] held segments, requests or upload progress changed
   */
  constructor({ store, api, event, candidate, capBps = 1_000_000, maxBytes = 0, onChange = () => {} }) {
    this.store = store;
    this.api = api;
    this.event = event;
    this.candidate = candidate;
    this.capBps = capBps;
    this.maxBytes = maxBytes;
    this.onChange = onChange;
    /** @type {SegmentMeta[]} */
    this.segments = [];
    /** @type {import("./backfill-plan.js").Requests} */
    this.requests = new Map();
    this.done = new Set();
    this.gaveUp = new Set();
    this.releasedUntil = -Infinity;
    this.quotaShort = false;
    this.seq = 0;
    this.chain = Promise.resolve();
    this.running = false;
    this.wake = null;
    this.attempt = 0;
    this.error = null;
  }

  /** Read what earlier visits of this page left (a reload, a crash): they are held and uploadable. */
  async init() {
    if (this.store) {
      this.segments = (await this.store.list()).filter((s) => s.event === this.event && s.candidate === this.candidate);
    }
    this.seq = nextSeq(this.segments);
    this.changed();
  }

  changed() {
    this.onChange();
  }

  /** Run storage work one step at a time, in order. */
  serial(fn) {
    this.chain = this.chain.then(fn).catch((err) => {
      this.error = err.message;
      this.changed();
    });
    return this.chain;
  }

  /** A segment from the recorder: checksum it, make room (backfill-plan.evictionPlan), store it. */
  add({ blob, start, end, content_type }) {
    return this.serial(async () => {
      if (!this.store || !blob.size) return;
      /** @type {SegmentMeta} */
      const meta = { event: this.event, candidate: this.candidate, seq: this.seq++, start, end, size: blob.size, sha256: await sha256(blob), content_type };
      const { quota, usage } = await estimate();
      const ours = this.segments.reduce((sum, s) => sum + s.size, 0);
      const room = budget({ quota, usage, ours, maxBytes: this.maxBytes });
      const plan = evictionPlan(this.segments, this.requests, this.releasedUntil, meta.size, room);
      if (!plan.fits) {
        this.quotaShort = true;
        this.changed();
        return;
      }
      const dropped = this.segments.filter((s) => plan.drop.includes(s.seq));
      await this.removeAll(plan.drop);
      let failure = await this.tryPut(meta, blob);
      if (failure && failure.name === "QuotaExceededError") {
        // Over the quota after all: the estimate is only an estimate (Chromium's does not even show a
        // quota set for the origin). What this copy holds now is then its real budget: make room
        // within it as above, and try once more.
        const held = this.segments.reduce((sum, s) => sum + s.size, 0);
        const again = evictionPlan(this.segments, this.requests, this.releasedUntil, meta.size, held);
        if (again.fits) {
          dropped.push(...this.segments.filter((s) => again.drop.includes(s.seq)));
          await this.removeAll(again.drop);
          failure = await this.tryPut(meta, blob);
        }
      }
      if (failure) {
        // Still no room (or another failure): this segment is not kept.
        this.quotaShort = true;
        this.error = `local copy: ${failure.message}`;
        this.changed();
        return;
      }
      this.segments.push(meta);
      this.quotaShort = dropped.some((s) => s.end > this.releasedUntil);
      this.changed();
      this.kick();
    });
  }

  /** Store one segment; the error when the store refused it (then nothing of it is left). */
  async tryPut(meta, blob) {
    try {
      await this.store.put(meta, blob);
      return null;
    } catch (err) {
      await this.store.remove(meta.seq).catch(() => null);
      return err;
    }
  }

  async removeAll(seqs) {
    if (!seqs.length) return;
    for (const seq of seqs) await this.store.remove(seq);
    this.segments = this.segments.filter((s) => !seqs.includes(s.seq));
  }

  /** Delete what the hub released and no open request needs. */
  prune() {
    return this.serial(async () => {
      if (this.store) await this.removeAll(releasable(this.segments, this.requests, this.releasedUntil));
      this.changed();
    });
  }

  /** `backfill.request {request_id, from, to}` (again after each reconnect, maybe with a later `to`). */
  request(data) {
    this.requests = withRequest(this.requests, data);
    this.changed();
    this.kick();
  }

  /** `backfill.cancel {request_id}`: the hub has the time after all (a late 100ms recording). */
  cancel(data) {
    this.requests = withoutRequest(this.requests, data && data.request_id);
    this.prune();
  }

  /** `backfill.release {until}`: segments ending by then that no open request needs may go. */
  release(data) {
    if (data && Number.isFinite(data.until)) this.releasedUntil = Math.max(this.releasedUntil, data.until);
    this.prune();
  }

  /** The exam is over: nothing live to protect any more, upload at full speed. */
  finishing() {
    this.capBps = 0;
    this.poke();
  }

  /** `media.status.local`. */
  local() {
    return localStatus(this.segments, this.quotaShort);
  }

  progress() {
    const done = new Set([...this.done, ...this.gaveUp]);
    return progress(this.segments, this.requests, done);
  }

  queue() {
    return uploadQueue(this.segments, this.requests, new Set([...this.done, ...this.gaveUp]));
  }

  kick() {
    if (this.running) this.poke();
    else this.loop();
  }

  poke() {
    if (this.wake) this.wake();
  }

  /** Wait `ms`; a pacing pause (`wakeable`) ends early when there is news (Finish lifts the cap, a new
   * request), a backoff does not. */
  sleep(ms, wakeable) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(timer);
        if (self.wake === done) self.wake = null;
        resolve();
      }
      if (wakeable) this.wake = done;
    });
  }

  async loop() {
    if (this.running) return;
    this.running = true;
    try {
      for (;;) {
        const job = this.queue()[0];
        if (!job) break;
        const started = performance.now();
        const outcome = await this.upload(job).catch((err) => ({ retry: err, sent: 0 }));
        this.changed();
        if (outcome.retry) {
          this.error = outcome.retry.message;
          await this.sleep(backoffDelay(this.attempt++, { baseMs: 1000, capMs: 30000 }) + 200, false);
          continue;
        }
        this.attempt = 0;
        this.error = null;
        await this.sleep(pauseAfter(outcome.sent || 0, performance.now() - started, this.capBps), true);
      }
    } finally {
      this.running = false;
      this.changed();
    }
  }

  /** One job: announce, PUT, complete. Resolves {sent} when done or given up; {retry: err} to try later. */
  async upload({ request_id, seq }) {
    const key = jobKey(request_id, seq);
    const meta = this.segments.find((s) => s.seq === seq);
    const blob = meta && (await this.store.read(seq));
    if (!meta || !blob) {
      this.gaveUp.add(key); // deleted meanwhile
      return { sent: 0 };
    }
    for (let rejected = 0; rejected < REJECTIONS; rejected++) {
      let answer;
      try {
        answer = await this.api.post(paths.backfill(this.event, this.candidate), {
          request_id,
          seq,
          start: meta.start,
          end: meta.end,
          size: meta.size,
          sha256: meta.sha256,
          content_type: meta.content_type,
        });
      } catch (err) {
        if (retryable(err)) return { retry: err };
        if (err.status === 409) this.requests = withoutRequest(this.requests, request_id);
        else this.giveUp(key, `segment ${seq} refused: ${err.message}`);
        return { sent: 0 };
      }
      if (answer.state === "archived") {
        this.done.add(key);
        return { sent: 0 };
      }
      const { method = "PUT", url, headers = {} } = answer.upload || {};
      const response = await fetch(url, { method, headers, body: blob });
      if (!response.ok) {
        const why = new Error(`upload of segment ${seq}: HTTP ${response.status}`);
        // 400 (S3: BadDigest), 413, 415: the bytes are not what was announced; anything else (403: the
        // URL expired, 5xx) is worth the same try later with a fresh URL.
        if (![400, 413, 415].includes(response.status)) return { retry: why };
        await this.reread(meta, blob);
        continue;
      }
      try {
        await this.api.post(paths.backfillComplete(this.event, this.candidate, answer.segment_id), {});
        this.done.add(key);
        return { sent: meta.size };
      } catch (err) {
        if (retryable(err)) return { retry: err };
        if (err.status === 409) {
          this.requests = withoutRequest(this.requests, request_id);
          return { sent: 0 };
        }
        if (err.code !== "segment_rejected") {
          this.giveUp(key, `segment ${seq} refused: ${err.message}`);
          return { sent: 0 };
        }
        await this.reread(meta, blob);
      }
    }
    this.giveUp(key, `segment ${seq} was refused ${REJECTIONS} times`);
    return { sent: 0 };
  }

  /** The hub got other bytes than announced: take the segment's sha256 and size again from what is
   * stored, and announce that. */
  async reread(meta, blob) {
    meta.sha256 = await sha256(blob);
    meta.size = blob.size;
    await this.store.update(meta).catch(() => null);
  }

  giveUp(key, message) {
    this.gaveUp.add(key);
    this.error = message;
  }
}
