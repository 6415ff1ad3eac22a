"""guardrail quickstart: wrap a diffusers pipeline, run an allowed, a modified and a denied call,
trace a stripped copy of an image back to its call, hold a call for review until two people approve
it, then read the audit log. Runs offline: the
pipeline is a tiny one with random weights (its images are noise), built on the spot; the audit log
is an embedded SQLite database in .quickstart/; images are signed with C2PA manifests by a
development certificate authority made on the spot (not for production use).

    make demo        (or: python examples/quickstart.py)
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import time
from pathlib import Path

from PIL import Image
from rich.console import Console
from rich.table import Table

import guardrail
from guardrail.audit.query import audit_record
from guardrail.testing import tiny_pipeline

console = Console()
workdir = Path(".quickstart")


def main() -> None:
    started = time.perf_counter()
    # guardrail.yaml, policy, HMAC key, database, and a development CA to sign with (not for production)
    project = guardrail.init_project(workdir, dev_ca=workdir / ".guardrail" / "dev-ca", force=True)
    # one rule of our own: photorealistic press photos wait for two people's approval
    policy_file = project.config.parent / "policies" / "default.yaml"
    policy_file.write_text(policy_file.read_text() + REVIEW_RULE, encoding="utf-8")
    guard = guardrail.Guard.from_config(project.config)
    console.print(
        f"policy [bold]{guard.policy.name}[/bold] version {guard.policy_version[:12]}, audit log {project.database}"
    )

    pipe = guard.wrap(tiny_pipeline("txt2img"), model="tiny-sd-random-weights")  # the two lines
    pipe.set_progress_bar_config(disable=True)  # attribute access passes through to the pipeline

    # 1. Allowed: a clean prompt that already carries the policy's required negative terms.
    out = pipe(
        "a watercolor fox in a snowy forest",
        negative_prompt="nsfw, nudity, gore, blurry",
        user="alice",
        num_inference_steps=4,
        height=64,
        width=64,
    )
    signed_file = out.governance.save(0, workdir / "allowed.png")  # the C2PA-signed bytes, untouched
    show("allowed", out.governance)
    assert project.dev_ca is not None
    check = guardrail.verify_bytes(signed_file.read_bytes(), trust_anchors=project.dev_ca.trust_anchors.read_text())
    check = check.with_audit(audit_record(guard.store.engine, check))  # is this file the one the log holds?
    logged = "matches the audit log" if check.audit and check.audit["hash_matches"] else "NOT in the audit log"
    console.print(f"           {signed_file}: C2PA {check.state}, manifest {check.manifest_label}, {logged}")

    # 2. Modified: too many steps are clamped and the required negative terms are appended.
    out = pipe("a lighthouse at dusk, oil painting", user="bob", num_inference_steps=80, height=64, width=64)
    show("modified", out.governance)

    # 3. Denied: obfuscated text is normalised ("g0re" -> "gore"); the pipeline never runs.
    try:
        pipe("a g0re-soaked battlefield", user="mallory", num_inference_steps=4)
    except guardrail.PolicyViolation as exc:
        console.print(f"[red]denied[/red]   rules={list(exc.decision.rule_ids)} audit={exc.audit_id[:12]}")
        console.print(f"           {'; '.join(exc.decision.messages)}")

    # 4. Stripped: a re-upload re-encodes the image (the manifest is gone); its fingerprint, logged with
    #    the call, still leads back to it (guardrail trace leaked.jpg --config .quickstart/guardrail.yaml).
    leaked = workdir / "leaked.jpg"
    Image.open(signed_file).convert("RGB").resize((128, 128)).save(leaked, "JPEG", quality=70)
    found = guardrail.trace_bytes(leaked.read_bytes(), guard.store.engine)
    for item in found.evidence:
        console.print(f"[cyan]traced[/cyan]   {leaked} (no manifest left) -> {item.method}: {item.detail}")
        console.print(f"           call {item.audit_id[:12]}, user {found.records[item.audit_id]['user']}")

    # 5. Held for review: the images are generated, then kept until two reviewers approve; the
    #    approval signs them with the review recorded (guardrail review list / approve / fetch).
    held = pipe("a press photo of a harbour", user="carol", num_inference_steps=4, height=64, width=64)
    audit_id = held.governance.audit_id
    console.print(
        f"[magenta]held[/magenta]     rules={list(held.governance.rule_ids)} audit={audit_id[:12]}: "
        f"{len(held.images)} images returned, {len(guard.reviews.item(audit_id).images)} held for review"
    )
    guard.reviews.approve(audit_id, "dana", "a harbour, no real person in it")
    guard.reviews.approve(audit_id, "erin")
    [released] = guard.review_result(audit_id)
    approved = guardrail.verify_bytes(released.data, trust_anchors=project.dev_ca.trust_anchors.read_text())
    reviewers = [a["reviewer"] for a in (approved.governance or {}).get("review", {}).get("approvals", [])]
    console.print(f"[green]approved[/green] by {' and '.join(reviewers)}: released, C2PA {approved.state}")

    table = Table(title="audit log (guardrail audit list --config .quickstart/guardrail.yaml)")
    for column in ("call", "user", "status", "rules", "model"):
        table.add_column(column)
    for call in guard.recent_calls():
        table.add_row(call.call_id[:12], call.user or "", call.status, ", ".join(call.rules), call.model or "")
    console.print(table)

    # The log is a hash chain with signed checkpoints: prove nothing was altered.
    guard.store.checkpoint()
    public_key = project.config.parent / ".guardrail" / "audit-checkpoint.pub"
    report = guardrail.verify_log(guard.store.engine, public_key=public_key.read_bytes())
    ranges = ", ".join(f"{r.status} {r.start}-{r.end}" for r in report.ranges)
    console.print(f"audit log: {'verified' if report.ok else 'FAILED'} ({ranges}; {report.checkpoints} checkpoints)")
    guard.close()
    console.print(
        f"done in {time.perf_counter() - started:.1f} s; try: guardrail audit show <call> --config {project.config}"
    )


REVIEW_RULE = """
  - id: press-photo-review
    description: Photorealistic press photos are held until two people approve them.
    effect: review
    message: A photorealistic press photo needs two approvals.
    prompt:
      terms: [press photo]

review: {approvals: 2}
"""


def show(label: str, governance: guardrail.Governance) -> None:
    decision = governance.decision
    colour = "green" if decision.effect == "allow" else "yellow"
    console.print(f"[{colour}]{label:<8}[/{colour}] rules={list(decision.rule_ids)} audit={governance.audit_id[:12]}")
    for change in decision.modifications:
        console.print(f"           {change.field}: {change.before!r} -> {change.after!r}")


if __name__ == "__main__":
    main()
