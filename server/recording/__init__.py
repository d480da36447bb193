"""Recording monitor: webhook intake, timelines and gaps, live alerts, archive."""
