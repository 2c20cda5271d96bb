"""Favourites (收藏): per-user bookmarks of segments, stored durably in the warehouse.

``segments.favorites(user_name, segment, created_at)``, one row per (user, segment).
Adding twice or removing a missing favourite changes nothing.
"""

from __future__ import annotations

import duckdb

from warehouse.db import table_exists, transaction


def add_favorite(con: duckdb.DuckDBPyConnection, user: str, segment: str) -> bool:
    """Mark ``segment`` as a favourite of ``user``; True if it was not one already."""
    with transaction(con):
        exists = con.execute("SELECT count(*) FROM segments.favorites WHERE user_name = ? "
                             "AND segment = ?", [user, segment]).fetchone()[0]
        if not exists:
            con.execute("INSERT INTO segments.favorites (user_name, segment) VALUES (?, ?)",
                        [user, segment])
    return not exists


def remove_favorite(con: duckdb.DuckDBPyConnection, user: str, segment: str) -> bool:
    """Remove the favourite; True if there was one."""
    if not table_exists(con, "segments", "favorites"):
        return False
    with transaction(con):
        exists = con.execute("SELECT count(*) FROM segments.favorites WHERE user_name = ? "
                             "AND segment = ?", [user, segment]).fetchone()[0]
        con.execute("DELETE FROM segments.favorites WHERE user_name = ? AND segment = ?",
                    [user, segment])
    return bool(exists)


def favorites_of(con: duckdb.DuckDBPyConnection, user: str) -> list[str]:
    """The segments ``user`` marked, in name order."""
    if not table_exists(con, "segments", "favorites"):
        return []
    return [r[0] for r in con.execute("SELECT segment FROM segments.favorites WHERE "
                                      "user_name = ? ORDER BY segment", [user]).fetchall()]
