"""Browser backfill (extension E15): the candidate page's own recording fills the archive's holes.

`plan.py` decides which time to ask the page for (pure), `webm.py` reads a WebM segment's duration
(pure), `checks.py` judges announcements and uploads (pure); `requests.py` sends the requests,
`service.py` answers the HTTP endpoints and archives what is accepted.
"""
