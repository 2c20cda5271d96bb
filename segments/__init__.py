"""The segment engine: build a segment's members for a day, and everything around them.

:mod:`segments.build` materialises one segment (:mod:`segments.materialize` writes
``segments.members``); analysts' SQL runs in :mod:`segments.sandbox`; uploaded files go
through :mod:`segments.imports`; :mod:`segments.preview`, :mod:`segments.explain`,
:mod:`segments.overlap` and :mod:`segments.favorites` serve the command line. Definitions
are loaded by :mod:`project` and compiled by :mod:`plan.segments`.
"""
