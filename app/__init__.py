"""The application base: :class:`app.context.KequnContext`, what the command line and the
Dagster assets share (settings, the loaded project and its plan, connections)."""
