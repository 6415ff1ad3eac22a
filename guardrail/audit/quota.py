"""The quota ledger: image counts per quota, subject and window in the quota_usage table. Each
check-and-count is one atomic statement (INSERT ... ON CONFLICT DO UPDATE ... WHERE used + n <= limit),
all of a call's counters in one transaction: either every counter has room and all are charged, or
none is. What the counts mean for a decision is policy's (guardrail.policy.quota)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from guardrail.audit.store import relax_commit
from guardrail.policy.quota import Overdrawn, QuotaUse

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class QuotaLedger:
    """Counts images against quotas. Thread- and process-safe (one statement per counter)."""

    def __init__(self, engine: Engine) -> None:
        from guardrail.audit.tables import quota_usage

        self.engine = engine
        self.table = quota_usage
        self._upsert = _upsert_statement(quota_usage, engine.dialect.name)

    def charge(self, uses: Sequence[QuotaUse], images: int, *, commit: bool = True) -> list[int] | Overdrawn:
        """Add `images` to every counter, or to none when one has no room: the new counts, or the
        counter that was full. Writes, unless `commit` is false: then the same statements run in a
        transaction that is rolled back, so the answer is exact and nothing is counted."""
        import sqlalchemy as sa

        counts: list[int] = []
        with self.engine.connect() as connection:
            transaction = connection.begin()
            try:
                relax_commit(connection)  # the call's outcome event makes it durable
                for use in uses:
                    values = {
                        "quota": use.quota.id,
                        "subject": use.subject,
                        "window": use.window_start,
                        "n": images,
                        "limit": use.quota.images,
                    }
                    used = connection.execute(self._upsert, values).scalar() if images <= use.quota.images else None
                    if used is None:
                        current = connection.execute(
                            sa.select(self.table.c.used).where(
                                self.table.c.quota_id == use.quota.id,
                                self.table.c.subject == use.subject,
                                self.table.c.window_start == use.window_start,
                            )
                        ).scalar()
                        transaction.rollback()
                        return Overdrawn(use, int(current or 0))
                    counts.append(int(used))
            except BaseException:
                if transaction.is_active:
                    transaction.rollback()
                raise
            if commit:
                transaction.commit()
            else:
                transaction.rollback()
        return counts


def _upsert_statement(table: Any, dialect_name: str) -> Any:
    """Check-and-count in one statement, built once: insert the window's row, or add to it only
    while the sum stays within the limit; RETURNING gives the new count, or nothing when full."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = postgresql if dialect_name == "postgresql" else sqlite
    n: Any = sa.bindparam("n")
    statement = dialect.insert(table).values(
        quota_id=sa.bindparam("quota"), subject=sa.bindparam("subject"), window_start=sa.bindparam("window"), used=n
    )
    return statement.on_conflict_do_update(
        index_elements=[table.c.quota_id, table.c.subject, table.c.window_start],
        set_={"used": table.c.used + n},
        where=table.c.used + n <= sa.bindparam("limit"),
    ).returning(table.c.used)
