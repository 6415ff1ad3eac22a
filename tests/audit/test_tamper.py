"""The tamper-evidence claims, one attack at a time, on real SQLite and PostgreSQL logs."""

import contextlib
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

import guardrail
from guardrail.audit.chain import link
from guardrail.audit.checkpoints import CheckpointSigner, create_key_files, read_checkpoint_file
from guardrail.audit.erase import erase
from guardrail.audit.tables import audit_checkpoints, audit_events
from guardrail.audit.verify import verify_log

POLICY = "name: p\nprivacy: {prompts: plaintext}\nrules: [{id: no-gore, effect: deny, prompt: {terms: [gore]}}]\n"


@pytest.fixture
def keys(tmp_path: Path) -> tuple[CheckpointSigner, bytes]:
    public = create_key_files(tmp_path / "audit.key")
    return CheckpointSigner.from_file(tmp_path / "audit.key"), public.read_bytes()


@pytest.fixture(autouse=True)
def _close_guards():
    yield
    for guard in _OPEN:
        guard.close()  # stops the checkpoint timer; a checkpoint of a tampered log is harmless now
    _OPEN.clear()


_OPEN: list[guardrail.Guard] = []


def fill(url: str, signer: CheckpointSigner, calls: int = 10, every: int = 6) -> guardrail.Guard:
    guard = guardrail.Guard(
        policy=guardrail.parse_policy(POLICY), database=url, checkpoint_signer=signer, audit={"checkpoint_every": every}
    )
    _OPEN.append(guard)
    pipe = guard.wrap(lambda prompt: [Image.new("RGB", (4, 4))])
    for i in range(calls):
        with contextlib.suppress(guardrail.PolicyViolation):
            pipe(f"cat {i}" if i % 4 else "gore", user=f"user{i % 3}")
    return guard


def statuses(report) -> list[tuple[int, int, str]]:
    return [(r.start, r.end, r.status) for r in report.ranges]


def execute(engine: sa.Engine, *statements) -> None:
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(statement)


def row(engine: sa.Engine, seq: int) -> dict:
    with engine.connect() as connection:
        return dict(connection.execute(sa.select(audit_events).where(audit_events.c.chain_seq == seq)).mappings().one())


def test_an_untouched_log_verifies(database, keys) -> None:
    signer, public = keys
    guard = fill(database, signer)
    guard.close()  # writes a final checkpoint
    report = verify_log(guard.store.engine, public_key=public)
    assert report.ok and statuses(report) == [(1, 20, "VALID")]
    assert report.checkpoints == 4  # after 6, 12, 18 events and at close


@pytest.mark.parametrize(
    ("attack", "expected"),
    [
        ("edited payload", (5, "MISMATCH")),
        ("edited decision", (10, "MISMATCH")),
        ("deleted middle event", (7, "GAP")),
        ("reordered events", (4, "MISMATCH")),
        ("forged insert", (11, "MISMATCH")),
    ],
)
def test_each_edit_is_caught(database, keys, attack, expected) -> None:
    signer, public = keys
    guard = fill(database, signer)
    engine = guard.store.engine
    ev = audit_events
    if attack == "edited payload":
        execute(engine, ev.update().where(ev.c.chain_seq == 5).values(prompts=["a harmless cat"]))
    elif attack == "edited decision":
        assert row(engine, 10)["decision"] == "deny"
        execute(engine, ev.update().where(ev.c.chain_seq == 10).values(decision="allow", status="allowed"))
    elif attack == "deleted middle event":
        execute(engine, ev.delete().where(ev.c.chain_seq == 7))
    elif attack == "reordered events":
        execute(
            engine,
            ev.update().where(ev.c.chain_seq == 4).values(chain_seq=-1),
            ev.update().where(ev.c.chain_seq == 5).values(chain_seq=4),
            ev.update().where(ev.c.chain_seq == -1).values(chain_seq=5),
        )
    elif attack == "forged insert":
        forged = {k: v for k, v in row(engine, 10).items() if k != "seq"}
        forged.update(event_id="f" * 32, decision="allow", status="allowed")
        forged = link(forged, 10, row(engine, 9)["entry_hash"])  # a well-formed entry...
        execute(engine, ev.update().where(ev.c.chain_seq >= 10).values(chain_seq=ev.c.chain_seq + 1000))
        execute(engine, ev.insert().values(forged))  # ...squeezed in before the real 10th
        execute(engine, ev.update().where(ev.c.chain_seq >= 1010).values(chain_seq=ev.c.chain_seq - 999))
    report = verify_log(engine, public_key=public)
    assert not report.ok
    assert expected in [(start, status) for start, _end, status in statuses(report)], statuses(report)
    guard.store.engine.dispose()


def test_deleting_the_newest_events_is_caught_through_a_checkpoint(database, keys, tmp_path) -> None:
    signer, public = keys
    guard = fill(database, signer)
    guard.close()
    export = tmp_path / "checkpoints.jsonl"
    with guard.store.engine.connect() as connection:
        rows = connection.execute(sa.select(audit_checkpoints)).mappings().all()
    export.write_text(
        "".join(
            json.dumps({k: r[k] for k in ("chain_seq", "entry_hash", "created_at", "key_id", "signature")}) + "\n"
            for r in rows
        )
    )
    # The attacker deletes the newest events and the checkpoints in the database that mention them.
    execute(
        guard.store.engine,
        audit_events.delete().where(audit_events.c.chain_seq > 14),
        audit_checkpoints.delete().where(audit_checkpoints.c.chain_seq > 14),
    )
    in_database = verify_log(guard.store.engine, public_key=public)
    assert in_database.ok  # the database alone cannot know what it never shows...
    kept_elsewhere = verify_log(guard.store.engine, public_key=public, checkpoints=read_checkpoint_file(export))
    assert not kept_elsewhere.ok and (15, 20, "TRUNCATED") in statuses(kept_elsewhere)


def test_a_chain_recomputed_without_the_key_is_caught(database, keys) -> None:
    signer, public = keys
    guard = fill(database, signer)
    engine = guard.store.engine
    rows = [row(engine, seq) for seq in range(1, 21)]
    rows[2]["decision"], rows[2]["status"] = "allow", "allowed"  # rewrite history at event 3...
    previous = "0" * 64
    for number, item in enumerate(rows, 1):  # ...and recompute every hash after it, as anyone can
        relinked = link(
            {
                k: v
                for k, v in item.items()
                if k not in ("chain_seq", "prev_hash", "core_hash", "personal_hash", "entry_hash")
            },
            number,
            previous,
        )
        execute(
            engine,
            audit_events.update()
            .where(audit_events.c.chain_seq == number)
            .values(
                {
                    k: relinked[k]
                    for k in ("prev_hash", "core_hash", "personal_hash", "entry_hash", "decision", "status")
                }
            ),
        )
        previous = relinked["entry_hash"]
    report = verify_log(engine, public_key=public)
    assert not report.ok
    assert any("history rewritten" in p for p in report.checkpoint_problems)
    guard.store.engine.dispose()


def test_forged_or_foreign_checkpoint_signatures_fail(database, keys, tmp_path) -> None:
    signer, public = keys
    guard = fill(database, signer)
    engine = guard.store.engine
    other_public = create_key_files(tmp_path / "other.key").read_bytes()
    wrong_key = verify_log(engine, public_key=other_public)
    assert not wrong_key.ok and all("signature does not verify" in p for p in wrong_key.checkpoint_problems)
    with engine.begin() as connection:
        first = connection.execute(sa.select(audit_checkpoints).limit(1)).mappings().one()
        flipped = bytearray(bytes.fromhex(first["signature"]))
        flipped[0] ^= 0x01
        connection.execute(
            audit_checkpoints.update().where(audit_checkpoints.c.id == first["id"]).values(signature=flipped.hex())
        )
    report = verify_log(engine, public_key=public)
    assert not report.ok and len(report.checkpoint_problems) == 1
    engine.dispose()


def test_an_erased_payload_still_verifies(database, keys) -> None:
    signer, public = keys
    guard = fill(database, signer)
    erased = erase(guard.store, user="user1", reason="GDPR art. 17 request #42")
    report = verify_log(guard.store.engine, public_key=public)
    assert erased > 0 and report.ok
    assert {r.status for r in report.ranges} == {"VALID", "REDACTED"}
    with guard.store.engine.connect() as connection:
        leftover = connection.execute(sa.select(sa.func.count()).where(audit_events.c.user_id == "user1")).scalar()
        erasure = connection.execute(sa.select(audit_events).where(audit_events.c.kind == "erasure")).mappings().one()
    assert leftover == 0 and erasure["detail"]["events"] == erased
    # An erased event's core is still protected.
    target = next(r for r in report.ranges if r.status == "REDACTED").start
    execute(
        guard.store.engine, audit_events.update().where(audit_events.c.chain_seq == target).values(decision="allow")
    )
    assert not verify_log(guard.store.engine, public_key=public).ok
    guard.store.engine.dispose()


@pytest.mark.parametrize("attack", ["none", "edit", "delete"])
def test_parallel_verification_agrees_with_one_process(sqlite_url, keys, attack) -> None:
    signer, public = keys
    guard = fill(sqlite_url, signer, calls=20)
    engine = guard.store.engine
    if attack == "edit":
        execute(engine, audit_events.update().where(audit_events.c.chain_seq == 21).values(prompts=["changed"]))
    elif attack == "delete":
        execute(engine, audit_events.delete().where(audit_events.c.chain_seq.in_([20, 21])))
    one = verify_log(engine, public_key=public, workers=1)
    three = verify_log(engine, public_key=public, workers=3)  # stretches 1-14, 15-28, 29-40
    assert one.as_dict() | {"events_per_second": None} == three.as_dict() | {"events_per_second": None}
    assert one.ok is (attack == "none")


def test_checkpoints_are_timed_even_without_further_writes(sqlite_url, keys) -> None:
    import time

    signer, public = keys
    with guardrail.Guard(
        policy=guardrail.parse_policy(POLICY),
        database=sqlite_url,
        checkpoint_signer=signer,
        audit={"checkpoint_interval_s": 0.2},
    ) as guard:
        guard.wrap(lambda prompt: [])("a cat")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with guard.store.engine.connect() as connection:
                signed = connection.execute(sa.select(audit_checkpoints.c.chain_seq)).scalars().all()
            if signed:
                break
            time.sleep(0.05)
        assert signed == [2]  # the call's request and outcome, signed by the timer alone
        assert verify_log(guard.store.engine, public_key=public).checkpoints == 1


@pytest.mark.parametrize("column", ["detail", "model", "params"])
def test_json_a_reader_sees_differently_from_the_hash_does_not_verify(database, keys, column: str) -> None:
    """A duplicate key prefixed to a stored JSON object: Python's json keeps the last value (the one
    hashed), SQLite's json_extract and most readers the first. The stored bytes must be what is proven."""
    signer, _ = keys
    guard = fill(database, signer, calls=4)
    engine = guard.store.engine
    target = 4  # an outcome event
    key = {"detail": "decision", "model": "name_or_path", "params": "steps"}[column]
    with engine.begin() as connection:
        text = connection.execute(
            sa.select(sa.cast(audit_events.c[column], sa.Text)).where(audit_events.c.chain_seq == target)
        ).scalar_one()
        assert text.startswith("{")
        forged = '{"' + key + '":"forged",' + text[1:]
        connection.execute(
            sa.text(
                f"UPDATE audit_events SET {column} = :v WHERE chain_seq = :s"
            ),  # raw text, as an attacker writes it
            {"v": forged, "s": target},
        )
        if engine.dialect.name == "sqlite":  # what an analyst's SQL reads: the forged value
            seen = connection.execute(
                sa.text(f"SELECT json_extract({column}, '$.{key}') FROM audit_events WHERE chain_seq = {target}")
            ).scalar_one()
            assert seen == "forged"
    assert json.loads(forged)[key] == json.loads(text)[key]  # parsed as Python parses it: unchanged
    report = verify_log(engine)
    assert not report.ok
    [bad] = [r for r in report.ranges if r.status == "MISMATCH"]
    assert (bad.start, bad.end) == (target, target)
    assert f"stored JSON not in canonical form ({column})" in bad.reason
