"""Signed events to the host app: an outbox in the store, delivered by every node (docs/protocol.md)."""
