"""Stage: a call the policy sent to review (a rule, concept rule or screening set with effect or action
`review`) keeps its images instead of returning them. After the label and the watermark (the held
images are what would have been returned), before signing: each image is encoded as the signer would
and stored in the review folder with the manifest it will be signed with when approved, so that the
signature can record the review. The outcome is audited as pending_review with what the approvals need."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import Any

from guardrail.images import MIME, encode
from guardrail.pipeline.sign import call_manifests_of
from guardrail.pipeline.state import CallState
from guardrail.provenance.signing import ImageSigner
from guardrail.review.held import HeldImages
from guardrail.workers import Each, spread


class HoldForReview:
    name = "hold_for_review"

    def __init__(self, held: HeldImages, signer: ImageSigner | None, each: Each = map) -> None:
        self.held = held
        self.signer = signer
        self.each = each

    def __call__(self, state: CallState) -> CallState:
        decision = state.decision
        if decision is None or not decision.review or not state.images:
            return state
        from guardrail.provenance.manifest import ingredients

        assert state.call is not None
        signer = self.signer
        fmt = signer.format if signer is not None else "PNG"
        quality = signer.jpeg_quality if signer is not None else 95
        manifests: list[dict[str, Any] | None] = [None] * len(state.images)
        parts: list[dict[str, Any]] = []
        if signer is not None:
            manifests = list(call_manifests_of(signer, state))
            parts = [
                {"definition": definition, "mime": mime, "data": base64.b64encode(data).decode()}
                for definition, data, mime in ingredients(state.call.request)
            ]

        def hold(item: tuple[Any, dict[str, Any] | None]) -> str:
            image, manifest = item
            signing = None if manifest is None else {"manifest": manifest, "ingredients": parts}
            return self.held.put(encode(image, fmt, quality=quality), signing)

        digests = spread(self.each, hold, list(zip(state.images, manifests, strict=True)))
        policy = state.engine.policy.review
        now = datetime.now(timezone.utc)
        note = {
            "approvals": policy.approvals,
            "self_approval": policy.self_approval,
            "expire_after_s": policy.expire_after_seconds,
            "expires_at": (now + timedelta(seconds=policy.expire_after_seconds)).isoformat(),
            "rules": [rule.id for rule in decision.fired if rule.effect == "review"],
        }
        return state.evolve(
            held=tuple({"held_sha256": digest, "mime": MIME[fmt]} for digest in digests),
            notes=state.noted(review=note),
        )
