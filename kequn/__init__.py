"""kequn (客群) core: the ground floor every other package stands on.

Errors with ``file:line:col`` (:mod:`kequn.errors`), the definition header grammar
(:mod:`kequn.header`, :mod:`kequn.yaml_header`), names and teams (:mod:`kequn.names`),
settings (:mod:`kequn.settings`), business days (:mod:`kequn.days`), the warehouse's
table names (:mod:`kequn.tables`) and the migration runner (:mod:`kequn.migrations`).
It imports no database driver and nothing of kequn above it.
"""

__version__ = "0.1.0"
