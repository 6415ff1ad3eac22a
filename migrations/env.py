"""Alembic environment: guardrail always hands in an open connection (see guardrail/audit/migrate.py)."""

from alembic import context

from guardrail.audit.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `guardrail db upgrade`, which passes a database connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
