// web/lib/backfill-plan.js (pure): many generated cases from a seeded generator, each checked against
// what the rules say, written out the plain way. Runs with the other web/tests under Node's test runner.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  budget,
  evictionPlan,
  jobKey,
  localStatus,
  needed,
  nextSeq,
  overlaps,
  pauseAfter,
  progress,
  releasable,
  uploadQueue,
  withoutRequest,
  withRequest,
} from "../lib/backfill-plan.js";

const CASES = 500;

/** mulberry32: a small seeded generator, so a failing case can be replayed from its seed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const int = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1));

/** Back-to-back segments (slightly overlapping or with small holes, as restarts make them). */
function segments(r) {
  const out = [];
  let t = 1_700_000_000_000 + int(r, 0, 10_000);
  const n = int(r, 0, 12);
  for (let seq = 0; seq < n; seq++) {
    const length = int(r, 1, 30_000);
    out.push({ event: "e", candidate: "c", seq, start: t, end: t + length, size: int(r, 1, 2_000_000), sha256: "x", content_type: "video/webm" });
    t += length + int(r, -20, 3000);
  }
  // The store lists them in any order.
  return out.sort(() => r() - 0.5);
}

function requests(r, segs) {
  let map = new Map();
  const lo = segs.length ? Math.min(...segs.map((s) => s.start)) - 5000 : 0;
  const hi = segs.length ? Math.max(...segs.map((s) => s.end)) + 5000 : 100_000;
  for (let i = int(r, 0, 3); i > 0; i--) {
    const from = int(r, lo, hi);
    map = withRequest(map, { request_id: `r${int(r, 1, 4)}`, from, to: from + int(r, 1, 60_000) });
  }
  return map;
}

function forCases(fn) {
  for (let seed = 1; seed <= CASES; seed++) {
    const r = rng(seed);
    const segs = segments(r);
    try {
      fn(r, segs, requests(r, segs));
    } catch (err) {
      err.message = `seed ${seed}: ${err.message}`;
      throw err;
    }
  }
}

test("overlap is half-open: touching ends do not overlap", () => {
  assert.equal(overlaps({ start: 0, end: 10 }, { from: 10, to: 20 }), false);
  assert.equal(overlaps({ start: 10, end: 20 }, { from: 0, to: 10 }), false);
  assert.equal(overlaps({ start: 0, end: 11 }, { from: 10, to: 20 }), true);
  assert.equal(overlaps({ start: 5, end: 6 }, { from: 0, to: 100 }), true);
  assert.equal(overlaps({ start: 0, end: 100 }, { from: 5, to: 6 }), true);
});

test("a request seen again replaces its window; bad windows and cancels of unknown ids change nothing", () => {
  let map = withRequest(new Map(), { request_id: "a", from: 10, to: 20 });
  map = withRequest(map, { request_id: "a", from: 10, to: 50 });
  assert.deepEqual([...map.values()], [{ request_id: "a", from: 10, to: 50 }]);
  assert.equal(withRequest(map, { request_id: "b", from: 10, to: 10 }), map);
  assert.equal(withRequest(map, { request_id: "", from: 1, to: 2 }), map);
  assert.equal(withRequest(map, { request_id: "b", from: "1", to: 2 }), map);
  assert.equal(withRequest(map, null), map);
  assert.equal(withoutRequest(map, "zz"), map);
  assert.equal(withoutRequest(map, "a").size, 0);
  assert.equal(map.size, 1, "the maps are never changed in place");
});

test("release lets go exactly the segments that end by `until` and no open request overlaps", () => {
  forCases((r, segs, reqs) => {
    const until = segs.length ? segs[int(r, 0, segs.length - 1)].end + int(r, -1, 1) : 0;
    const got = new Set(releasable(segs, reqs, until));
    for (const s of segs) {
      const asked = [...reqs.values()].some((q) => s.start < q.to && s.end > q.from);
      assert.equal(got.has(s.seq), s.end <= until && !asked, `seq ${s.seq}`);
    }
  });
});

test("the upload queue has one job per (request, overlapping segment) not done, oldest first", () => {
  forCases((r, segs, reqs) => {
    const done = new Set();
    for (const s of segs) for (const q of reqs.values()) if (r() < 0.3) done.add(jobKey(q.request_id, s.seq));
    const queue = uploadQueue(segs, reqs, done);
    const want = [];
    for (const s of segs) {
      for (const q of reqs.values()) {
        if (s.start < q.to && s.end > q.from && !done.has(jobKey(q.request_id, s.seq))) want.push(jobKey(q.request_id, s.seq));
      }
    }
    assert.deepEqual(queue.map((j) => jobKey(j.request_id, j.seq)).sort(), want.sort());
    const starts = queue.map((j) => segs.find((s) => s.seq === j.seq).start);
    assert.deepEqual(starts, [...starts].sort((a, b) => a - b));
    // Progress counts the same jobs: pending ones, and the bytes of the done ones.
    const p = progress(segs, reqs, done);
    assert.equal(p.pending, queue.length);
    assert.ok(p.sent <= p.total);
    if (queue.length === 0) assert.equal(p.sent, p.total);
  });
});

test("eviction drops released segments first, then the oldest free ones, never a needed one", () => {
  forCases((r, segs, reqs) => {
    const used = segs.reduce((sum, s) => sum + s.size, 0);
    const releasedUntil = segs.length ? segs[int(r, 0, segs.length - 1)].end : 0;
    const incoming = int(r, 1, 2_000_000);
    const room = int(r, 0, used + incoming + 1_000_000);
    const { drop, fits } = evictionPlan(segs, reqs, releasedUntil, incoming, room);
    const dropped = segs.filter((s) => drop.includes(s.seq));
    assert.equal(new Set(drop).size, drop.length, "each seq once");
    for (const s of dropped) assert.equal(needed(s, reqs), false, "a needed segment is never dropped");
    const left = used - dropped.reduce((sum, s) => sum + s.size, 0);
    if (fits) assert.ok(left + incoming <= room);
    else {
      assert.deepEqual(drop, [], "nothing is dropped for nothing");
      const free = segs.filter((s) => !needed(s, reqs)).reduce((sum, s) => sum + s.size, 0);
      assert.ok(used - free + incoming > room, "it did not fit even without every free segment");
    }
    // Minimal: without the last one dropped it would not have fitted.
    if (drop.length) {
      const last = segs.find((s) => s.seq === drop[drop.length - 1]);
      assert.ok(left + last.size + incoming > room);
    }
    // Order: every released segment dropped before any unreleased one, each group oldest first.
    const order = drop.map((seq) => segs.find((s) => s.seq === seq));
    const released = order.map((s) => s.end <= releasedUntil);
    assert.deepEqual(released, [...released].sort((a, b) => Number(b) - Number(a)));
    for (let i = 1; i < order.length; i++) {
      if (released[i] === released[i - 1]) assert.ok(order[i - 1].start <= order[i].start);
    }
  });
});

test("the local status sums what is held and names the oldest start", () => {
  forCases((r, segs) => {
    const status = localStatus(segs, r() < 0.5);
    const ms = segs.reduce((sum, s) => sum + (s.end - s.start), 0);
    assert.ok(Math.abs(status.held_s - ms / 1000) <= 0.05 + 1e-9);
    assert.equal(status.from, segs.length ? Math.min(...segs.map((s) => s.start)) : null);
    assert.equal(nextSeq(segs), segs.length);
  });
  assert.deepEqual(localStatus([], true), { held_s: 0, from: null, quota_short: true });
});

test("pacing keeps the average under the cap; the budget is the smaller of the cap and the quota's share", () => {
  for (let seed = 1; seed <= CASES; seed++) {
    const r = rng(seed);
    const bytes = int(r, 0, 5_000_000);
    const elapsed = int(r, 0, 100_000);
    const cap = int(r, 1, 10_000_000);
    const pause = pauseAfter(bytes, elapsed, cap);
    assert.ok(pause >= 0);
    assert.ok((bytes * 8 * 1000) / (elapsed + pause) <= cap * 1.0001 || bytes === 0);
    if (pause > 0) assert.ok((bytes * 8 * 1000) / (elapsed + pause - 1) > cap);
  }
  assert.equal(pauseAfter(1_000_000, 0, 0), 0);
  assert.equal(budget({ quota: 1000, usage: 300, ours: 100, maxBytes: 0 }), 600);
  assert.equal(budget({ quota: 1000, usage: 300, ours: 100, maxBytes: 50 }), 50);
  assert.equal(budget({ quota: undefined, usage: 0, ours: 0, maxBytes: 0 }), Infinity);
  assert.equal(budget({ quota: 100, usage: 1000, ours: 0, maxBytes: 0 }), 0);
});
