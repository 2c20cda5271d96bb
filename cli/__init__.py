"""The ``kequn`` command line: thin commands over the library, one module per area.

:mod:`cli.main` holds the root command and the global options; each area module
(``cli/<area>.py``) adds its commands with ``register(app)`` and reaches settings, the
project and connections through the :class:`~app.context.KequnContext` the root built.
"""
