"""The serving side: the operational database the business systems read, and the sync.

* :mod:`serving.db` — one handle on SQLite or PostgreSQL (``connect(url)``).
* :mod:`serving.migrations` / :mod:`serving.schema` — versioned schema streams.
* :mod:`serving.sync_settings` — sync keys of a SEGMENT header.
* :mod:`serving.guardrails` — when a sync is blocked.
* :mod:`serving.lock` — one sync per segment at a time.
* :mod:`serving.sync` — diff, apply and record one segment's day.
* :mod:`serving.targets` — which segments are synced, from their definition files.
"""
