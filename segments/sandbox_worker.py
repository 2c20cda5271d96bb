"""The sandbox's subprocess: run one gated query read-only under limits, write its ids.

Started by :func:`segments.sandbox.run_restricted` as ``python -m segments.sandbox_worker``
with a JSON request on stdin. It imports only DuckDB and pyarrow (not the compiler the
parent needs), so each analyst's query pays as little process start as possible; started
ahead (:func:`segments.sandbox.prestart`), it imports them before its request comes, and
ends quietly when none does.
"""

from __future__ import annotations

import json
import sys
from datetime import date


def main() -> int:
    """Read a JSON request on stdin, run it restricted, write its ids as Arrow IPC; the
    exit status is 0, or 3 with ``{"error": ...}`` on stdout."""
    import duckdb
    import pyarrow as pa
    import pyarrow.ipc as ipc

    text = sys.stdin.read()
    if not text:  # started ahead (segments.sandbox.prestart) and never used
        return 0
    request = json.loads(text)

    def fail(message: str) -> int:
        sys.stdout.write(json.dumps({"error": message}))
        return 3

    try:
        con = duckdb.connect(request["warehouse"], read_only=True, config={
            "autoload_known_extensions": False, "autoinstall_known_extensions": False,
            "allow_community_extensions": False, "threads": request["threads"],
            "memory_limit": request["memory_limit"], "max_temp_directory_size": "0GB",
        })
        con.execute("SET enable_external_access = false")
        con.execute(f"SET max_execution_time = {int(request['timeout_ms'])}")
        con.execute("SET lock_configuration = true")
    except duckdb.Error as exc:
        return fail(f"cannot open the warehouse read-only: {exc}")
    try:
        sql = (f"SELECT DISTINCT customer_id FROM ({request['sql']}) AS q "
               "WHERE customer_id IS NOT NULL")
        params = ({request["as_of_name"]: date.fromisoformat(request["as_of"])}
                  if request["uses_as_of"] else None)
        table = con.sql(sql, params=params).to_arrow_table()
    except duckdb.InterruptException:
        return fail(f"the query ran longer than {request['timeout_ms'] / 1000:g} s "
                    "(time limit) and was stopped")
    except duckdb.Error as exc:
        return fail(f"the query failed: {str(exc).splitlines()[0]}")
    if not pa.types.is_integer(table.schema.field(0).type):
        return fail("customer_id must be an integer column, the query returns "
                    f"{table.schema.field(0).type}")
    table = pa.table({"customer_id": table.column(0).cast(pa.int64())})
    with ipc.new_file(request["out"], table.schema) as writer:
        writer.write_table(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
