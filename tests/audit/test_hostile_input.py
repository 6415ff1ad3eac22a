"""Hostile and careless input to the audit layer: refused in bounded time, with a clear error, nothing lost."""

import time
from pathlib import Path

import pytest
from PIL import Image

import guardrail
from guardrail.audit.query import CallFilter, query_calls
from tests.cli.test_cli import run

POLICY = "name: p\nprivacy: {prompts: plaintext}\n"


def test_a_database_file_deleted_under_a_running_guard_fails_closed(tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    with guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=str(database)) as guard:
        pipe = guard.wrap(lambda prompt: [Image.new("RGB", (4, 4))])
        assert pipe("a fox").governance.allowed
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        with pytest.raises(guardrail.AuditWriteError, match="deleted or replaced"):
            pipe("a fox")
        database.write_bytes(b"")  # a new file at the path is not the database either
        with pytest.raises(guardrail.AuditWriteError, match="deleted or replaced"):
            pipe("a fox")


def test_read_only_commands_refuse_a_missing_database_without_creating_it(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.db"
    for argv in (("audit", "list"), ("audit", "verify"), ("audit", "stats"), ("audit", "show", "abc")):
        code, _, err = run(capsys, *argv, "--database", str(missing))
        assert code == 2 and "does not exist" in err, argv
    image = tmp_path / "x.png"
    Image.new("RGB", (4, 4)).save(image)
    assert run(capsys, "verify", str(image), "--database", str(missing))[0] == 2
    assert not missing.exists()


@pytest.fixture
def logged(tmp_path: Path) -> str:
    database = str(tmp_path / "audit.db")
    with guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=database) as guard:
        pipe = guard.wrap(lambda prompt: [Image.new("RGB", (4, 4))])
        for prompt in ('a "quoted" fox', "a back\\slash fox", "a plain fox", 'brackets ["x"]'):
            pipe(prompt, user="alice")
    return database


def test_bad_ages_statuses_and_decisions_are_refused_with_the_allowed_values(logged: str, capsys) -> None:
    for argv in (
        ("audit", "purge", "--days", "-1"),
        ("audit", "purge", "--days", "0"),
        ("audit", "purge", "--days", "nan"),
    ):
        code, _, err = run(capsys, *argv, "--database", logged)
        assert code == 2 and "more than 0" in err, argv
    policy = Path(logged).parent / "p.yaml"
    policy.write_text(POLICY)
    for command in (("audit", "query"), ("audit", "stats"), ("policy", "replay", str(policy))):
        code, _, err = run(capsys, *command, "--since", "1000000d", "--database", logged)
        assert code == 2 and "reaches back more than" in err, command
    code, _, err = run(capsys, "audit", "query", "--status", "bogus", "--database", logged)
    flat = " ".join(err.split())
    assert code == 2 and "unknown status 'bogus'; expected one of pending, allowed, modified, denied, error" in flat
    code, _, err = run(capsys, "audit", "list", "--status", "bogus", "--database", logged)
    assert code == 2 and "unknown status" in err
    code, _, err = run(capsys, "audit", "query", "--decision", "bogus", "--database", logged)
    assert code == 2 and "expected one of allow, modify, deny" in " ".join(err.split())
    with pytest.raises(guardrail.InputError):
        CallFilter(status="Allowed")
    # nothing was erased by the refused purges
    assert run(capsys, "audit", "query", "--text", "plain", "--database", logged, "--json")[1].count("\n") == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [('"quoted"', 1), ("back\\slash", 1), ('["', 1), ('", "', 0), ("FOX", 3), ("%", 0), ("_", 0)],
)
def test_text_search_matches_the_prompt_as_typed(logged: str, database: str, text: str, expected: int) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{logged}")
    found = query_calls(engine, CallFilter(text=text))
    engine.dispose()
    assert len(found) == expected


def test_text_search_on_postgresql(postgres_url: str) -> None:
    with guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=postgres_url) as guard:
        pipe = guard.wrap(lambda prompt: [Image.new("RGB", (4, 4))])
        for prompt in ('a "quoted" fox', "a back\\slash fox", "a plain fox"):
            pipe(prompt)
        assert len(query_calls(guard.store.engine, CallFilter(text='"quoted"'))) == 1
        assert len(query_calls(guard.store.engine, CallFilter(text="back\\slash"))) == 1
        assert len(query_calls(guard.store.engine, CallFilter(text='["'))) == 0
        assert len(query_calls(guard.store.engine, CallFilter(text="Fox"))) == 3


def test_a_key_with_no_checkpoint_in_an_old_log_is_a_failure(tmp_path: Path, capsys) -> None:
    from guardrail.audit.checkpoints import create_key_files

    config = tmp_path / "guardrail.yaml"
    create_key_files(tmp_path / "audit.key")
    config.write_text(
        "policy: p.yaml\ndatabase: audit.db\naudit: {checkpoint_key_file: audit.key, checkpoint_interval_s: 60}\n"
    )
    (tmp_path / "p.yaml").write_text(POLICY)
    with guardrail.Guard.from_config(config) as guard:
        guard.wrap(lambda prompt: [])("a fox")
    code, out, _ = run(capsys, "audit", "verify", "--config", str(config))
    assert code == 0 and "1 of 1 checkpoints verified" in out.replace("\n", " ")
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'audit.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM audit_checkpoints")
    code, out, _ = run(capsys, "audit", "verify", "--config", str(config))
    assert code == 0, out  # younger than one interval: a checkpoint may simply not be due yet
    engine.dispose()
    config.write_text(config.read_text().replace("checkpoint_interval_s: 60", "checkpoint_interval_s: 0.2"))
    time.sleep(0.3)  # now the log is older than one interval: a checkpoint must exist
    code, out, _ = run(capsys, "audit", "verify", "--config", str(config))
    flat = " ".join(out.split())
    assert code == 1 and "no checkpoint, although checkpoints are signed at least every 0.2 s" in flat
    assert "VALID events 1-2" in flat and "0 of 0 checkpoints verified" in flat
