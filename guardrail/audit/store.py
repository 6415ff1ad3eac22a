"""The audit writer: durable, retried, and loud when it cannot write.

SQLite runs in WAL mode, and every write transaction starts with BEGIN IMMEDIATE, so concurrent
writers queue on the busy timeout instead of failing with "database is locked".

Durability on SQLite: an outcome event is committed with synchronous=FULL (fsynced: it survives
power loss, and so does everything written before it). A request event, written before
generation, is committed with synchronous=NORMAL: it survives the process dying at once, and the
fsync of the call's outcome makes it durable against power loss before any image is returned.
`durability="full"` fsyncs every event instead (one more fsync per call). PostgreSQL commits
are durable as the server is configured (synchronous_commit=on by default), and request events
and quota charges are committed like SQLite's NORMAL (synchronous_commit=off for that transaction).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from guardrail.audit.chain import GENESIS, canonical_json, link
from guardrail.audit.checkpoints import Checkpoint, CheckpointSigner
from guardrail.audit.events import AuditEvent
from guardrail.errors import AuditWriteError, DatabaseUnavailable

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger("guardrail.audit")

Migrate = Literal["auto", "check"]
Durability = Literal["outcome", "full"]
_SYNC_LEVELS = {"FULL": "FULL", "NORMAL": "NORMAL"}
RETRY_DELAYS_S = (0.05, 0.2, 0.5, 1.0)
CHAIN_LOCK_ID = 0x6775617264  # PostgreSQL advisory lock that serialises appends to the chain


def database_url(value: str, base_dir: str | Path | None = None) -> str:
    """A SQLAlchemy URL from a URL or a plain file path; relative SQLite paths resolve against base_dir."""
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if "://" not in value:
        return f"sqlite:///{(base / value).resolve()}"
    if value.startswith("sqlite:///") and not value.startswith("sqlite:////") and value != "sqlite:///:memory:":
        path = value.removeprefix("sqlite:///").split("?", 1)
        query = f"?{path[1]}" if len(path) > 1 else ""
        return f"sqlite:///{(base / path[0]).resolve()}{query}"
    return value


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names (None: another database, or SQLite in memory)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[-1].split("?", 1)[0] if ":///" in url else ""
    return None if path in ("", ":memory:") else Path(path)


def database_exists(url: str) -> bool:
    """Whether the database a URL names is there: a SQLite file exists (connecting would create an
    empty one); any other URL is taken to exist, and connecting says otherwise. Reads nothing."""
    path = sqlite_path(url)
    return path is None or path.is_file()


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def create_engine(url: str) -> Engine:
    """An engine configured for durable, concurrent audit writes."""
    import sqlalchemy as sa

    serializer = {"json_serializer": canonical_json}  # stored JSON is the text the hash chain covers
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **serializer)

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # guardrail, not pysqlite, emits BEGIN
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            sync = connection.get_execution_options().get("sqlite_synchronous", "FULL")
            driver = connection.connection.driver_connection
            driver.execute(f"PRAGMA synchronous={_SYNC_LEVELS[sync]}")  # outside the transaction, as required
            driver.execute("BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, **serializer)


def connect(url: str) -> tuple[Engine, str | None]:
    """An engine that has reached the database, and the database's schema revision.

    Raises DatabaseUnavailable, naming the URL (password hidden) and the reason.
    """
    import sqlalchemy as sa

    from guardrail.audit import migrate

    try:
        engine = create_engine(url)
        return engine, migrate.current_revision(engine)
    except sa.exc.ArgumentError as exc:
        raise DatabaseUnavailable(f"invalid database URL {safe_url(url)}: {exc}") from None
    except (sa.exc.SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailable(f"cannot reach the audit database {safe_url(url)}: {_reason(exc)}") from None
    except ModuleNotFoundError as exc:
        raise DatabaseUnavailable(f"the driver for {safe_url(url)} is not installed: {exc.name}") from None


def relax_commit(connection: Any) -> None:
    """Commit this PostgreSQL transaction without waiting for the WAL flush: it survives the
    process dying, and the next synchronous commit (the call's outcome event) makes it durable.
    SQLite's equivalent is synchronous=NORMAL, chosen per transaction in the begin hook."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit = off")


def safe_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


class AuditStore:
    """Writes audit events. Connects and checks the schema on construction, so a bad database fails at start."""

    def __init__(
        self,
        url: str,
        *,
        migrate: Migrate = "auto",
        durability: Durability = "outcome",
        checkpoint_signer: CheckpointSigner | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval_s: float = 60.0,
    ) -> None:
        import sqlalchemy as sa

        from guardrail.audit import migrate as migrations
        from guardrail.audit.tables import audit_checkpoints, audit_events

        if migrate == "check" and not database_exists(url):  # connecting would create an empty file
            raise DatabaseUnavailable(
                f"the audit database {safe_url(url)} does not exist: check the path, or create it with "
                "`guardrail init` or `guardrail db upgrade`"
            )
        self.url = url
        self._checkpoints = audit_checkpoints
        self._signer = checkpoint_signer
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval_s = checkpoint_interval_s
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._checkpoint_lock = threading.Lock()
        self._closed = threading.Event()
        self._operational_errors = (sa.exc.OperationalError, sa.exc.InterfaceError, sqlite3.OperationalError)
        self.engine, current = connect(url)
        self._insert = _Insert(audit_events, self.engine)
        self._durability = durability
        self.crash_safe_engine = self.engine.execution_options(sqlite_synchronous="NORMAL")
        """For writes inside a call that the call's fsynced outcome event makes durable (quota charges)."""
        head = migrations.head_revision()
        if current != head:
            if migrate == "auto":
                try:
                    migrations.upgrade(self.engine)
                except sa.exc.SQLAlchemyError as exc:
                    raise DatabaseUnavailable(f"cannot migrate {safe_url(url)}: {_reason(exc)}") from None
            else:
                raise DatabaseUnavailable(
                    f"the audit database {safe_url(url)} is at schema revision {current or 'none'}, "
                    f"expected {head}: run `guardrail db upgrade`"
                )
        self._file = sqlite_path(url)
        self._identity = _identity(self._file) if self._file else None
        """The SQLite file's (device, inode): a write is only good while the path still names that file."""
        if checkpoint_signer is not None:
            threading.Thread(target=self._checkpoint_timer, name="guardrail-checkpoints", daemon=True).start()

    def _checkpoint_timer(self) -> None:
        """Checkpoint events left unsigned for checkpoint_interval_s, even when no event follows them."""
        while not self._closed.wait(self._checkpoint_interval_s):
            if self._since_checkpoint and time.monotonic() - self._last_checkpoint >= self._checkpoint_interval_s:
                try:
                    self.checkpoint()
                except Exception as exc:  # the next write or close() tries again; say so
                    log.error("timed audit checkpoint not written: %s", _reason(exc))

    def write(self, event: AuditEvent, fingerprints: Sequence[dict[str, Any]] = ()) -> None:
        """Insert one event, and the fingerprint registry's rows of its outputs in the same transaction
        (see the module doc for durability). Retries transient failures, then raises AuditWriteError.
        Writes the database."""
        row = event.row()
        crash_safe = event.kind == "request" and self._durability == "outcome"
        last: Exception | None = None
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS_S)):
            if delay:
                time.sleep(delay)
            try:
                if self._insert.fast:
                    self._insert.append_sqlite(self.engine, row, "NORMAL" if crash_safe else "FULL", fingerprints)
                else:
                    with self.engine.begin() as connection:
                        if crash_safe:
                            relax_commit(connection)
                        seq, prev = self._insert.head(connection)
                        self._insert(connection, link(row, seq + 1, prev))
                        if fingerprints:
                            connection.execute(self._insert.fingerprints.insert(), list(fingerprints))
                self._check_file(event.event_id)
                self._after_write()
                return
            except AuditWriteError:
                raise
            except self._operational_errors as exc:
                last = exc
                log.warning("audit write failed (attempt %d): %s", attempt + 1, _reason(exc))
            except Exception as exc:
                raise AuditWriteError(f"audit event {event.event_id} was not written: {_reason(exc)}") from exc
        raise AuditWriteError(
            f"audit event {event.event_id} was not written after {len(RETRY_DELAYS_S) + 1} attempts: {_reason(last)}"
        ) from last

    def write_checked(self, event: AuditEvent, check: Callable[[Any], None]) -> None:
        """Append an event only if `check(connection)` raises nothing. The check runs inside the
        transaction that holds the chain (SQLite's BEGIN IMMEDIATE, PostgreSQL's advisory lock), so
        two writers checking the same state are serialised and the second sees the first's event: one
        wins. The check's own exception passes through; nothing is written then. Writes the database."""
        import sqlalchemy as sa

        try:
            with self.engine.begin() as connection:
                seq, prev = self._insert.head(connection)
                check(connection)
                self._insert(connection, link(event.row(), seq + 1, prev))
        except sa.exc.SQLAlchemyError as exc:
            raise AuditWriteError(f"audit event {event.event_id} was not written: {_reason(exc)}") from exc
        self._check_file(event.event_id)
        self._after_write()

    def _check_file(self, event_id: str) -> None:
        """Fail closed when the SQLite file was deleted or replaced under this store: SQLite keeps writing
        to the open, unlinked file, so the event just committed is not in the database at the path."""
        if self._file is None or _identity(self._file) == self._identity:
            return
        raise AuditWriteError(
            f"audit event {event_id} was not written to {self._file}: the database file was deleted or "
            "replaced while this Guard was running; restore it and start a new Guard"
        )

    def _after_write(self) -> None:
        if self._signer is None:
            return
        with self._checkpoint_lock:
            self._since_checkpoint += 1
            due = self._since_checkpoint >= self._checkpoint_every
            due = due or time.monotonic() - self._last_checkpoint >= self._checkpoint_interval_s
        if due:
            self.checkpoint()

    def checkpoint(self) -> Checkpoint | None:
        """Sign the chain's current head and store the checkpoint. Writes the database; returns
        None when there is no key or no event yet."""
        if self._signer is None:
            return None
        from datetime import datetime, timezone

        with self._checkpoint_lock:
            self._since_checkpoint = 0
            self._last_checkpoint = time.monotonic()
        with self.engine.begin() as connection:
            seq, head = self._insert.head(connection)
            if seq == 0:
                return None
            checkpoint = self._signer.sign(seq, head, datetime.now(timezone.utc))
            connection.execute(self._checkpoints.insert(), checkpoint.as_dict())
        return checkpoint

    def close(self) -> None:
        """Write a final checkpoint (when events were written since the last) and release connections."""
        self._closed.set()
        if self._signer is not None and self._since_checkpoint:
            try:
                self.checkpoint()
            except Exception as exc:  # closing must not hide the caller's own error; the gap is logged
                log.error("final audit checkpoint not written: %s", _reason(exc))
        self.engine.dispose()


class _Insert:
    """One audit row insert. On SQLite the statement is compiled by SQLAlchemy once and values go
    through the columns' own bind processors, then straight to the driver (append_sqlite): this
    halves the cost of the write that sits inside every guarded call. Elsewhere it is a Core insert."""

    def __init__(self, table: Any, engine: Engine) -> None:
        import sqlalchemy as sa

        from guardrail.audit.tables import output_fingerprints

        self.table = table
        self.fingerprints = output_fingerprints
        self.fast = engine.dialect.name == "sqlite"
        self.head_query = sa.select(table.c.chain_seq, table.c.entry_hash).order_by(table.c.chain_seq.desc()).limit(1)
        self.lock = sa.select(sa.func.pg_advisory_xact_lock(CHAIN_LOCK_ID))
        if self.fast:
            dialect = engine.dialect  # its JSON serializer is the canonical one
            self.head_sql = str(self.head_query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
            columns = [c for c in table.columns if c.name != "seq"]
            compiled = table.insert().values({c.name: sa.bindparam(c.name) for c in columns}).compile(dialect=dialect)
            self.sql = str(compiled)
            self.keys = list(compiled.positiontup or [])
            self.processors = [(k, table.c[k].type.bind_processor(dialect)) for k in self.keys]
            registry = [c for c in output_fingerprints.columns if c.name != "id"]
            compiled = output_fingerprints.insert().values({c.name: sa.bindparam(c.name) for c in registry})
            compiled = compiled.compile(dialect=dialect)
            self.fingerprint_sql = str(compiled)
            self.fingerprint_processors = [
                (k, output_fingerprints.c[k].type.bind_processor(dialect)) for k in compiled.positiontup or []
            ]

    def head(self, connection: Any) -> tuple[int, str]:
        """The chain's last (chain_seq, entry_hash), inside the writing transaction, which holds the
        chain: SQLite's BEGIN IMMEDIATE, PostgreSQL's transaction-scoped advisory lock."""
        if self.fast:
            found = connection.exec_driver_sql(self.head_sql).first()
        else:
            connection.execute(self.lock)
            found = connection.execute(self.head_query).first()
        return (int(found[0]), str(found[1])) if found else (0, GENESIS)

    def append_sqlite(
        self, engine: Engine, row: dict[str, Any], synchronous: str, fingerprints: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Append one event (and its outputs' fingerprints) on SQLite: a pooled connection, and the
        SQLAlchemy-compiled statements run on its driver directly (the Connection layer costs as much
        as the insert itself)."""
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(f"PRAGMA synchronous={_SYNC_LEVELS[synchronous]}")
            cursor.execute("BEGIN IMMEDIATE")
            try:
                found = cursor.execute(self.head_sql).fetchone()
                seq, prev = (int(found[0]), str(found[1])) if found else (0, GENESIS)
                linked = link(row, seq + 1, prev)
                cursor.execute(self.sql, _bound(self.processors, linked))
                if fingerprints:
                    rows = [_bound(self.fingerprint_processors, f) for f in fingerprints]
                    cursor.executemany(self.fingerprint_sql, rows)
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool

    def __call__(self, connection: Any, row: dict[str, Any]) -> None:
        """Insert through SQLAlchemy Core (PostgreSQL; SQLite appends with append_sqlite)."""
        connection.execute(self.table.insert(), row)


def _bound(processors: list[tuple[str, Any]], row: dict[str, Any]) -> tuple[Any, ...]:
    """A row's values in a compiled statement's order, through the columns' own bind processors."""
    return tuple(process(row.get(key)) if process else row.get(key) for key, process in processors)


def _reason(exc: BaseException | None) -> str:
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
