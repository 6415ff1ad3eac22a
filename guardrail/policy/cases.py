"""Policy test cases: YAML files of requests and the decisions a policy must reach, like `opa test`.

    # policies/default.test.yaml
    policy: default.yaml            # relative to this file
    environment: prod               # optional
    cases:
      - name: obfuscated gore is denied
        request: {prompt: "a g0re scene"}
        expect: {decision: deny, rules: [no-graphic-violence]}

`expect.rules` is the exact set of fired rule ids; `expect.modified` lists fields that must have
been changed to the given values; `expect.suppressed` the exact set of rule ids an exception
(`unless`) stopped. Every case runs; the result lists each failure with its line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from guardrail.policy.decision import Decision
from guardrail.request import GenerationRequest, ModelIdentity

if TYPE_CHECKING:
    from guardrail.policy.engine import PolicyEngine

# Parameter names accepted in requests (diffusers' argument names too) -> GenerationRequest fields.
PARAMETERS: dict[str, tuple[str, type]] = {
    "width": ("width", int),
    "height": ("height", int),
    "steps": ("steps", int),
    "num_inference_steps": ("steps", int),
    "guidance": ("guidance", float),
    "guidance_scale": ("guidance", float),
    "images": ("images_per_prompt", int),
    "images_per_prompt": ("images_per_prompt", int),
    "num_images_per_prompt": ("images_per_prompt", int),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RequestSpec(_Strict):
    """A request written by hand (test cases, `policy check`), turned into a GenerationRequest."""

    prompt: str | list[str] | None = None
    negative_prompt: str | list[str] | None = None
    prompt_embeds: bool = False
    params: dict[str, float] = {}
    user: str | None = None
    roles: list[str] = []
    tenant: str | None = None
    model: str | None = None
    adapters: list[str] = []

    def to_request(self) -> GenerationRequest:
        unknown = sorted(set(self.params) - set(PARAMETERS))
        if unknown:
            raise ValueError(f"unknown parameter {unknown[0]!r}; expected one of {', '.join(sorted(PARAMETERS))}")
        fields = {PARAMETERS[k][0]: PARAMETERS[k][1](v) for k, v in self.params.items()}
        return GenerationRequest(
            prompts=_texts(self.prompt),
            negative_prompts=_texts(self.negative_prompt),
            has_prompt_embeds=self.prompt_embeds,
            model=ModelIdentity(pipeline_class="policy-test", name_or_path=self.model, adapters=tuple(self.adapters)),
            user=self.user,
            roles=tuple(self.roles),
            tenant=self.tenant,
            **fields,
        )


def parse_params(pairs: list[str]) -> dict[str, float]:
    """`key=value` strings (the CLI's --param) as RequestSpec params; raises ValueError naming the pair."""
    params: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or key not in PARAMETERS:
            raise ValueError(f"{pair!r}: expected key=value with key one of {', '.join(sorted(PARAMETERS))}")
        try:
            params[key] = float(value)
        except ValueError:
            raise ValueError(f"{pair!r}: {key} must be a number") from None
    return params


class Expectation(_Strict):
    decision: Literal["allow", "modify", "deny"]
    rules: list[str] | None = None
    flagged: bool | None = None
    modified: dict[str, Any] | None = None
    suppressed: list[str] | None = None
    """The exact set of rule ids whose matches an exception (`unless`) suppressed."""


class Case(_Strict):
    name: str
    request: RequestSpec
    expect: Expectation


class CaseFile(_Strict):
    policy: str
    environment: str | None = None
    cases: list[Case] = Field(min_length=1)


@dataclass(frozen=True)
class CaseResult:
    file: str
    line: int | None
    name: str
    passed: bool
    problems: tuple[str, ...]
    decision: Decision | None = None


def check(case: Case, decision: Decision) -> list[str]:
    """What in a decision differs from a case's expectation."""
    expect = case.expect
    problems = []
    if decision.effect != expect.decision:
        problems.append(f"decision is {decision.effect}, expected {expect.decision}")
    if expect.rules is not None and set(decision.rule_ids) != set(expect.rules):
        problems.append(f"rules are {sorted(decision.rule_ids)}, expected {sorted(expect.rules)}")
    if expect.flagged is not None and decision.flagged != expect.flagged:
        problems.append(f"flagged is {decision.flagged}, expected {expect.flagged}")
    suppressed = {rule.id for rule in decision.suppressed}
    if expect.suppressed is not None and suppressed != set(expect.suppressed):
        problems.append(f"suppressed rules are {sorted(suppressed)}, expected {sorted(expect.suppressed)}")
    for field, value in (expect.modified or {}).items():
        actual = decision.modified().get(field, "<unchanged>")
        if actual != value:
            problems.append(f"modified {field} is {actual!r}, expected {value!r}")
    return problems


Decide = Callable[["PolicyEngine", GenerationRequest], Decision]
"""How a case's request is decided: the whole pre-generation decision (guardrail.pipeline.decide), so
that a case tests what the Guard does; PolicyEngine.evaluate alone skips concept rules and quotas."""


def run_case_file(path: str | Path, decide: Decide) -> list[CaseResult]:
    """Run every case of one test file against its policy. Raises PolicyError for unusable files."""
    from guardrail.policy.engine import PolicyEngine
    from guardrail.policy.load import load_policy, locate, read_text_file, read_yaml, validate

    file = str(path)
    data = read_yaml(read_text_file(path), file)
    spec = validate(CaseFile, data, file)
    engine = PolicyEngine(load_policy(Path(path).parent / spec.policy, environment=spec.environment))
    results = []
    for index, case in enumerate(spec.cases):
        line, _ = locate(data, ["cases", index])
        try:
            request = case.request.to_request()
        except ValueError as exc:
            results.append(CaseResult(file, line, case.name, False, (str(exc),)))
            continue
        decision = decide(engine, request)
        problems = check(case, decision)
        results.append(CaseResult(file, line, case.name, not problems, tuple(problems), decision))
    return results


def find_case_files(path: str | Path) -> list[Path]:
    """A test file, or every *.test.yaml under a folder."""
    p = Path(path)
    return [p] if p.is_file() else sorted(p.rglob("*.test.yaml"))


def _texts(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)
