"""A small HTTP service that generates through a guarded pipeline (Starlette): POST /generate with
{"prompt": ..., "user": ...} returns the C2PA-signed PNG as it is (the audit id in a header); a deny is
403 with the audit id and the rules; a call held for review is 202 with the audit id. Generation runs
in a worker thread, so the event loop stays free.

    pip install starlette uvicorn
    uvicorn examples.service:app          # then: curl -X POST localhost:8000/generate -d '{"prompt": "a fox"}'
    python examples/service.py            # runs the app in-process and makes three requests

The generator is a stand-in (a tiny offline pipeline would do the same); guardrail.yaml, the policy
and a development CA (not for production) are made in .service-demo/ on start.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import guardrail

workdir = Path(".service-demo")
REVIEW_RULE = """
  - id: press-photo-review
    effect: review
    message: Photorealistic press photos wait for a reviewer.
    prompt:
      terms: [press photo]
"""


def generator(prompt: str, negative_prompt: str = "") -> list[Image.Image]:
    """Stands in for a diffusion pipeline."""
    return [Image.new("RGB", (256, 256), (40, 90, 160))]


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    project = guardrail.init_project(workdir, dev_ca=workdir / ".guardrail" / "dev-ca", force=True)
    policy = project.config.parent / "policies" / "default.yaml"
    policy.write_text(policy.read_text() + REVIEW_RULE, encoding="utf-8")
    with guardrail.Guard.from_config(project.config) as guard:
        app.state.pipe = guard.wrap(generator, model="stand-in")
        yield


async def generate(request: Request) -> Response:
    try:
        body = await request.json()
        prompt, user = str(body["prompt"]), body.get("user")
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": 'send JSON: {"prompt": "...", "user": "..."}'}, status_code=400)
    try:
        out = await run_in_threadpool(
            request.app.state.pipe, prompt, negative_prompt=body.get("negative_prompt", ""), user=user
        )
    except guardrail.PolicyViolation as denied:
        return JSONResponse(
            {"error": "denied", "audit_id": denied.audit_id, "rules": list(denied.decision.rule_ids),
             "messages": list(denied.decision.messages)},
            status_code=403,
        )  # fmt: skip
    governance = out.governance
    if governance.pending_review:
        return JSONResponse({"status": "pending_review", "audit_id": governance.audit_id}, status_code=202)
    signed = governance.signed[0]
    return Response(signed.data, media_type=signed.mime, headers={"X-Guardrail-Audit-Id": governance.audit_id})


app = Starlette(routes=[Route("/generate", generate, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    from starlette.testclient import TestClient

    with TestClient(app) as client:
        for prompt in ("a watercolor fox", "a g0re-soaked battlefield", "a press photo of a harbour"):
            reply = client.post("/generate", json={"prompt": prompt, "user": "alice"})
            if reply.headers["content-type"] == "image/png":
                anchors = (workdir / ".guardrail" / "dev-ca" / "trust-anchors.pem").read_text()
                check = guardrail.verify_bytes(reply.content, trust_anchors=anchors)
                print(f"{reply.status_code} {prompt!r}: {len(reply.content)} bytes of PNG, C2PA {check.state}, "
                      f"audit {reply.headers['x-guardrail-audit-id'][:12]}")  # fmt: skip
            else:
                print(f"{reply.status_code} {prompt!r}: {reply.json()}")


if __name__ == "__main__":
    main()
