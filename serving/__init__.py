"""The serving side: the operational database the business systems read (architecture §1, §6).

* :mod:`serving.db` — one handle on SQLite or PostgreSQL (``connect(url)``).
* :mod:`serving.schema` — the ``serving`` migration stream (``coupon_eligibility``,
  ``sync_log``, ``sync_state``), applied through :mod:`kequn.migrations`.

The sync that writes it is :mod:`sync`; coupons are :mod:`issuance`.
"""
