"""The tag engine: run the compiled tag plan in the warehouse for a day (architecture §4).

:mod:`tags.build` stores atomic tags (one fused query per source) and builds the wide
table ``tags.customer_tags``; :mod:`tags.catalog` records coverage per tag and day;
:mod:`tags.checks` are the data checks the Dagster assets run; :mod:`tags.storage` shapes
the tables whose columns follow the definitions. Definitions are loaded by
:mod:`project` and compiled by :mod:`plan.tags`.
"""
