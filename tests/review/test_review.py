"""The review queue end to end, with real photos, a real reference set, real signing and the real
databases: a screening `review` hit holds the images; approvals by distinct reviewers release them,
signed with the review recorded; rejection and expiry delete them; the chain verifies after it all."""

import io
import multiprocessing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import skimage.data
import sqlalchemy as sa
from PIL import Image

import guardrail
from tests.conftest import events, make_signer

POLICY = """
name: reviewed
privacy: {prompts: plaintext}
screening:
  sets:
    logos: {action: review}
review: {approvals: 2, expire_after: 1d}
"""


def photo(name: str, size: int = 256) -> Image.Image:
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize((size, size))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def logos(tmp_path: Path) -> guardrail.ReferenceSet:
    refset = guardrail.ReferenceSet.create(tmp_path / "logos")
    refset.add([("coffee cup", "coffee.png", png(photo("coffee")))])
    return refset


def make_guard(database: str, tmp_path: Path, logos: Any, dev_ca: Any = None, **options: Any) -> guardrail.Guard:
    return guardrail.Guard(
        policy=guardrail.parse_policy(options.pop("policy", POLICY)),
        database=database,
        reference_sets={"logos": logos},
        signer=make_signer(dev_ca) if dev_ca is not None else None,
        review={"folder": str(tmp_path / "held"), **options},
    )


def test_a_review_hit_holds_the_images_until_two_reviewers_approve(
    database: str, tmp_path: Path, logos: Any, dev_ca: Any
) -> None:
    with make_guard(database, tmp_path, logos, dev_ca) as guard:
        out = guard.wrap(lambda prompt: [photo("coffee"), photo("rocket")])("a cup", user="alice")
        assert out.images == [] and out.governance.pending_review and out.governance.signed == ()
        audit_id = out.governance.audit_id
        outcome = events(guard, audit_id)[-1]
        assert outcome["status"] == "pending_review" and outcome["rules"] == ["screening.logos"]
        held_calls = guardrail.query_calls(guard.store.engine, guardrail.CallFilter(status="pending_review"))
        assert [call.call_id for call in held_calls] == [audit_id]
        item = guard.reviews.item(audit_id[:12])
        assert (item.status, item.requested_by, item.approvals_needed, len(item.images)) == ("pending", "alice", 2, 2)
        assert item.prompts == ("a cup",) and item.screening["outputs"][0][0]["label"] == "coffee cup"
        held = list((tmp_path / "held").iterdir())
        assert len([p for p in held if p.suffix == ""]) == 2
        assert all(p.stat().st_mode & 0o077 == 0 for p in [tmp_path / "held", *held])  # owner-only

        with pytest.raises(guardrail.ReviewError, match=r"alice made call .* cannot approve it"):
            guard.reviews.approve(audit_id, "alice")
        with pytest.raises(guardrail.ReviewError, match="only approved images are released"):
            guard.review_result(audit_id)
        first = guard.reviews.approve(audit_id, "bob", "looks like a cup, not the logo")
        assert first.status == "pending" and [a["reviewer"] for a in first.approvals] == ["bob"]
        with pytest.raises(guardrail.ReviewError, match="bob has already approved"):
            guard.reviews.approve(audit_id, "bob")
        with pytest.raises(guardrail.ReviewConflict, match="changed since you read it"):
            guard.reviews.approve(audit_id, "carol", seen=0)  # decided on what she saw before bob acted
        done = guard.reviews.approve(audit_id, "carol", seen=1)
        assert done.status == "approved" and done.decided["reviewer"] == "carol"

        released = guard.review_result(audit_id)
        assert len(released) == 2
        for image, record in zip(released, item.images, strict=True):
            verification = guardrail.verify_bytes(image.data, trust_anchors=dev_ca.trust_anchors.read_text())
            assert verification.ok() and verification.audit_id == audit_id
            review = verification.governance["review"]
            assert review["status"] == "approved" and [a["reviewer"] for a in review["approvals"]] == ["bob", "carol"]
            pixels = Image.open(io.BytesIO(image.data)).convert("RGB")
            assert guardrail.images.image_sha256(pixels) == record["sha256"]  # the pixels the call produced
        listed = {c.call_id: c.status for c in guardrail.query_calls(guard.store.engine)}
        assert listed[audit_id] == "approved after review"  # what reviewers decided, in the call list
        fetched = guard.reviews.fetch(audit_id, tmp_path / "out")
        assert [p.read_bytes() for p in fetched] == [i.data for i in released]
        kinds = [(e["kind"], e["status"], e["user_id"]) for e in events(guard, audit_id)]
        assert kinds[-2:] == [("review", "pending_review", "bob"), ("review", "approved", "carol")]
        with guard.store.engine.connect() as connection:  # the documented view
            query = "SELECT reviewer, status FROM guardrail_reviews WHERE call_id = :id ORDER BY chain_seq"
            rows = connection.execute(sa.text(query), {"id": audit_id}).all()
        assert [tuple(row) for row in rows] == [("bob", "pending_review"), ("carol", "approved")]
        assert guardrail.verify_log(guard.store.engine).ok


def test_a_rejection_deletes_the_held_images(sqlite_url: str, tmp_path: Path, logos: Any) -> None:
    with make_guard(sqlite_url, tmp_path, logos, on_review="raise") as guard:
        with pytest.raises(guardrail.PendingReview, match=r"held for review \(screening\.logos\)") as caught:
            guard.wrap(lambda prompt: [photo("coffee")])("a cup", user="alice")
        audit_id = caught.value.audit_id
        [image] = guard.reviews.item(audit_id).images
        assert image["mime"] == "image/png" and (tmp_path / "held" / image["held_sha256"]).exists()
        with pytest.raises(guardrail.ReviewError, match="needs a note"):
            guard.reviews.reject(audit_id, "bob", " ")
        rejected = guard.reviews.reject(audit_id, "bob", "the logo, plainly")
        assert rejected.status == "rejected" and not (tmp_path / "held" / image["held_sha256"]).exists()
        with pytest.raises(guardrail.ReviewError, match=r"already rejected \(reject by bob"):
            guard.reviews.approve(audit_id, "carol")
        assert [i.audit_id for i in guard.reviews.items("rejected")] == [audit_id]
        assert guard.reviews.items("pending") == []


def test_held_images_expire_and_an_erased_user_takes_theirs(sqlite_url: str, tmp_path: Path, logos: Any) -> None:
    with make_guard(sqlite_url, tmp_path, logos) as guard:
        pipe = guard.wrap(lambda prompt: [photo("coffee")])
        old, erased = pipe("a cup", user="alice"), pipe("a cup", user="dave")
        assert guard.reviews.expire() == []
        later = datetime.now(timezone.utc) + timedelta(days=1, seconds=1)
        assert set(guard.reviews.expire(now=later)) == {old.governance.audit_id, erased.governance.audit_id}
        expired = guard.reviews.item(old.governance.audit_id)
        assert expired.status == "rejected" and expired.decided["action"] == "expire"
        assert expired.decided["reviewer"] == "guardrail"
        fresh = pipe("a cup", user="dave")
        assert guard.reviews.forget_user("dave") == 2
        assert guard.reviews.item(fresh.governance.audit_id).decided["action"] == "erase"
        assert [p for p in (tmp_path / "held").iterdir() if not p.name.startswith(".")] == []


def _approve(args: tuple[str, str, str, str]) -> str:
    database, folder, audit_id, reviewer = args
    store = guardrail.audit.store.AuditStore(database)
    try:
        guardrail.ReviewQueue(store, folder).approve(audit_id, reviewer)
        return "approved"
    except guardrail.ReviewError as exc:  # ReviewConflict included
        return f"{type(exc).__name__}: {exc}"
    finally:
        store.close()


def test_two_reviewers_at_once_one_wins(database: str, tmp_path: Path, logos: Any) -> None:
    one = POLICY.replace("approvals: 2", "approvals: 1")
    with make_guard(database, tmp_path, logos, policy=one) as guard:
        audit_id = guard.wrap(lambda prompt: [photo("coffee")])("a cup", user="alice").governance.audit_id
        jobs = [(database, str(tmp_path / "held"), audit_id, name) for name in ("bob", "carol")]
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            results = pool.map(_approve, jobs)
        assert sorted(r == "approved" for r in results) == [False, True], results
        [loser] = [r for r in results if r != "approved"]
        assert "already approved" in loser or "changed while you decided" in loser
        item = guard.reviews.item(audit_id)
        assert item.status == "approved" and len(item.approvals) == 1
        assert [e["kind"] for e in events(guard, audit_id)].count("review") == 1
        assert guardrail.verify_log(guard.store.engine).ok
        assert len(guard.review_result(audit_id)) == 1
