"""`DecisionLog`: the decision log behind a URL: SQLite by default, PostgreSQL for several replicas.

    log = DecisionLog.open("decisions.db")                       # a file beside you: no server, made on first use
    log = DecisionLog.open("sqlite:////srv/router/decisions.db")
    log = DecisionLog.open("postgresql://router@db.example/desk") # several service replicas share one

The schema is created and upgraded on first use by the versioned migrations (alembic, ``migrations/``), under a lock
(a file lock beside a SQLite file, an advisory lock on PostgreSQL), so two processes that open a new log at once do
not both create it. SQLite runs in WAL mode with a busy timeout: the service and the CLI commands use one file at
once (readers never wait for the writer; writers wait their turn, up to 30 s).
"""

from __future__ import annotations

import fcntl
import json
import logging
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

logger = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30
ADVISORY_LOCK_ID = 0x7469636B  # "tick": one lock for the decision log's migrations on a PostgreSQL server
PERSON_ROUTES = ("triage",)  # a person chose the queue: the ticket went to triage (audit tickets included)


def needs_sqlalchemy(error: ImportError) -> ValueError:
    return ValueError("the decision log needs SQLAlchemy and alembic: pip install 'ticket-classifier[log]' "
                      f"(and 'ticket-classifier[postgresql]' for PostgreSQL): {error}")


def database_url(value: str) -> str:
    """A URL SQLAlchemy understands: a plain path is a SQLite file; ``postgresql://`` and ``sqlite:///`` pass."""
    value = str(value).strip()
    if not value:
        raise ValueError("--decision_log: give a SQLite file (decisions.db) or a database URL")
    if "://" in value:
        scheme = value.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"--decision_log {value.split('://')[0]}://...: the decision log runs on SQLite "
                             "(a file, or sqlite:///path) or PostgreSQL (postgresql://...)")
        return "postgresql" + value[len(scheme):] if scheme == "postgres" else value
    return f"sqlite:///{Path(value).expanduser().resolve()}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back: they were stored in UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


class DecisionLog:
    """One decision log. ``engine``: a SQLAlchemy engine; use `DecisionLog.open`."""

    def __init__(self, engine, url: str):
        self.engine, self.url = engine, url

    @classmethod
    def open(cls, location: str, create: bool = True) -> "DecisionLog":
        try:
            import sqlalchemy
        except ImportError as error:
            raise needs_sqlalchemy(error) from None
        url = database_url(location)
        options = {"future": True, "pool_pre_ping": True}
        if url.startswith("sqlite"):
            path = Path(url.split(":///", 1)[1]) if ":///" in url else None
            if path is not None and not create and not path.is_file():
                raise ValueError(f"--decision_log {location}: no such log (nothing has been logged there yet)")
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            options["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        try:
            engine = sqlalchemy.create_engine(url, **options)
        except ImportError as error:  # the PostgreSQL driver
            raise ValueError(f"--decision_log {redacted(url)}: PostgreSQL needs its driver: pip install "
                             f"'ticket-classifier[postgresql]' ({error})") from None
        if url.startswith("sqlite"):
            @sqlalchemy.event.listens_for(engine, "connect")
            def _sqlite_pragmas(connection, _record):  # WAL: the service writes while the CLI reads
                cursor = connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()
        log = cls(engine, url)
        log.upgrade()
        return log

    @contextmanager
    def _migration_lock(self, connection):
        if self.url.startswith("sqlite") and ":///" in self.url:
            lock_path = Path(self.url.split(":///", 1)[1] + ".migrate.lock")
            with open(lock_path, "a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
        elif self.engine.dialect.name == "postgresql":
            from sqlalchemy import text

            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": ADVISORY_LOCK_ID})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": ADVISORY_LOCK_ID})
        else:
            yield

    def upgrade(self) -> None:
        """Create or upgrade the schema to the newest migration (nothing to do when it is current)."""
        from alembic import command
        from alembic.config import Config
        from sqlalchemy.exc import SQLAlchemyError

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.connect() as connection:
                with self._migration_lock(connection):
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                    connection.commit()
        except SQLAlchemyError as error:
            raise ValueError(f"--decision_log {redacted(self.url)}: cannot open the log ({short(error)})") from None

    def schema_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    # -- writing ------------------------------------------------------------------------------------------------

    def write(self, rows: list[dict], versions_seen: list[dict] = ()) -> None:
        """Insert decision rows (dicts of `schema.decisions` columns) in one transaction, after the records of the
        versions that made them (`version_record`; a version already there is left as it is)."""
        from sqlalchemy import select

        from .schema import decisions, versions

        if not rows and not versions_seen:
            return
        with self.engine.begin() as connection:
            for record in versions_seen:
                known = connection.execute(select(versions.c.fingerprint).where(
                    versions.c.fingerprint == record["fingerprint"])).first()
                if known is None:
                    connection.execute(versions.insert().values(**record))
            if rows:
                connection.execute(decisions.insert(), rows)

    def versions(self) -> dict:
        """{fingerprint: version record, its rule parsed} of every version that logged a decision."""
        from sqlalchemy import select

        from .schema import versions

        with self.engine.connect() as connection:
            rows = connection.execute(select(versions)).mappings().all()
        return {row["fingerprint"]: {**row, "rule": json.loads(row["rule"])} for row in rows}

    def dispose(self) -> None:
        self.engine.dispose()


def version_record(router) -> dict:
    """What the log keeps of the version that decides: its weights, backend and rule."""
    backend = router.backend.name + (f"-{router.backend.quantize}" if getattr(router.backend, "quantize", None) else "")
    return {"fingerprint": router.fingerprint, "model_version": router.model_dir.name,
            "weights_sha256": router.weights_fingerprint, "backend": backend,
            "rule": dumps({"score": router.rule.score,
                           "thresholds": dict(zip(router.labels, router.rule.label_thresholds))}),
            "registered_at": utcnow()}


def redacted(url: str) -> str:
    """A URL without its password, for messages."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        if ":" in credentials:
            return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url


def short(error: Exception) -> str:
    return " ".join(str(error).split())[:300]


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
