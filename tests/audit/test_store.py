"""The audit store on real SQLite and PostgreSQL: migrations, durable writes, privacy modes, queries."""

import hashlib
import hmac
import threading

import pytest
import sqlalchemy as sa
from PIL import Image

import guardrail
from guardrail.audit import migrate
from guardrail.audit.query import call_events, list_calls
from guardrail.audit.store import AuditStore, create_engine, database_url
from guardrail.audit.tables import metadata
from tests.conftest import DEFAULT_POLICY, events


def policy_with_privacy(mode: str) -> guardrail.Policy:
    return guardrail.parse_policy(
        f"name: p\nprivacy: {{prompts: {mode}}}\nrules: [{{id: f, effect: flag, prompt: {{terms: [fox]}}}}]\n"
    )


def test_upgrade_and_downgrade(database: str) -> None:
    engine = create_engine(database)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert "audit_events" in sa.inspect(engine).get_table_names()
    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert "audit_events" not in sa.inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert "audit_events" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_migrations_match_the_table_definitions(database: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(database)
    migrate.upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    engine.dispose()
    assert diff == []


def test_sqlite_is_durable_wal(sqlite_url: str) -> None:
    store = AuditStore(sqlite_url)
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    store.close()


@pytest.mark.parametrize("mode", ["hmac", "plaintext", "redacted"])
def test_prompt_privacy_modes(database: str, hmac_key, mode: str) -> None:
    with guardrail.Guard(policy=policy_with_privacy(mode), database=database, hmac_key=hmac_key) as guard:
        out = guard.wrap(lambda prompt, negative_prompt="": [Image.new("RGB", (4, 4))])(
            "a fox", negative_prompt="blurry"
        )
        request, outcome = events(guard, out.governance.audit_id)
    expected = {
        "hmac": [hmac.new(hmac_key.secret, b"a fox", hashlib.sha256).hexdigest()],
        "plaintext": ["a fox"],
        "redacted": [None],
    }[mode]
    assert request["prompts"] == outcome["prompts"] == expected
    assert request["privacy_mode"] == mode
    assert request["hmac_key_id"] == (hmac_key.key_id if mode == "hmac" else None)
    assert hmac_key.secret.hex() not in repr(request) and "secret" not in repr(hmac_key)


def test_modified_negative_prompts_follow_the_privacy_mode(sqlite_url, hmac_key) -> None:
    with guardrail.Guard(policy=DEFAULT_POLICY, database=sqlite_url, hmac_key=hmac_key) as guard:
        out = guard.wrap(lambda prompt, negative_prompt="": [])("a fox", negative_prompt="blurry")
        outcome = events(guard, out.governance.audit_id)[-1]
    assert "blurry" not in str(outcome)
    assert outcome["negative_prompts"] == [hmac_key.digest("blurry, nsfw, nudity, gore")]


def test_guard_on_postgres_end_to_end(postgres_url, hmac_key) -> None:
    with guardrail.Guard(policy=DEFAULT_POLICY, database=postgres_url, hmac_key=hmac_key) as guard:
        pipe = guard.wrap(lambda prompt, negative_prompt="": [Image.new("RGB", (4, 4))], model="pg-gen")
        ok = pipe("a fox", negative_prompt="nsfw, nudity, gore", user="alice")
        with pytest.raises(guardrail.PolicyViolation):
            pipe("gore", user="mallory")
        calls = list_calls(guard.store.engine)
        assert [(c.user, c.status) for c in calls] == [("mallory", "denied"), ("alice", "allowed")]
        assert calls[1].started_at.tzinfo is not None
        assert [e["kind"] for e in call_events(guard.store.engine, ok.governance.audit_id[:8])] == [
            "request",
            "outcome",
        ]


def test_concurrent_writers(database: str, hmac_key) -> None:
    """Two Guards (as two workers would) and several threads each: every call leaves both events."""
    guards = [
        guardrail.Guard(policy=policy_with_privacy("hmac"), database=database, hmac_key=hmac_key) for _ in range(2)
    ]
    ids: list[str] = []

    def worker(guard: guardrail.Guard) -> None:
        pipe = guard.wrap(lambda prompt: [Image.new("RGB", (4, 4))])
        for i in range(15):
            ids.append(pipe(f"a cat {i}").governance.audit_id)

    threads = [threading.Thread(target=worker, args=(g,)) for g in guards for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = events(guards[0])
    for g in guards:
        g.close()
    assert len(ids) == 90
    assert sorted(r["call_id"] for r in rows if r["kind"] == "request") == sorted(ids)
    assert sorted(r["call_id"] for r in rows if r["kind"] == "outcome") == sorted(ids)


def test_list_shows_unfinished_calls_as_pending(sqlite_url, hmac_key) -> None:
    from guardrail.audit.events import new_id, request_event
    from guardrail.privacy import PromptPrivacy
    from guardrail.request import CallContext, GenerationRequest

    store = AuditStore(sqlite_url)
    ctx = CallContext(
        new_id(), GenerationRequest(prompts=("x",), user="crashy"), "p", "v" * 64, PromptPrivacy("redacted")
    )
    store.write(request_event(ctx))
    [call] = list_calls(store.engine)
    assert (call.user, call.status, call.decision) == ("crashy", "pending", None)
    store.close()


def test_ambiguous_prefix_is_refused(sqlite_url) -> None:
    store = AuditStore(sqlite_url)
    with pytest.raises(LookupError):
        from guardrail.audit.events import request_event
        from guardrail.privacy import PromptPrivacy
        from guardrail.request import CallContext, GenerationRequest

        for call_id in ("abc1", "abc2"):
            store.write(request_event(CallContext(call_id, GenerationRequest(), "p", "v", PromptPrivacy("redacted"))))
        call_events(store.engine, "abc")
    store.close()


def test_database_url_resolution(tmp_path) -> None:
    assert database_url("audit.db", tmp_path) == f"sqlite:///{tmp_path / 'audit.db'}"
    assert database_url("sqlite:///rel/a.db", tmp_path) == f"sqlite:///{tmp_path / 'rel' / 'a.db'}"
    assert database_url("sqlite:////abs/a.db", tmp_path) == "sqlite:////abs/a.db"
    assert database_url("postgresql+psycopg://u@h/db", tmp_path) == "postgresql+psycopg://u@h/db"
