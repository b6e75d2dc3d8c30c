"""An embedded PostgreSQL for machines without one (used when DATABASE_URL is not set).

The server binaries come from the ``pgserver`` wheel; we run them ourselves so the
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


def _tools():
    from pgserver import _commands, utils  # imported lazily: only this mode needs it

    return _commands, utils


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
    commands, utils = _tools()
    pgdata = Path(data_dir).resolve()
    user = _run_as(utils)
    if not (pgdata / "PG_VERSION").exists():
        pgdata.mkdir(parents=True, exist_ok=True)
        if user:
            import pwd

            utils.ensure_prefix_permissions(pgdata)
            utils.ensure_folder_permissions(commands.POSTGRES_BIN_PATH, 0o055)
            utils.ensure_folder_permissions(commands.POSTGRES_BIN_PATH.parent / "lib", 0o044)
            entry = pwd.getpwnam(user)
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        log.info("initialising embedded PostgreSQL in %s", pgdata)
        commands.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres"], pgdata=pgdata, user=user)
    if not _port_open(port):
        log.info("starting embedded PostgreSQL on 127.0.0.1:%d", port)
        commands.pg_ctl(
            ["-w", "-o", f"-h 127.0.0.1 -p {port} -k ''", "-l", str(pgdata / "server.log"), "start"],
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
    commands, utils = _tools()
    pgdata = Path(data_dir).resolve()
    if not (pgdata / "postmaster.pid").exists():
        return False
    try:
        commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_run_as(utils), timeout=60)
    except subprocess.CalledProcessError:
        return False
    return True
