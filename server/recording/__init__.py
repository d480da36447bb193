"""Recordings: three subsystems, each in its own package.

Packages:
    intake/    100ms webhooks after `POST /webhooks/100ms`: a durable inbox, dedupe, own rooms vs relay
    monitor/   per-candidate timelines (pure), gaps, alerts, the live monitor and the REST reconciler
    archive/   recordings copied into the prescribed layout, with a manifest per candidate
"""
