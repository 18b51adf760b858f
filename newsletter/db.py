"""Engines, sessions, time conversion and schema migrations for SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from weakref import WeakSet

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from newsletter.config import normalize_database_url

# Re-exported so that the stages name an engine and a lost connection without importing
# SQLAlchemy themselves (import-linter: SQLAlchemy only in store/, db.py, models.py, tables.py).
__all__ = ["Engine", "OperationalError"]

PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_path(name: str) -> Path:
    """Locate a folder shipped beside the package (migrations, templates, segments).

    In a checkout (editable install) they live at the repository root; a wheel carries them
    under newsletter/_shipped/.
    """
    for candidate in (PACKAGE_DIR / "_shipped" / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the shipped folder {name!r} next to {PACKAGE_DIR}")


def as_utc(value: datetime) -> datetime:
    """Make a datetime aware: a naive one is taken as UTC, an aware one converted to UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB of page cache: big loads stay fast
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine: SQLite gets WAL and foreign keys, PostgreSQL the psycopg 3 driver."""
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def alembic_config(engine: Engine) -> Any:
    """An Alembic Config bound to this engine and the shipped migrations folder."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(shipped_path("migrations")))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` (default: the newest)."""
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to `revision` ('base' removes every table)."""
    from alembic import command

    command.downgrade(alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    """The newest revision the shipped migrations know."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def ensure_schema(engine: Engine) -> None:
    """Bring the database to the newest schema (idempotent; used by commands that write)."""
    if current_revision(engine) != head_revision(engine):
        upgrade(engine)


def now_utc() -> datetime:
    """The current time; only entry points call this, pipeline functions take `now`."""
    return datetime.now(UTC)


def create_table_once(engine: Engine, table: Any) -> None:
    """Create a table (the scheduler's job store) unless it exists, also when another process
    starting at the same moment creates it between the check and the CREATE (PostgreSQL
    then refuses the second CREATE with a unique violation on its catalogue)."""
    try:
        table.create(engine, checkfirst=True)
    except DBAPIError:
        if not inspect(engine).has_table(table.name, schema=table.schema):
            raise


_MIGRATED: WeakSet[Engine] = WeakSet()


def has_tables(engine: Engine | None) -> bool:
    """Whether the database exists and has been migrated (an unreachable one: False).

    A yes is remembered for the engine (a migrated database keeps its tables), so the
    view-in-browser route, which asks on every request, pays for the catalogue query once.
    """
    if engine is None:
        return False
    if engine in _MIGRATED:
        return True
    try:
        found = bool(inspect(engine).has_table("message"))
    except Exception:  # an unreachable database previews on fixture data
        return False
    if found:
        _MIGRATED.add(engine)
    return found
