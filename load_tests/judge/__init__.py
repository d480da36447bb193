"""Judging a run (pure): which candidates went unwatched (coverage), which faults alerted and how late
(detection), the figures and the goals they meet or miss (verdict), and the report put together
(assemble); stats.py holds the percentiles and matching the benches share."""
