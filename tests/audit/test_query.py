"""Querying the log: the typed API, the SQL views, and the audit CLI, on SQLite and PostgreSQL."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

import guardrail
from guardrail.audit.query import CallFilter, query_calls, stats
from tests.cli.test_cli import run

POLICY = """\
name: q
privacy: {prompts: plaintext}
rules:
  - {id: no-gore, effect: deny, prompt: {terms: [gore]}}
  - {id: flag-cats, effect: flag, prompt: {terms: [cat]}}
"""


@pytest.fixture
def populated(database: str):
    with guardrail.Guard(policy=guardrail.parse_policy(POLICY), database=database) as guard:
        gan = guard.wrap(lambda prompt: [Image.new("RGB", (4, 4))], model="studio/gan-v2")
        other = guard.wrap(lambda prompt: [Image.new("RGB", (4, 4))], model="lab/diffusion")
        gan("a cat on a mat", user="alice", roles=["artist"])
        gan("a dog", user="bob", roles=["artist", "lead"])
        other("a Blue whale", user="alice", roles=["intern"])
        for prompt in ("gore", "more gore"):
            with pytest.raises(guardrail.PolicyViolation):
                gan(prompt, user="mallory", roles=["guest"])
        yield guard


def test_filters(populated) -> None:
    engine = populated.store.engine

    def users(**where) -> list:
        return sorted(c.user for c in query_calls(engine, CallFilter(**where)))

    assert users() == ["alice", "alice", "bob", "mallory", "mallory"]
    assert users(user="alice") == ["alice", "alice"]
    assert users(role="lead") == ["bob"]
    assert users(decision="deny") == ["mallory", "mallory"]
    assert users(status="allowed") == ["alice", "alice", "bob"]
    assert users(rule="flag-cats") == ["alice"]
    assert users(model="studio/*") == ["alice", "bob", "mallory", "mallory"]
    assert users(text="blue WHALE") == ["alice"]
    assert users(policy_version=populated.policy_version[:10]) == users()
    assert users(since=datetime.now(timezone.utc) + timedelta(minutes=1)) == []
    assert len(query_calls(engine, CallFilter(limit=2))) == 2
    assert query_calls(engine, CallFilter(limit=1))[0].user == "mallory"  # newest first
    counts = stats(engine)
    assert counts.calls == 5 and counts.by_status == {"allowed": 3, "denied": 2}
    assert counts.by_rule == {"no-gore": 2, "flag-cats": 1} and counts.by_user["mallory"] == 2


def test_sql_views_read_without_knowing_the_internals(populated) -> None:
    with populated.store.engine.connect() as connection:
        calls = connection.execute(sa.text("SELECT user_id, status FROM guardrail_calls ORDER BY request_seq")).all()
        rules = connection.execute(
            sa.text("SELECT rule_id, count(*) FROM guardrail_fired_rules GROUP BY rule_id ORDER BY rule_id")
        ).all()
    assert [tuple(c) for c in calls] == [
        ("alice", "allowed"),
        ("bob", "allowed"),
        ("alice", "allowed"),
        ("mallory", "denied"),
        ("mallory", "denied"),
    ]
    assert [tuple(r) for r in rules] == [("flag-cats", 1), ("no-gore", 2)]


def test_audit_cli(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "init", "proj")[0] == 0
    config = str(tmp_path / "proj" / "guardrail.yaml")
    with guardrail.Guard.from_config(config) as guard:
        pipe = guard.wrap(lambda prompt, negative_prompt="": [Image.new("RGB", (4, 4))])
        pipe("a fox", user="alice", negative_prompt="nsfw, nudity, gore")
        pipe("a fox", user="bob", negative_prompt="nsfw, nudity, gore")
        with pytest.raises(guardrail.PolicyViolation):
            pipe("gore", user="mallory")
    code, out, _ = run(capsys, "audit", "query", "--config", config, "--decision", "deny", "--json")
    assert code == 0 and [json.loads(line)["user"] for line in out.splitlines()] == ["mallory"]
    code, out, _ = run(capsys, "audit", "stats", "--config", config, "--json")
    assert json.loads(out)["by_status"] == {"allowed": 2, "denied": 1}
    code, out, _ = run(capsys, "audit", "verify", "--config", config)
    assert code == 0 and "verified: 6 events checked; 1 of 1 checkpoints verified" in out.replace("\n", " ")
    code, out, _ = run(capsys, "audit", "checkpoints", str(tmp_path / "cp.jsonl"), "--config", config)
    assert code == 0 and len((tmp_path / "cp.jsonl").read_text().splitlines()) == 1
    code, out, _ = run(capsys, "audit", "export", str(tmp_path / "evidence"), "--config", config, "--since", "1d")
    evidence = tmp_path / "evidence"
    assert code == 0 and len((evidence / "events.jsonl").read_text().splitlines()) == 6
    assert json.loads((evidence / "verification.json").read_text())["verification"]["ok"] is True
    assert (evidence / "checkpoint-public-key.pem").is_file()
    code, out, _ = run(capsys, "audit", "erase", "--user", "bob", "--reason", "request 7", "--config", config)
    assert code == 0 and "2 events" in out
    code, out, _ = run(capsys, "audit", "verify", "--config", config, "--json")
    report = json.loads(out)
    assert code == 0 and {r["status"] for r in report["ranges"]} == {"VALID", "REDACTED"}
    assert run(capsys, "audit", "purge", "--config", config)[0] == 2  # no retention configured, no --days
    code, out, _ = run(capsys, "audit", "purge", "--days", "0.0000001", "--config", config)
    assert code == 0 and "erased the personal data of 4 events" in out.replace("\n", " ")
    db = tmp_path / "proj" / "guardrail.db"
    with sa.create_engine(f"sqlite:///{db}").begin() as connection:
        connection.exec_driver_sql("UPDATE audit_events SET decision = 'allow' WHERE decision = 'deny'")
    code, out, _ = run(capsys, "audit", "verify", "--config", config, "--checkpoints", str(tmp_path / "cp.jsonl"))
    assert code == 1 and "MISMATCH" in out and "FAILED" in out
    assert run(capsys, "audit", "erase", "--config", config)[0] == 2
    assert run(capsys, "audit", "query", "--config", config, "--since", "last tuesday")[0] == 2
