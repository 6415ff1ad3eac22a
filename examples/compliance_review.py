"""A compliance analyst's weekly review of the audit log: query last week's denied and flagged calls,
count them, prove the log unaltered, and write the evidence package with its report page.

A week of calls is made first (a guarded stand-in generator, three users, some prompts the default
policy denies or flags), so the script runs on its own, offline, on SQLite. With your own log, point
`guardrail.load_config` at your guardrail.yaml and start at "the review".

    python examples/compliance_review.py
    guardrail audit report --since 7d --out report.html --config .review-demo/guardrail.yaml
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from PIL import Image

import guardrail
from guardrail.audit.query import CallFilter, events_between, stats
from guardrail.audit.store import AuditStore, database_url
from guardrail.report.page import report_page

workdir = Path(".review-demo")
PROMPTS = [
    ("alice", "a watercolor fox in the snow"),
    ("bob", "a g0re-soaked battlefield"),  # denied: graphic violence, written around the filter
    ("carol", "a portrait of the president at dawn"),  # flagged: a real person
    ("alice", "a lighthouse at dusk"),
    ("bob", "an explicit sex scene"),  # denied: sexual content
]


def make_a_week_of_calls(guard: guardrail.Guard) -> None:
    pipe = guard.wrap(lambda prompt, negative_prompt="": [Image.new("RGB", (64, 64), "white")], model="stand-in")
    for user, prompt in PROMPTS * 3:
        with contextlib.suppress(guardrail.PolicyViolation):  # denied calls are in the log too
            pipe(prompt, negative_prompt="nsfw, nudity, gore", user=user)


def main() -> None:
    project = guardrail.init_project(workdir, force=True)
    with guardrail.Guard.from_config(project.config) as guard:
        make_a_week_of_calls(guard)
        guard.store.checkpoint()  # the checkpoint key signs the chain's head

    # the review: what happened last week, was anything altered, and the evidence to keep
    settings = guardrail.load_config(project.config)
    store = AuditStore(database_url(settings.database, settings.base_dir), migrate="check")
    engine = store.engine
    week = datetime.now(timezone.utc) - timedelta(days=7)
    denied = guardrail.query_calls(engine, CallFilter(since=week, status="denied"))
    print(f"denied last week: {len(denied)}")
    for call in denied:
        print(f"  {call.call_id[:12]} {call.user:<6} {', '.join(call.rules)}")
    counts = stats(engine, CallFilter(since=week, limit=None))
    print(f"calls: {counts.calls}; by status: {counts.by_status}; by rule: {counts.by_rule}")

    public_key = (project.config.parent / ".guardrail" / "audit-checkpoint.pub").read_bytes()
    report = guardrail.verify_log(engine, public_key=public_key)
    print(f"log verified: {report.ok} ({report.events} events, {report.checkpoints_verified} checkpoints checked)")

    evidence = workdir / "evidence"
    evidence.mkdir(exist_ok=True)
    with (evidence / "events.jsonl").open("w", encoding="utf-8") as handle:
        for event in events_between(engine, week, None):
            handle.write(json.dumps(event, default=str) + "\n")
    (evidence / "verification.json").write_text(json.dumps(report.as_dict(), indent=2, default=str))
    page = report_page(engine, since=week, public_key=public_key, verification=report.as_dict())
    (evidence / "report.html").write_text(page, encoding="utf-8")
    store.close()
    print(f"evidence package: {sorted(p.name for p in evidence.iterdir())} in {evidence}")


if __name__ == "__main__":
    main()
