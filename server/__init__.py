"""proctorhub: real-time coordination server for live video proctoring on 100ms."""

__version__ = "0.1.0"
