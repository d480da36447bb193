"""Rooms for candidates and proctors: the planner (pure) and the service that applies it."""
