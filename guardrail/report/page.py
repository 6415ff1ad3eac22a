"""The compliance report page: one self-contained HTML file (styles inline, charts as inline SVG, no
script, no font, no request of any kind when opened), readable on screen and printed to PDF.

    guardrail audit report --since 7d --out report.html
"""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from guardrail.audit.report import ReportData
from guardrail.report.charts import COLOURS, bar_chart

STATUS_ORDER = ("allowed", "modified", "pending_review", "denied", "error", "pending")
EFFECTS = ("deny", "review", "flag", "modify")

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b;
       max-width: 1040px; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem } h2 { font-size: 1.15rem; margin-top: 2rem;
     border-bottom: 1px solid #ccc; padding-bottom: .2rem }
.muted { color: #555 } .cards { display: flex; flex-wrap: wrap; gap: .6rem; margin: 1rem 0 }
.card { border: 1px solid #ccc; border-radius: 6px; padding: .5rem .8rem; min-width: 7rem }
.card b { display: block; font-size: 1.35rem } .ok { color: #006b4f } .bad { color: #b23c00 }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 } th, td { text-align: left;
        padding: .25rem .5rem; border-bottom: 1px solid #e3e3e3; vertical-align: top }
th { background: #f4f4f4 } td.n { text-align: right; font-variant-numeric: tabular-nums }
code { font-size: .85em; word-break: break-all } svg { max-width: 100%; height: auto }
.swatch { display: inline-block; width: .8em; height: .8em; margin-right: .3em; vertical-align: -.05em }
@media print { body { margin: 0; max-width: none } h2 { break-after: avoid } svg, table { break-inside: avoid }
               a { color: inherit; text-decoration: none } }
"""


def report_page(
    engine: Any,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    user: str | None = None,
    verify: bool = True,
    public_key: bytes | None = None,
    verification: dict[str, Any] | None = None,
) -> str:
    """The page of a period of the log in `engine`: the numbers counted and (unless `verify` is false,
    or a `verification` already made is given) the whole chain verified side by side, then rendered.
    Reads only."""
    from concurrent.futures import ThreadPoolExecutor

    from guardrail.audit.report import report_data
    from guardrail.audit.verify import verify_log

    with ThreadPoolExecutor(max_workers=1) as pool:
        checking = pool.submit(verify_log, engine, public_key=public_key) if verify and not verification else None
        data = report_data(engine, since=since, until=until, user=user)
        if checking is not None:
            verification = checking.result().as_dict()
    return render(data, verification=verification, key_fingerprint=key_fingerprint(public_key))


def key_fingerprint(public_key: bytes | None) -> str | None:
    """How the page names the checkpoint key: its key id, as checkpoints record it."""
    if public_key is None:
        return None
    import hashlib

    from cryptography.hazmat.primitives import serialization

    from guardrail.audit.checkpoints import key_id

    try:
        public = serialization.load_pem_public_key(public_key)
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    except (ValueError, TypeError):  # not an Ed25519 PEM: name the file's bytes instead
        return f"sha256 {hashlib.sha256(public_key).hexdigest()[:16]} (of the key file)"
    return f"{key_id(raw)} (key id, as checkpoints name it)"


def render(
    data: ReportData,
    *,
    verification: dict[str, Any] | None = None,
    key_fingerprint: str | None = None,
    title: str = "guardrail compliance report",
) -> str:
    """The page for one period's numbers. `verification`: `audit verify`'s result (VerificationReport.as_dict())."""
    period = f"{_when(data.since) or 'the first event'} to {_when(data.until) or 'the last event'}"
    scope = f", user {data.user}" if data.user else ""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # no request may leave the page: everything it shows is in this file
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="muted">Calls from {_e(period)}{_e(scope)}. Generated {_e(_when(datetime.now(timezone.utc)))}'
        f" by guardrail.</p>",
        _totals(data),
        _integrity(verification, key_fingerprint, data.checkpoints),
        _over_time(data),
        _rules(data),
        _rankings(data),
        _screening(data),
        _quotas_and_changes(data),
        _recent(data),
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)


def _totals(data: ReportData) -> str:
    cards: list[tuple[str, int | str, str]] = [("calls", data.calls, ""), ("images returned", data.images, "")]
    names = {"pending_review": "held for review"}
    cards += [(names.get(status, status), data.statuses.get(status, 0), status) for status in STATUS_ORDER]
    cards += [("flagged", data.flagged, "flagged"), ("block rate", f"{data.block_rate:.1%}", "denied")]
    shown = [card for card in cards if card[1] != 0 or card[0] in ("calls", "denied", "block rate")]
    items = "".join(
        f'<div class="card" id="total-{_e(label.replace(" ", "-"))}">'
        f"{_swatch(key)}{_e(label)}<b>{_e(str(value))}</b></div>"
        for label, value, key in shown
    )
    return f'<h2>Totals</h2><div class="cards">{items}</div>'


def _integrity(verification: dict[str, Any] | None, key_fingerprint: str | None, checkpoints: int) -> str:
    rows = []
    if verification is None:
        rows.append(("chain", "not verified for this page (run <code>guardrail audit verify</code>)"))
    else:
        verdict = '<b class="ok">verified</b>' if verification.get("ok") else '<b class="bad">FAILED</b>'
        ranges = ", ".join(f"{r['status']} {r['start']}–{r['end']}" for r in verification.get("ranges", []))
        rows.append(("chain", f"{verdict}: {verification.get('events', 0)} events checked ({_e(ranges or 'empty')})"))
        problems = verification.get("checkpoint_problems") or []
        if problems:
            rows.append(("checkpoint problems", "<br>".join(_e(p) for p in problems)))
    rows.append(("signed checkpoints", str(checkpoints)))
    rows.append(("checkpoint public key", f"<code>{_e(key_fingerprint)}</code>" if key_fingerprint else "not given"))
    body = "".join(f"<tr><th>{_e(name)}</th><td>{value}</td></tr>" for name, value in rows)
    return f'<h2>Integrity of the log</h2><table id="integrity">{body}</table>'


def _over_time(data: ReportData) -> str:
    if not data.over_time:
        return '<h2>Calls over time</h2><p class="muted">No calls in this period.</p>'
    labels = [str(row["at"]) for row in data.over_time]
    chart = bar_chart(
        "over-time",
        labels,
        {"calls": [row["calls"] for row in data.over_time], "denied": [row["denied"] for row in data.over_time]},
        title=f"Calls and denials per {data.bucket} (UTC)",
        horizontal=False,
        width_in=9.5,
    )
    return f"<h2>Calls over time</h2>{chart}"


def _rules(data: ReportData) -> str:
    if not data.rules:
        return '<h2>Rules</h2><p class="muted">No rule fired in this period.</p>'
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(EFFECTS, 0))
    for row in data.rules:
        if row["effect"] in EFFECTS:
            counts[row["rule"]][row["effect"]] += int(row["calls"])
    ranked = sorted(counts, key=lambda rule: (-counts[rule]["deny"], -counts[rule]["flag"], rule))[:15]
    present = [effect for effect in EFFECTS if any(counts[rule][effect] for rule in ranked)]
    chart = bar_chart(
        "rules",
        ranked,
        {effect: [counts[rule][effect] for rule in ranked] for effect in present},
        title="Calls by fired rule and effect",
    )
    table = _table(
        ("rule", *present), [(rule, *(counts[rule][effect] for effect in present)) for rule in ranked], "rules-table"
    )
    return f"<h2>Denials and flags by rule</h2>{chart}{table}"


def _rankings(data: ReportData) -> str:
    parts = ["<h2>Who, what model, which policy</h2>"]
    if data.users:
        parts.append(
            bar_chart(
                "users",
                [row["who"] for row in data.users],
                {"denied": [row["denied"] for row in data.users], "flagged": [row["flagged"] for row in data.users]},
                title="Users with the most denied and flagged calls",
            )
        )
    parts.append(
        _table(("model", "calls", "denied"), [(r["model"], r["calls"], r["denied"]) for r in data.models], "models")
    )
    if data.adapters:
        parts.append(
            _table(
                ("adapter", "calls", "denied"),
                [(r["adapter"], r["calls"], r["denied"]) for r in data.adapters],
                "adapters",
            )
        )
    parts.append(
        _table(
            ("policy", "version", "first seen", "calls", "denied"),
            [
                (r["policy"], str(r["version"])[:12], _when(r["first_seen"]), r["calls"], r["denied"])
                for r in data.policy_versions
            ],
            "policy-versions",
        )
    )
    return "".join(parts)


def _screening(data: ReportData) -> str:
    parts = ["<h2>Screening and classifiers</h2>"]
    if data.screening:
        labels = [f"{row['refset']} / {row['method']}" for row in data.screening]
        parts.append(
            bar_chart(
                "screening",
                labels,
                {"matches": [row["matches"] for row in data.screening]},
                title="Screening matches by reference set and method",
            )
        )
    else:
        parts.append('<p class="muted">No screening match in this period.</p>')
    if data.classifier_labels:
        parts.append(
            bar_chart(
                "classifier-labels",
                [row["label"] for row in data.classifier_labels],
                {"detections": [row["detections"] for row in data.classifier_labels]},
                title="Classifier detections by label",
            )
        )
    return "".join(parts)


def _quotas_and_changes(data: ReportData) -> str:
    quotas = (
        _table(("quota", "calls denied by it"), [(r["quota"], r["exhausted"]) for r in data.quotas], "quotas")
        if data.quotas
        else '<p class="muted">No quota was exhausted in this period.</p>'
    )
    changes = (
        _table(
            ("time (UTC)", "change", "policy", "version", "why refused"),
            [
                (_when(r["at"]), r["status"], r["policy"], str(r["version"])[:12], r["error"] or "")
                for r in data.policy_changes
            ],
            "policy-changes",
        )
        if data.policy_changes
        else '<p class="muted">No policy change in this period.</p>'
    )
    held = data.statuses.get("pending_review", 0)
    if held or data.reviews:
        names = {"pending_review": "approvals short of the count", "approved": "released", "rejected": "rejected"}
        rows = [("calls held for review", held)] + [
            (names.get(r["status"], r["status"]), r["actions"]) for r in data.reviews
        ]
        review = _table(("human review", "calls or actions"), rows, "reviews")
    else:
        review = '<p class="muted">No call was held for review in this period.</p>'
    return f"<h2>Human review</h2>{review}<h2>Quotas</h2>{quotas}<h2>Policy changes</h2>{changes}"


def _recent(data: ReportData) -> str:
    if not data.recent_denied:
        return '<h2>Most recent denied calls</h2><p class="muted">None in this period.</p>'
    rows = []
    details = []
    for row in data.recent_denied:
        anchor = f"call-{row['call_id']}"
        rules = ", ".join(_list(row["rules"]))
        rows.append(
            f'<tr><td><a href="#{_e(anchor)}"><code>{_e(row["call_id"][:12])}</code></a></td>'
            f"<td>{_e(_when(row['at']))}</td><td>{_e(row['user_id'] or '')}</td><td>{_e(rules)}</td>"
            f"<td>{_e(row['model'] or '')}</td></tr>"
        )
        prompts = _list(row["prompts"])
        shown = "; ".join(str(p) for p in prompts) if row["privacy_mode"] == "plaintext" else f"({row['privacy_mode']})"
        details.append(
            f'<tr id="{_e(anchor)}"><td><code>{_e(row["call_id"])}</code></td><td>{_e(rules)}</td>'
            f"<td>{_e(shown)}</td></tr>"
        )
    head = "<tr><th>call</th><th>time (UTC)</th><th>user</th><th>rules</th><th>model</th></tr>"
    detail_head = (
        "<tr><th>call (guardrail audit show ID)</th><th>rules</th>"
        "<th>prompts, as the privacy mode stored them</th></tr>"
    )
    return (
        f'<h2>Most recent denied calls</h2><table id="recent-denied">{head}{"".join(rows)}</table>'
        f'<h2>Their details</h2><table id="denied-details">{detail_head}{"".join(details)}</table>'
    )


def _table(columns: tuple[str, ...], rows: list[tuple[Any, ...]], table_id: str) -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="n">{v}</td>' if isinstance(v, int) else f"<td>{_e(str(v))}</td>" for v in row)
        + "</tr>"
        for row in rows
    )
    return f'<table id="{_e(table_id)}"><tr>{head}</tr>{body}</table>'


def _swatch(key: str) -> str:
    colour = COLOURS.get(key)
    return f'<span class="swatch" style="background:{colour}"></span>' if colour else ""


def _list(value: Any) -> list[Any]:
    import json

    if isinstance(value, str):
        value = json.loads(value)
    return list(value or [])


def _when(value: Any) -> str:
    if value is None:
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
