"""A PostgreSQL server for tests: the one CI started, or a throwaway local cluster.

``.ci/run`` sources ``.ci/postgres``, which exports ``KEQUN_TEST_POSTGRES_URL``. Without
it, when the PostgreSQL server binaries (``initdb``, ``pg_ctl``) are installed, tests
start their own cluster in a temporary folder on 127.0.0.1 (as the ``postgres`` user
when running as root, since PostgreSQL refuses to run as root). Otherwise PostgreSQL
tests are skipped with the reason from :func:`find_server_binaries` (or when
``KEQUN_TEST_NO_POSTGRES`` is set).

Each test gets its own schema (``search_path`` set through the URL), so tests never see
each other's tables and nothing has to be dropped.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ENV_URL = "KEQUN_TEST_POSTGRES_URL"
ENV_OFF = "KEQUN_TEST_NO_POSTGRES"


def find_server_binaries() -> tuple[Path | None, str]:
    """The folder holding ``initdb``/``pg_ctl``, or None and why not."""
    candidates: list[str] = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder), ""
    return None, (
        f"no PostgreSQL: {ENV_URL} is not set and no initdb/pg_ctl found "
        "(apt-get install postgresql, or run .ci/run)"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    """A running throwaway cluster; :meth:`stop` ends it and removes its folder."""

    bindir: Path
    folder: Path
    port: int
    run_as: str | None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _cmd(self, *args: str) -> list[str]:
        prefix = ["runuser", "-u", self.run_as, "--"] if self.run_as else []
        return [*prefix, *args]

    def stop(self) -> None:
        subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"),
                      "-m", "immediate", "stop"),
            capture_output=True, check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(bindir: Path, *, durable: bool = False) -> Cluster:
    """initdb a cluster in a temporary folder and start it on a free 127.0.0.1 port.

    Tests run it without fsync (fast); ``durable`` keeps PostgreSQL's defaults (benchmarks).
    """
    folder = Path(tempfile.mkdtemp(prefix="kequn-pg-"))
    run_as = None
    if os.geteuid() == 0:
        run_as = "postgres"
        entry = pwd.getpwnam(run_as)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    cluster = Cluster(bindir, folder, free_port(), run_as)
    data = folder / "data"
    subprocess.run(
        cluster._cmd(str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                     "--auth=trust", "-E", "UTF8", "--no-sync"),
        capture_output=True, check=True,
    )
    options = f"-p {cluster.port} -k {folder} -c listen_addresses=127.0.0.1"
    if not durable:
        options += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    subprocess.run(
        cluster._cmd(str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
                     "-l", str(folder / "log"), "-w", "start"),
        capture_output=True, check=True,
    )
    return cluster


def url_with_schema(base_url: str, schema: str) -> str:
    """``base_url`` with the session ``search_path`` set to ``schema``."""
    sep = "&" if "?" in base_url else "?"
    return f"{base_url}{sep}options={quote(f'-csearch_path={schema}')}"


def fresh_schema_url(base_url: str, prefix: str = "t") -> str:
    """Create a new empty schema on the server and return a URL that uses it."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as con:
        con.execute(f'CREATE SCHEMA "{schema}"')
    return url_with_schema(base_url, schema)


_CLUSTERS: list[Cluster] = []


def _base_url() -> tuple[str | None, str]:
    """The server URL to use in this test process (starting a cluster once), or why none."""
    url = os.environ.get(ENV_URL)
    if url:
        return url, ""
    if os.environ.get(ENV_OFF):
        return None, f"PostgreSQL tests turned off ({ENV_OFF} is set)"
    if _CLUSTERS:
        return _CLUSTERS[0].url, ""
    bindir, why = find_server_binaries()
    if bindir is None:
        return None, why
    try:
        cluster = start_cluster(bindir)
    except (subprocess.CalledProcessError, OSError, KeyError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return None, f"could not start a local PostgreSQL cluster: {exc} {detail.decode()[-300:]}"
    _CLUSTERS.append(cluster)
    return cluster.url, ""


try:
    import pytest
except ImportError:  # pragma: no cover - only the fixtures need pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def postgres_base_url() -> Iterator[str]:
        """A PostgreSQL server URL for this test session; skips with the reason if none."""
        url, why = _base_url()
        if url is None:
            pytest.skip(why)
        yield url
        while _CLUSTERS:
            _CLUSTERS.pop().stop()

    @pytest.fixture
    def postgres_url(postgres_base_url: str) -> str:
        """A URL whose ``search_path`` is a new, empty schema (one per test)."""
        return fresh_schema_url(postgres_base_url)

    @pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
    def serving_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
        """A fresh serving database URL: a SQLite file, or a new PostgreSQL schema."""
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / 'serving' / 'serving.sqlite'}"
        return str(request.getfixturevalue("postgres_url"))
