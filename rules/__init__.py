"""Marketing rules (DESIGN §11): evaluate a rule for a day, write its orders, touch customers.

Modules: ``schema`` (the ``rules`` migration stream: ``rule_versions``, ``rule_runs`` and
``rule_order_rows`` behind the ``rule_orders`` view, ``touch_outbox``, ``touch_opt_out``,
``touch_attempts``), ``decide`` (holdout, exclusion,
first-N, caps and quiet hours over all of a day's candidates at once), ``run`` (evaluate
in DuckDB, write in one serving transaction, coupons through the issuance module),
``dispatch`` and ``channels`` (deliver due messages through pluggable adapters),
``history`` (versions and diffs) and ``uplift`` (acted against control).
"""
