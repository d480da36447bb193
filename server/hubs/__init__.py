"""The WebSocket side: connection loop, local registry, presence, role handlers, cross-node fan-out."""

from server.hubs.hub import Hub

__all__ = ["Hub"]
