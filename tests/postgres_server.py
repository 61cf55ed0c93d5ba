"""A throwaway PostgreSQL server for the decision-log tests (not a test module): Debian's `postgresql` binaries
(apt; .ci/run installs them as it does chromium) or the PyPI package `pgserver`, started in a temporary folder on a
free port and stopped at the end of the session. PostgreSQL refuses to run as root: as root the server runs as the
`postgres` user Debian's package creates. `start()` returns (URL, stop) or raises `Unavailable` saying why.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class Unavailable(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def debian_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


def start_debian(binaries: Path) -> tuple[str, callable]:
    as_root = os.geteuid() == 0
    if as_root:
        try:
            import pwd

            account = pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no `postgres` user to run the server as") from None
    folder = Path(tempfile.mkdtemp(prefix="ticket-pg-"))
    data, sockets = folder / "data", folder / "sockets"
    sockets.mkdir()
    if as_root:
        os.chown(folder, account.pw_uid, account.pw_gid)
        os.chown(sockets, account.pw_uid, account.pw_gid)
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    port = free_port()

    def run(*command):
        done = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise Unavailable(f"{Path(command[0]).name} failed: {(done.stderr or done.stdout)[-500:]}")

    run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    run(str(binaries / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60", "-o",
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop():
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/postgres", stop


def start_pgserver() -> tuple[str, callable]:
    try:
        import pgserver
    except ImportError:
        raise Unavailable("neither Debian's postgresql package nor the PyPI package pgserver is installed") from None
    folder = tempfile.mkdtemp(prefix="ticket-pgserver-")
    try:
        server = pgserver.get_server(folder, cleanup_mode="stop")
    except Exception as error:  # noqa: BLE001
        raise Unavailable(f"pgserver could not start a server: {error}") from None
    return server.get_uri(), server.cleanup


def start() -> tuple[str, callable]:
    binaries = debian_binaries()
    problems = []
    if binaries is not None:
        try:
            return start_debian(binaries)
        except Unavailable as problem:
            problems.append(f"Debian's postgresql: {problem}")
    try:
        return start_pgserver()
    except Unavailable as problem:
        problems.append(str(problem))
    raise Unavailable("; ".join(problems))


def fresh_database(url: str, name: str) -> str:
    """A new, empty database on the server of ``url``; its URL."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"
