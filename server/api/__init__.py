"""HTTP API for host applications and dashboards."""
