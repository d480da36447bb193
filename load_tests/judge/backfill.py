"""How much of the recording 100ms lost came back from the candidates' pages (browser backfill). Pure.

For one candidate, with the hub's timeline read after the drain (`GET .../candidates/{c}/timeline`):

- **uncovered**: its sitting (first `hello` to `finish`, as the simulated page saw them) less the
  time 100ms's recordings cover (`intervals.recorded`) and less the spans of recordings still
  undecided at the end (`recordings[].status == "pending"`: not known lost yet, counted apart as
  undecided);
- **lost**: the uncovered spans of at least `min_s` (the hub's `BACKFILL_MIN_S`: shorter ones, such
  as the second between arriving and 100ms's join, are never asked for, so no page could fill them)
  that the page holds a copy of (it recorded then: not while its camera was off; such time is
  counted as `no_copy`);
- **recovered**: the lost time the archived backfill segments cover (`intervals.backfilled`), with
  the holes shorter than `slack_s` left between or beside them (the hub's `BACKFILL_SLACK_S`: a
  recorder's restart, or the milliseconds by which the page's and the hub's clocks of the same
  moment differ, such as when the finish was sent and when the hub took it), as the hub counts a
  request satisfied.

`backfill_coverage` is recovered / lost summed over the candidates who stayed online (no network
loss); those who lost their network and came back are counted apart (`backfill_coverage_churned`):
their page records while away, so they too can be made whole, but the goal is about the former.
None when nothing was lost.

`backfill_delay_s`, per archived segment: from the moment the page could send it (the later of the
first `backfill.request` overlapping it reaching the page and the segment's own end: a segment still
being recorded cannot be sent) to the hub's `200 archived` on its `complete`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from load_tests.judge.stats import percentile
from server.recording.monitor import intervals as iv
from server.recording.monitor.intervals import Intervals

SHORT_LIST = 20
COVERAGE_DIGITS = 4
"""Coverage is rounded to this: segments' times are kept to the millisecond, so back-to-back segments
may leave sub-millisecond seams that are not lost video."""


@dataclass(frozen=True, slots=True)
class Loss:
    lost_s: float
    recovered_s: float
    no_copy_s: float
    undecided_s: float


def _ms_spans(raw: Iterable[Sequence[Any]]) -> Intervals:
    """[[start ms, end ms | None], ...] (the timeline's JSON) as seconds."""
    return iv.normalize(
        (float(s) / 1000, None if e is None else float(e) / 1000) for s, e in raw if s is not None
    )


def loss(
    sitting: Intervals,
    held: Intervals,
    recorded: Intervals,
    pending: Intervals,
    backfilled: Intervals,
    *,
    min_s: float,
    slack_s: float,
) -> Loss:
    """One candidate's lost, recovered, uncopied and undecided seconds (see the module's text)."""
    end = max((e for _, e in sitting if e is not None), default=0.0)
    uncovered = iv.subtract(iv.subtract(sitting, recorded), pending)
    long = tuple((s, e) for s, e in uncovered if e is not None and e - s >= min_s)
    lost = iv.intersect(long, held)
    seams = sum(e - s for s, e in iv.subtract(lost, backfilled) if e is not None and e - s < slack_s)
    return Loss(
        lost_s=iv.total(lost, until=end),
        recovered_s=iv.total(iv.intersect(lost, backfilled), until=end) + seams,
        no_copy_s=iv.total(iv.subtract(long, held), until=end),
        undecided_s=iv.total(iv.intersect(sitting, pending), until=end),
    )


def timeline_parts(timeline: Mapping[str, Any]) -> tuple[Intervals, Intervals, Intervals]:
    """(recorded, pending, backfilled) of a candidate's timeline JSON, in seconds."""
    spans = timeline.get("intervals") or {}
    pending = [
        (r.get("started_at"), r.get("ended_at"))
        for r in timeline.get("recordings") or []
        if r.get("status") == "pending"
    ]
    return (
        _ms_spans(spans.get("recorded") or []),
        _ms_spans(pending),
        _ms_spans(spans.get("backfilled") or []),
    )


def _share(losses: Sequence[Loss]) -> float | None:
    lost = sum(x.lost_s for x in losses)
    if lost <= 0:
        return None
    return round(min(1.0, sum(x.recovered_s for x in losses) / lost), COVERAGE_DIGITS)


def _stat(values: Sequence[float], p: float) -> float | None:
    return round(percentile(values, p), 2) if values else None


def figures(
    pages: Mapping[str, Mapping[str, Any]],
    timelines: Mapping[str, Mapping[str, Any]],
    segments: Sequence[Mapping[str, Any]],
    *,
    min_s: float,
    slack_s: float,
    exam_end: float,
) -> dict[str, Any]:
    """The backfill figures of a run.

    `pages`: per candidate what its simulated page knew: `sitting` [[start s, end s]], `held` (its
    recorded spans, s), `churned` (it lost its network at some point), `finished_at`.
    `timelines`: per candidate the hub's timeline JSON. `segments`: each segment the pages saw
    archived: `candidate_id`, `ready_at`, `archived_at`, `start_ms`, `end_ms`, and `put_bytes` (the
    bytes of every PUT made for it, retries included)."""
    by_group: dict[bool, list[Loss]] = {False: [], True: []}
    short: list[dict[str, Any]] = []
    no_copy = undecided = 0.0
    for cid, page in sorted(pages.items()):
        timeline = timelines.get(cid)
        if timeline is None:
            continue
        recorded, pending, backfilled = timeline_parts(timeline)
        x = loss(
            iv.normalize(tuple(s) for s in page["sitting"]),
            iv.normalize(tuple(s) for s in page["held"]),
            recorded,
            pending,
            backfilled,
            min_s=min_s,
            slack_s=slack_s,
        )
        by_group[bool(page.get("churned"))].append(x)
        no_copy += x.no_copy_s
        undecided += x.undecided_s
        if x.lost_s - x.recovered_s >= 0.5:
            short.append(
                {
                    "candidate_id": cid,
                    "churned": bool(page.get("churned")),
                    "lost_s": round(x.lost_s, 1),
                    "recovered_s": round(x.recovered_s, 1),
                }
            )
    everyone = by_group[False] + by_group[True]
    delays = [max(0.0, s["archived_at"] - s["ready_at"]) for s in segments]
    backfilled_h = sum(max(0, s["end_ms"] - s["start_ms"]) for s in segments) / 3_600_000
    put_bytes = sum(int(s.get("put_bytes", 0)) for s in segments)
    finished = {cid: p.get("finished_at") for cid, p in pages.items()}
    after_finish = [
        s["archived_at"] - f
        for s in segments
        if (f := finished.get(s["candidate_id"])) is not None and s["archived_at"] > f
    ]
    last = max((s["archived_at"] for s in segments), default=None)
    return {
        "backfill_coverage": _share(by_group[False]),
        "backfill_coverage_churned": _share(by_group[True]),
        "backfill_candidates_with_loss": sum(1 for x in everyone if x.lost_s > 0),
        "backfill_lost_s": round(sum(x.lost_s for x in everyone), 1),
        "backfill_recovered_s": round(sum(x.recovered_s for x in everyone), 1),
        "backfill_no_copy_s": round(no_copy, 1),
        "backfill_undecided_s": round(undecided, 1),
        "backfill_segments": len(segments),
        "backfill_delay_p50_s": _stat(delays, 50),
        "backfill_delay_max_s": round(max(delays), 2) if delays else None,
        "backfill_bytes": put_bytes,
        "backfill_bytes_per_candidate_hour": round(put_bytes / backfilled_h) if backfilled_h > 0 else None,
        "backfill_after_finish_p50_s": _stat(after_finish, 50),
        "backfill_after_finish_max_s": round(max(after_finish), 2) if after_finish else None,
        "backfill_done_after_exam_s": None if last is None else round(max(0.0, last - exam_end), 2),
        "backfill_short": short[:SHORT_LIST],
    }
