"""The recording monitor: 100ms webhooks in (intake, durable inbox, relay), timelines, alerts, archive."""
