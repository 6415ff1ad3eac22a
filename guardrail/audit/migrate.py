"""Schema changes, through Alembic only. `guardrail db upgrade` and the Guard's start-up call these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guardrail._resources import data_dir

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine


def _config(connection: Connection | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(data_dir("migrations")))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database up to `revision`. Writes the schema."""
    from alembic import command

    with engine.begin() as connection:
        command.upgrade(_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database down to `revision` ("base" removes every table). Writes the schema."""
    from alembic import command

    with engine.begin() as connection:
        command.downgrade(_config(connection), revision)
