"""The review queue: calls the policy sent to review, their held images, and the people who decide.

A call held for review is an outcome event with status pending_review; each approval, rejection and
expiry is a review event in the same hash chain. The queue's state is derived from those events alone
(no table of its own to drift from the log), and every action is appended only if the item is still
as the reviewer saw it, inside the transaction that holds the chain: of two reviewers acting at once,
one wins and the other gets ReviewConflict.

Held images are kept unsigned, with the manifest they would have been signed with; the final approval
signs them with that manifest plus the review (who approved, when) in the governance assertion, so a
released image carries its own proof that people approved it. The pixels are those the call produced.
"""

from __future__ import annotations

import base64
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrail.audit.events import review_event
from guardrail.audit.review import deciding_action, held_calls, review_actions
from guardrail.errors import ReviewConflict, ReviewError
from guardrail.images import MIME
from guardrail.request import SignedImage
from guardrail.review.held import HeldImages

if TYPE_CHECKING:
    from guardrail.audit.store import AuditStore
    from guardrail.config import GuardConfig
    from guardrail.provenance.signing import ImageSigner

STATES = ("pending", "approved", "rejected")
SYSTEM = "guardrail"
"""The reviewer named on actions guardrail takes itself (expiry, erasure)."""
_EXTENSIONS = {mime: fmt.lower().replace("jpeg", "jpg") for fmt, mime in MIME.items()}


@dataclass(frozen=True)
class ReviewItem:
    """One call held for review, as its events say now."""

    audit_id: str
    status: str
    """pending, approved or rejected (expired and erased items are rejected by guardrail)."""
    requested_by: str | None
    held_at: datetime
    expires_at: datetime
    approvals_needed: int
    self_approval: bool
    approvals: tuple[dict[str, Any], ...]
    """Each approval so far: reviewer, at, note."""
    decided: dict[str, Any] | None
    """The action that ended the review (the last approval, a rejection, an expiry), if any."""
    rules: tuple[dict[str, Any], ...]
    """The rules that fired for the call (those with effect review sent it here)."""
    screening: dict[str, Any]
    """What screening found, per image: the matched references with method and score."""
    prompts: tuple[Any, ...]
    """The prompts as the call's privacy mode stored them (plaintext, HMAC or redacted)."""
    privacy_mode: str
    images: tuple[dict[str, Any], ...]
    """Each held image: sha256 (of its pixels), held_sha256 (of the held file), mime."""
    released: tuple[dict[str, Any], ...]
    """After approval, each released file: sha256, mime, manifest (label, when signed)."""
    version: int
    """How many review actions the item has had: an action names the version it was decided on."""
    policy: tuple[str, str] = ("-", "-")
    """The policy (name, version) in force for the call."""

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in self.__dict__.items() if not isinstance(v, datetime | tuple)},
            "held_at": self.held_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            **{k: list(v) for k, v in self.__dict__.items() if isinstance(v, tuple)},
        }


class ReviewQueue:
    """Lists, shows, approves, rejects and releases the calls held for review. Approvals sign the
    released images with `signer` (needed when the held images carry a manifest)."""

    def __init__(self, store: AuditStore, held: HeldImages | str | Path, signer: ImageSigner | None = None) -> None:
        self.store = store
        self.held = held if isinstance(held, HeldImages) else HeldImages(held)
        self.signer = signer

    @classmethod
    def from_config(cls, config: GuardConfig, database: str | None = None) -> ReviewQueue:
        """The queue guardrail.yaml describes: its audit database (or `database`), review folder and
        signer. The queue owns the database connection: close() it."""
        from guardrail.audit.store import AuditStore, database_url

        store = AuditStore(database_url(database or config.database, config.base_dir), migrate="check")
        return cls(store, config.path(config.review.folder), config.signer(config.trust_anchors_pem()))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ReviewQueue:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # reading

    def items(self, status: str | None = None, *, user: str | None = None) -> list[ReviewItem]:
        """Held calls, oldest first: all, or those in one status (pending, approved, rejected)."""
        if status is not None and status not in STATES:
            raise ReviewError(f"unknown review status {status!r}; expected one of {', '.join(STATES)}")
        outcomes = held_calls(self.store.engine, user=user)
        actions = review_actions(self.store.engine, [o["call_id"] for o in outcomes])
        found = [_item(outcome, actions[outcome["call_id"]]) for outcome in outcomes]
        return [item for item in found if status is None or item.status == status]

    def item(self, audit_id: str) -> ReviewItem:
        """One held call (a unique prefix of its audit id is enough). Raises ReviewError."""
        return _one(self.store.engine, audit_id)

    # deciding

    def approve(self, audit_id: str, reviewer: str, note: str = "", *, seen: int | None = None) -> ReviewItem:
        """Approve a held call as `reviewer`. The approval that makes the count the policy asked for
        releases the images (signed with the review recorded). `seen`: the item's version the
        reviewer decided on (ReviewConflict if another acted since). Raises ReviewError."""
        item = self._actionable(audit_id, reviewer, seen)
        if reviewer == item.requested_by and not item.self_approval:
            raise ReviewError(
                f"{reviewer} made call {item.audit_id} and cannot approve it "
                "(the policy's review.self_approval is false)"
            )
        if any(a["reviewer"] == reviewer for a in item.approvals):
            raise ReviewError(f"{reviewer} has already approved call {item.audit_id}; another reviewer must approve it")
        now = datetime.now(timezone.utc)
        approvals = [*item.approvals, {"reviewer": reviewer, "at": now.isoformat(), "note": note}]
        final = len(approvals) >= item.approvals_needed
        released = self._release(item, approvals) if final else []
        detail = {
            "action": "approve",
            "note": note,
            "approvals": [a["reviewer"] for a in approvals],
            "needed": item.approvals_needed,
            "released": released,
        }
        try:
            self._record(item, reviewer, "approved" if final else "pending_review", detail)
        except BaseException:
            for record in released:
                if record["sha256"] not in {image["held_sha256"] for image in item.images}:
                    self.held.delete(record["sha256"])
            raise
        return self.item(item.audit_id)

    def reject(self, audit_id: str, reviewer: str, note: str, *, seen: int | None = None) -> ReviewItem:
        """Reject a held call as `reviewer` (a note saying why is required): its images are deleted.
        Raises ReviewError."""
        if not note.strip():
            raise ReviewError("a rejection needs a note saying why")
        item = self._actionable(audit_id, reviewer, seen)
        self._record(item, reviewer, "rejected", {"action": "reject", "note": note})
        self._delete(item)
        return self.item(item.audit_id)

    def expire(self, now: datetime | None = None) -> list[str]:
        """Reject every pending item held past its expiry (audited, reviewer `guardrail`) and delete its
        images. Returns their audit ids."""
        now = now or datetime.now(timezone.utc)
        expired = []
        for item in self.items("pending"):
            if item.expires_at <= now:
                try:
                    self._record(
                        item, SYSTEM, "rejected", {"action": "expire", "note": "held past review.expire_after"}
                    )
                except ReviewConflict:
                    continue  # a reviewer decided it meanwhile
                self._delete(item)
                expired.append(item.audit_id)
        return expired

    def forget_user(self, user: str) -> int:
        """Erasure of a user: their pending items are rejected (audited) and every image held or
        released for their calls is deleted. Returns how many items were touched."""
        items = self.items(user=user)
        for item in items:
            if item.status == "pending":
                with contextlib.suppress(ReviewConflict):  # decided meanwhile: its files go all the same
                    self._record(item, SYSTEM, "rejected", {"action": "erase", "note": "the user's data was erased"})
            self._delete(self.item(item.audit_id))
        return len(items)

    # releasing

    def images(self, audit_id: str) -> list[SignedImage]:
        """The released images of an approved call (signed with the review, when a signer was
        configured; else the held bytes). Raises ReviewError while pending, or when rejected."""
        item = self.item(audit_id)
        if item.status != "approved":
            raise ReviewError(f"call {item.audit_id} is {item.status}: only approved images are released")
        return [
            SignedImage(self.held.get(r["sha256"]), r["mime"], r.get("manifest") or "", r["sha256"])
            for r in item.released
        ]

    def fetch(self, audit_id: str, folder: str | Path) -> list[Path]:
        """Write an approved call's released images into `folder` as <audit id>-<index>.<ext>."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        images = self.images(audit_id)
        return [
            image.save(target / f"{audit_id[:32]}-{index}.{_EXTENSIONS.get(image.mime, 'bin')}")
            for index, image in enumerate(images)
        ]

    # inside

    def _actionable(self, audit_id: str, reviewer: str, seen: int | None) -> ReviewItem:
        if not reviewer.strip():
            raise ReviewError("a review action needs the reviewer's name")
        item = self.item(audit_id)
        if seen is not None and seen != item.version:
            raise ReviewConflict(f"call {item.audit_id} changed since you read it: {_last(item)}; read it again")
        if item.status != "pending":
            raise ReviewError(f"call {item.audit_id} is already {item.status} ({_last(item)})")
        return item

    def _record(self, item: ReviewItem, reviewer: str, status: str, detail: dict[str, Any]) -> None:
        """Append the action, if the item is still at the version it was decided on."""
        event = review_event(item.audit_id, reviewer, status, detail, policy=(item.policy[0], item.policy[1]))

        def unchanged(connection: Any) -> None:
            now = _one(connection, item.audit_id)
            if now.version != item.version:
                raise ReviewConflict(f"call {item.audit_id} changed while you decided: {_last(now)}")

        self.store.write_checked(event, unchanged)

    def _release(self, item: ReviewItem, approvals: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from guardrail.provenance.manifest import with_review

        released = []
        for image in item.images:
            data = self.held.get(image["held_sha256"])
            signing = self.held.signing(image["held_sha256"])
            if signing is None:
                released.append({"sha256": image["held_sha256"], "mime": image["mime"], "manifest": None})
                continue
            if self.signer is None:
                raise ReviewError(
                    f"call {item.audit_id}'s images are signed when released: configure `provenance` in "
                    "guardrail.yaml (or pass signer=) where approvals are made"
                )
            review = {
                "status": "approved",
                "approvals": [{"reviewer": a["reviewer"], "at": a["at"]} for a in approvals],
                "held_at": item.held_at.isoformat(),
            }
            parts = [(p["definition"], base64.b64decode(p["data"]), p["mime"]) for p in signing["ingredients"]]
            signed = self.signer.sign(data, with_review(signing["manifest"], review), parts)
            self.held.put(signed.data)
            released.append({"sha256": signed.sha256, "mime": signed.mime, "manifest": signed.manifest_label})
        return released

    def _delete(self, item: ReviewItem) -> None:
        for digest in {i["held_sha256"] for i in item.images} | {r["sha256"] for r in item.released}:
            self.held.delete(digest)


def _one(source: Any, audit_id: str) -> ReviewItem:
    if len(audit_id) < 8:
        raise ReviewError(f"{audit_id!r}: give at least 8 characters of the audit id")
    outcomes = held_calls(source, call_id=audit_id)
    if not outcomes:
        raise ReviewError(f"no call held for review has audit id {audit_id!r}")
    if len(outcomes) > 1:
        raise ReviewError(f"{audit_id!r} matches {len(outcomes)} held calls; give more of the id")
    [outcome] = outcomes
    return _item(outcome, review_actions(source, [outcome["call_id"]])[outcome["call_id"]])


def _item(outcome: dict[str, Any], actions: list[dict[str, Any]]) -> ReviewItem:
    """A held call's state from its outcome event and its review actions, in chain order."""
    detail = outcome["detail"] or {}
    asked = detail.get("review", {})
    held_at = _utc(outcome["created_at"])
    approvals = [_record(action) for action in actions if (action["detail"] or {}).get("action") == "approve"]
    ending = deciding_action(actions)
    status, decided, released = "pending", None, []
    if ending is not None:
        what = ending["detail"] or {}
        status, decided = ending["status"], {**_record(ending), "action": what.get("action")}
        released = list(what.get("released", []))
    return ReviewItem(
        audit_id=outcome["call_id"],
        status=status,
        requested_by=outcome["user_id"],
        held_at=held_at,
        expires_at=held_at + timedelta(seconds=int(asked.get("expire_after_s", 7 * 86400))),
        approvals_needed=int(asked.get("approvals", 1)),
        self_approval=bool(asked.get("self_approval", False)),
        approvals=tuple(approvals),
        decided=decided,
        rules=tuple((detail.get("decision") or {}).get("fired") or []),
        screening=detail.get("screening", {}),
        prompts=tuple(outcome["prompts"] or []),
        privacy_mode=outcome["privacy_mode"],
        images=tuple(o for o in detail.get("outputs", []) if "held_sha256" in o),
        released=tuple(released),
        version=len(actions),
        policy=(outcome["policy_name"], outcome["policy_version"]),
    )


def _record(action: dict[str, Any]) -> dict[str, Any]:
    """A review action as an item lists it: who, when, with what note."""
    return {
        "reviewer": action["user_id"],
        "at": _utc(action["created_at"]).isoformat(),
        "note": (action["detail"] or {}).get("note", ""),
    }


def _last(item: ReviewItem) -> str:
    if item.decided is not None:
        return f"{item.decided['action']} by {item.decided['reviewer']} at {item.decided['at']}"
    if item.approvals:
        last = item.approvals[-1]
        return f"approved by {last['reviewer']} at {last['at']}, {len(item.approvals)} of {item.approvals_needed}"
    return "no action yet"


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
