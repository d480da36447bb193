"""The simulated users: candidates and proctors (and the admin observer) that behave like the pages,
each on a lean sans-I/O WebSocket (wire.py) and a keep-alive HTTP client (http_lite.py) for the media
plane, keeping their 100ms tokens (token_watch.py); run by the thousand in worker processes (swarm.py,
worker_pool.py)."""
