"""The segment sync: one segment's members for a day into ``coupon_eligibility``.

* :mod:`sync.run` — :func:`sync.run.sync_segment`: the steps below in order, with the
  guarantees (crash safety, ordering, idempotency, locking) in its docstring.
* :mod:`sync.plan` — the pure decision: status, reason, what to write; ``SyncResult``.
* :mod:`sync.guardrails` — when a change is too large to apply without a human.
* :mod:`sync.diff` — the added and removed ids, computed in DuckDB.
* :mod:`sync.apply` — the serving writes (SQLite and PostgreSQL) and ``sync_state``.
* :mod:`sync.log` — the ``sync_log`` rows, and the reader the CLI shows.
* :mod:`sync.tracking` — the warehouse's ``sync.applied`` / ``sync.marker``.
* :mod:`sync.lock` — one sync per segment at a time.
"""
