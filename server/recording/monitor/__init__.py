"""The recording monitor: signals in, timelines, gaps, alerts and reports out."""
