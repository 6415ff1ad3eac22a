"""Reading a call into a GenerationRequest, applying a decision's changes, and attaching the governance.

One reader serves diffusers pipelines and plain callables alike: both are read through the
callable's signature, using diffusers' argument names (prompt, negative_prompt, width, height,
num_inference_steps, guidance_scale, num_images_per_prompt, image, mask_image, control_image,
generator). DiffusersAdapter adds what only a pipeline knows: its default image size, its model
identity (class, weights, dtype, quantization, LoRA adapters) and its output type.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guardrail.images import file_sha256, image_sha256, image_size, is_image, split_images
from guardrail.policy.decision import Decision
from guardrail.request import GenerationRequest, Governance, GuardedResult, InputImage, ModelIdentity

# GenerationRequest field -> the call argument that sets it.
ARGUMENT_FOR = {
    "width": "width",
    "height": "height",
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "images_per_prompt": "num_images_per_prompt",
    "negative_prompts": "negative_prompt",
}
PROMPT_ARGS = ("prompt", "prompt_2", "prompt_3")
NEGATIVE_ARGS = ("negative_prompt", "negative_prompt_2", "negative_prompt_3")
INPUT_IMAGE_ARGS = ("image", "mask_image", "control_image", "ip_adapter_image", "control_mask")
_RECORDED_TYPES = (bool, int, float, str)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".gguf")


class CallAdapter:
    """Reads calls to a plain callable that returns images."""

    def __init__(self, target: Callable[..., Any], *, model: str | None = None) -> None:
        self.target = target
        self.model_name = model
        try:
            self.signature: inspect.Signature | None = inspect.signature(target)
        except (TypeError, ValueError):
            self.signature = None
        params = self.signature.parameters if self.signature else {}
        var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        self.adjustable = frozenset(f for f, arg in ARGUMENT_FOR.items() if arg in params or var_kw)

    # -- reading ---------------------------------------------------------------------------------
    def read(
        self,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        user: str | None,
        roles: tuple[str, ...],
        tenant: str | None = None,
        hash_weights: bool = False,
    ) -> GenerationRequest:
        """The request a call makes. Arguments that do not bind are read as given, and the error recorded.
        `hash_weights`: the policy lists weight SHA-256s, so local weight files are hashed (once each)."""
        arguments, malformed = self._bind(args, kwargs)
        prompts = _texts(arguments, PROMPT_ARGS)
        negatives = _texts(arguments, NEGATIVE_ARGS[:1])
        width, height = arguments.get("width"), arguments.get("height")
        inputs = self._input_images(arguments)
        if width is None and height is None:
            width, height = self.default_size(arguments, inputs)
        params = {
            k: v
            for k, v in kwargs.items()
            if isinstance(v, _RECORDED_TYPES) and k not in (*PROMPT_ARGS, *NEGATIVE_ARGS, *ARGUMENT_FOR.values())
        }
        if malformed:
            params["malformed_call"] = malformed
        return GenerationRequest(
            prompts=prompts,
            negative_prompts=negatives,
            has_prompt_embeds=arguments.get("prompt_embeds") is not None and not prompts,
            has_negative_prompt_embeds=arguments.get("negative_prompt_embeds") is not None,
            width=_int(width),
            height=_int(height),
            steps=_int(arguments.get("num_inference_steps")),
            guidance=_float(arguments.get("guidance_scale")),
            images_per_prompt=_int(arguments.get("num_images_per_prompt")) or 1,
            seeds=_seeds(arguments.get("generator"), arguments.get("seed")),
            input_images=tuple(image for _role, image, _raw in inputs),
            model=self.model_identity(hash_weights=hash_weights),
            user=user,
            roles=roles,
            tenant=tenant,
            params=params,
            adjustable=self.adjustable,
        )

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        if self.signature is None:
            return dict(kwargs), None
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            return dict(kwargs), str(exc)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        for name, param in self.signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(arguments.pop(name, {}))
        return arguments, None

    def _input_images(self, arguments: dict[str, Any]) -> list[tuple[str, InputImage, Any]]:
        found = []
        for name in INPUT_IMAGE_ARGS:
            for item in split_images(arguments.get(name)):
                if is_image(item):
                    width, height = image_size(item)
                    image = InputImage(self.image_role(name), image_sha256(item), width, height, item)
                    found.append((name, image, item))
        return found

    def image_role(self, argument: str) -> str:
        return argument

    def default_size(
        self, arguments: dict[str, Any], inputs: list[tuple[str, InputImage, Any]]
    ) -> tuple[int | None, int | None]:
        """The size the call will produce when it names none: that of its first input image, if any."""
        starts = [image for role, image, _ in inputs if role == "image"]
        return (starts[0].width, starts[0].height) if starts else (None, None)

    def model_identity(self, *, hash_weights: bool = False) -> ModelIdentity:
        # the callable's own name: the model's name (a path, perhaps) is name_or_path's
        name = getattr(self.target, "__qualname__", None) or type(self.target).__qualname__
        module = getattr(self.target, "__module__", None) or type(self.target).__module__
        return ModelIdentity(pipeline_class=f"{module}.{name}", name_or_path=self.model_name)

    # -- applying the decision --------------------------------------------------------------------
    def apply(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], decision: Decision
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's arguments with the decision's modifications applied."""
        if not decision.modifications:
            return args, kwargs
        changes = {ARGUMENT_FOR[m.field]: m.after for m in decision.modifications}
        if "negative_prompt" in changes:
            prompt = _first_given(args, kwargs, self.signature, "prompt")
            values = changes["negative_prompt"]
            changes["negative_prompt"] = (
                values[0] if not isinstance(prompt, list) and len(values) == 1 else list(values)
            )
        if self.signature is None:
            return args, {**kwargs, **changes}
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError:
            return args, {**kwargs, **changes}  # the target will raise its own error
        var_kw = next(
            (n for n, p in self.signature.parameters.items() if p.kind is inspect.Parameter.VAR_KEYWORD), None
        )
        for name, value in changes.items():
            if name in self.signature.parameters:
                bound.arguments[name] = value
            elif var_kw is not None:
                bound.arguments.setdefault(var_kw, {})[name] = value
        return bound.args, bound.kwargs

    # -- output -----------------------------------------------------------------------------------
    def output_images(self, output: Any) -> list[Any]:
        images = getattr(output, "images", output)
        return [image for image in split_images(images) if is_image(image)]

    def attach(self, output: Any, governance: Governance) -> Any:
        """The callable's images as a GuardedResult (iterable like the list it returned)."""
        return GuardedResult(images=self.output_images(output), governance=governance)


class DiffusersAdapter(CallAdapter):
    """Reads calls to a diffusers pipeline and returns the pipeline's own output type."""

    def __init__(self, pipeline: Any, *, model: str | None = None) -> None:
        super().__init__(pipeline, model=model)
        self.pipeline: Any = pipeline
        self._lock = threading.Lock()
        self._weight_hashes: dict[str, dict[str, str]] = {}
        self.adapter_hashes: dict[str, str] = {}

    def image_role(self, argument: str) -> str:
        is_controlnet = "ControlNet" in type(self.target).__name__
        if argument == "control_image" or (argument == "image" and is_controlnet and not self._takes("control_image")):
            return "control_image"
        return argument

    def _takes(self, argument: str) -> bool:
        return self.signature is not None and argument in self.signature.parameters

    def default_size(
        self, arguments: dict[str, Any], inputs: list[tuple[str, InputImage, Any]]
    ) -> tuple[int | None, int | None]:
        if self._takes("width"):
            pipe = self.target
            scale = getattr(pipe, "vae_scale_factor", 8)
            sample = getattr(pipe, "default_sample_size", None)
            if sample is None:
                unet_config = getattr(getattr(pipe, "unet", None), "config", None)
                sample = getattr(unet_config, "sample_size", None)
            if isinstance(sample, int):
                return sample * scale, sample * scale
        return super().default_size(arguments, inputs)

    def model_identity(self, *, hash_weights: bool = False) -> ModelIdentity:
        pipe = self.target
        found = self.model_name or getattr(pipe, "name_or_path", None) or _config_get(pipe, "_name_or_path")
        name = str(found) if found else None
        return ModelIdentity(
            pipeline_class=type(pipe).__name__,
            name_or_path=name,
            dtype=str(getattr(pipe, "dtype", "")).removeprefix("torch.") or None,
            quantization=_quantization(pipe),
            adapters=tuple(sorted(_adapter_names(pipe))),
            weight_sha256=self._weights(name) if hash_weights and name else {},
            adapter_sha256=dict(self.adapter_hashes),
        )

    def _weights(self, name: str) -> dict[str, str]:
        """SHA-256 of each weight file under a local model folder, computed once per folder."""
        folder = Path(name)
        if not folder.is_dir():
            return {}
        with self._lock:
            if name not in self._weight_hashes:
                self._weight_hashes[name] = {
                    str(p.relative_to(folder)): file_sha256(p)
                    for p in sorted(folder.rglob("*"))
                    if p.is_file() and p.suffix in _WEIGHT_SUFFIXES
                }
            return self._weight_hashes[name]

    def load_lora_weights(self, source: Any, adapter_name: str | None = None, **kwargs: Any) -> None:
        """Load a LoRA into the pipeline and remember the SHA-256 of the file it came from."""
        before = _adapter_names(self.pipeline)
        self.pipeline.load_lora_weights(source, adapter_name=adapter_name, **kwargs)
        if isinstance(source, str | Path):
            for name in _adapter_names(self.pipeline) - before or ({adapter_name} if adapter_name else set()):
                self._record_adapter(name, source, kwargs.get("weight_name"))

    def _record_adapter(self, adapter_name: str, source: str | Path, weight_name: str | None) -> None:
        path = Path(source)
        if path.is_dir():
            candidates = [path / weight_name] if weight_name else sorted(path.glob("*.safetensors"))
            path = candidates[0] if len(candidates) == 1 else path
        if path.is_file():
            with self._lock:
                self.adapter_hashes[adapter_name] = file_sha256(path)

    def attach(self, output: Any, governance: Governance) -> Any:
        """The pipeline's own output with `.governance` set (a tuple output becomes a GuardedTuple)."""
        if isinstance(output, tuple):
            return GuardedTuple(output, governance)
        object.__setattr__(output, "governance", governance)
        return output


class GuardedTuple(tuple):  # type: ignore[type-arg]
    """A pipeline's `return_dict=False` tuple, with `.governance`."""

    governance: Governance

    def __new__(cls, values: tuple[Any, ...], governance: Governance) -> GuardedTuple:
        instance = super().__new__(cls, values)
        instance.governance = governance
        return instance


def adapter_for(target: Any, *, model: str | None = None) -> CallAdapter:
    """The adapter for a diffusers pipeline (anything with components and a config) or a plain callable."""
    if hasattr(target, "components") and hasattr(target, "config"):
        return DiffusersAdapter(target, model=model)
    if not callable(target):
        raise TypeError(f"guardrail can wrap a diffusers pipeline or a callable, not {type(target).__name__}")
    return CallAdapter(target, model=model)


def _texts(arguments: dict[str, Any], names: tuple[str, ...]) -> tuple[str, ...]:
    texts: list[str] = []
    for name in names:
        value = arguments.get(name)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list | tuple):
            texts += [v for v in value if isinstance(v, str)]
    return tuple(texts)


def _first_given(args: tuple[Any, ...], kwargs: dict[str, Any], signature: inspect.Signature | None, name: str) -> Any:
    if name in kwargs:
        return kwargs[name]
    if signature is not None:
        try:
            return signature.bind_partial(*args).arguments.get(name)
        except TypeError:
            return None
    return None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _seeds(generator: Any, seed: Any) -> tuple[int, ...]:
    generators = generator if isinstance(generator, list) else [generator]
    seeds = [g.initial_seed() for g in generators if hasattr(g, "initial_seed")]
    if isinstance(seed, int):
        seeds.append(seed)
    return tuple(seeds)


def _config_get(pipe: Any, key: str) -> Any:
    config = getattr(pipe, "config", None)
    return config.get(key) if isinstance(config, dict) else getattr(config, key, None)


def _adapter_names(pipe: Any) -> set[str]:
    try:
        listed = pipe.get_list_adapters() if hasattr(pipe, "get_list_adapters") else {}
    except Exception:  # diffusers raises when the PEFT backend is absent: then no adapters can be loaded
        return set()
    return {name for names in listed.values() for name in names}


def _quantization(pipe: Any) -> dict[str, Any] | None:
    found = {}
    for name, component in getattr(pipe, "components", {}).items():
        config = getattr(getattr(component, "config", None), "quantization_config", None)
        if config is None:
            config = getattr(getattr(component, "hf_quantizer", None), "quantization_config", None)
        if config is not None:
            settings = config.to_dict() if hasattr(config, "to_dict") else {"config": str(config)}
            found[name] = json.loads(json.dumps(settings, default=lambda o: getattr(o, "value", str(o))))  # enums
    return found or None
