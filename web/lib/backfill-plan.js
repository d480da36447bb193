// @ts-check
// The candidate page's local-recording bookkeeping (issue 14, extension E15), pure: which held segments an
// open `backfill.request` needs, what a `backfill.release` lets go, what to drop when the disk is short,
// what to upload next and how far the uploads are. No I/O here: local-recorder.js, segment-store.js and
// backfill-uploader.js do that and ask this module what to do. Tested by web/tests/backfill-plan.test.mjs.
//
// Times are epoch milliseconds. A segment covers [start, end) of the page's wall clock; a request asks for
// [from, to). They overlap when start < to && end > from (touching ends do not count).

/**
 * @typedef {object} SegmentMeta one recorded segment as stored beside its bytes
 * @property {string} event
 * @property {string} candidate
 * @property {number} seq counts up per (event, candidate), across reloads
 * @property {number} start wall clock when its recorder started (ms)
 * @property {number} end wall clock when it stopped (ms)
 * @property {number} size bytes
 * @property {string} sha256 lowercase hex of the bytes
 * @property {string} content_type e.g. video/webm
 */

/** @typedef {{request_id: string, from: number, to: number}} BackfillRequest */
/** @typedef {Map<string, BackfillRequest>} Requests open requests by id */

/** @param {{start: number, end: number}} segment @param {{from: number, to: number}} request */
export function overlaps(segment, request) {
  return segment.start < request.to && segment.end > request.from;
}

/** The open requests after a `backfill.request`: a request id seen again replaces its window (the hub may
 * send it again with a later `to`). Invalid windows are ignored. @param {Requests} requests */
export function withRequest(requests, data) {
  const { request_id: id, from, to } = data || {};
  if (typeof id !== "string" || !id || !Number.isFinite(from) || !Number.isFinite(to) || to <= from) return requests;
  const next = new Map(requests);
  next.set(id, { request_id: id, from, to });
  return next;
}

/** The open requests after a `backfill.cancel` (or a 409 request_closed). @param {Requests} requests */
export function withoutRequest(requests, requestId) {
  if (!requests.has(requestId)) return requests;
  const next = new Map(requests);
  next.delete(requestId);
  return next;
}

/** Whether any open request overlaps the segment. @param {Requests} requests */
export function needed(segment, requests) {
  for (const request of requests.values()) if (overlaps(segment, request)) return true;
  return false;
}

/** The seqs a `backfill.release {until}` lets go: ending at or before `until`, needed by no open request.
 * @param {SegmentMeta[]} segments @param {Requests} requests @param {number} until */
export function releasable(segments, requests, until) {
  return segments.filter((s) => s.end <= until && !needed(s, requests)).map((s) => s.seq);
}

const byStart = (a, b) => a.start - b.start || a.seq - b.seq;

/**
 * What to drop so that a new segment of `incoming` bytes fits in `budget` bytes: first segments already
 * released (end <= releasedUntil), oldest first; then, if that is not enough, the oldest segments no open
 * request needs (the hub has not asked for them, and the newest footage is the likeliest to be asked for);
 * never a segment an open request needs. `fits` is false when even that is not enough: the new segment is
 * then not kept, and the page says `quota_short`.
 * @param {SegmentMeta[]} segments @param {Requests} requests @param {number} releasedUntil
 * @param {number} incoming @param {number} budget
 * @returns {{drop: number[], fits: boolean}}
 */
export function evictionPlan(segments, requests, releasedUntil, incoming, budget) {
  let used = segments.reduce((sum, s) => sum + s.size, 0);
  const drop = [];
  if (used + incoming <= budget) return { drop, fits: true };
  const free = segments.filter((s) => !needed(s, requests)).sort(byStart);
  const released = free.filter((s) => s.end <= releasedUntil);
  const others = free.filter((s) => s.end > releasedUntil);
  for (const s of [...released, ...others]) {
    if (used + incoming <= budget) break;
    drop.push(s.seq);
    used -= s.size;
  }
  if (used + incoming <= budget) return { drop, fits: true };
  // Dropping free footage would not make room: keep it rather than lose it for nothing.
  return { drop: [], fits: false };
}

/** @param {string} requestId @param {number} seq */
export const jobKey = (requestId, seq) => `${requestId}#${seq}`;

/**
 * The uploads still to do, oldest segment first: one job per (open request, held segment it overlaps)
 * not yet done (`done` holds jobKey()s). One segment overlapping two requests is one job per request; the
 * hub answers the second with "already archived" at once.
 * @param {SegmentMeta[]} segments @param {Requests} requests @param {Set<string>} done
 * @returns {{request_id: string, seq: number}[]}
 */
export function uploadQueue(segments, requests, done) {
  const jobs = [];
  for (const s of [...segments].sort(byStart)) {
    const ids = [...requests.values()].filter((r) => overlaps(s, r)).map((r) => r.request_id).sort();
    for (const id of ids) if (!done.has(jobKey(id, s.seq))) jobs.push({ request_id: id, seq: s.seq });
  }
  return jobs;
}

/**
 * How far the uploads for the open requests are, in bytes (for the Finish screen's progress bar).
 * @param {SegmentMeta[]} segments @param {Requests} requests @param {Set<string>} done
 */
export function progress(segments, requests, done) {
  let total = 0;
  let sent = 0;
  let pending = 0;
  for (const s of segments) {
    for (const r of requests.values()) {
      if (!overlaps(s, r)) continue;
      total += s.size;
      if (done.has(jobKey(r.request_id, s.seq))) sent += s.size;
      else pending += 1;
    }
  }
  return { total, sent, pending };
}

/** The `local` part of `media.status`: seconds held (tenths), the oldest start, whether space ran short.
 * @param {SegmentMeta[]} segments @param {boolean} quotaShort */
export function localStatus(segments, quotaShort) {
  const ms = segments.reduce((sum, s) => sum + Math.max(0, s.end - s.start), 0);
  const from = segments.length ? Math.min(...segments.map((s) => s.start)) : null;
  return { held_s: Math.round(ms / 100) / 10, from, quota_short: Boolean(quotaShort) };
}

/** The next seq after what is stored (a reload keeps counting). @param {SegmentMeta[]} segments */
export function nextSeq(segments) {
  return segments.reduce((max, s) => Math.max(max, s.seq), -1) + 1;
}

/** How long to wait after sending `bytes` in `elapsedMs` so that the average stays under `capBps`
 * (bits per second; 0 or less: no cap). Uploads go one at a time, so this paces them. */
export function pauseAfter(bytes, elapsedMs, capBps) {
  if (!(capBps > 0)) return 0;
  return Math.max(0, Math.ceil((bytes * 8 * 1000) / capBps - elapsedMs));
}

/** The byte budget of the local copy: the page's own cap, and at most `share` of what the browser
 * still allows this origin (its quota less what others of the origin use). */
export function budget({ quota, usage, ours, maxBytes, share = 0.8 }) {
  const room = Number.isFinite(quota) && quota > 0 ? Math.max(0, quota * share - Math.max(0, usage - ours)) : Infinity;
  return Math.max(0, Math.min(room, maxBytes > 0 ? maxBytes : Infinity));
}
