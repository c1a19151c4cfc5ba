"""Engines' memory rules (docs/engines.md), one module each with the release it follows: the KV rules of the
inference column (`kv_cache`, by Settings.engine: transformers, vllm, sglang; llamacpp for GGUF models), and
serving plans: how vLLM and SGLang start a model on given GPUs, as pure functions of a ModelSpec. `plan` gives
one layout's ServePlan; `solve` the smallest layout that starts."""

from __future__ import annotations

from ..gpus import Gpu
from ..memory.facts import ModelFacts, facts_of
from ..memory.results import Formula
from ..memory.settings import Settings
from ..spec import ModelSpec
from . import sglang, transformers, vllm
from .plan import KvGroup, Layout, ServePlan, layouts
from .plan import solve as _search
from .sglang import SglangSettings
from .vllm import VllmSettings

EngineSettings = VllmSettings | SglangSettings
ENGINES = ("vllm", "sglang")
VERDICT = ("kv_cache_tokens", "max_concurrency", "starts")  # what an audit row adds from a plan
ENGINE_NAMES = {"transformers": "transformers", "vllm": "vLLM", "sglang": "SGLang"}  # as the projects write them
VERSIONS = {"transformers": transformers.VERSION, "vllm": vllm.VERSION, "sglang": sglang.VERSION}
KV_RULES = {"transformers": transformers.kv_cache, "vllm": vllm.kv_cache, "sglang": sglang.kv_cache}


def kv_cache(facts: ModelFacts, settings: Settings, seq_len: int, warnings: list[str]) -> tuple[int, Formula]:
    """The inference column's KV cache under settings.engine's rules."""
    return KV_RULES[settings.engine](facts, settings, seq_len, warnings)


def engine_settings(engine: str, **flags: object) -> EngineSettings:
    """The engine's settings from its flags (None values take the engine's default)."""
    cls = {"vllm": VllmSettings, "sglang": SglangSettings}[engine]
    return cls(**{k: v for k, v in flags.items() if v is not None})  # type: ignore[arg-type]


def verdict(plan: ServePlan | None) -> dict[str, object]:
    """An audit row's KV tokens, maximum concurrency and start verdict (None without a plan)."""
    if plan is None:
        return dict.fromkeys(VERDICT)
    return {"kv_cache_tokens": plan.kv_cache_tokens, "max_concurrency": round(plan.max_concurrency, 2),
            "starts": plan.starts}


def plan(model: ModelSpec | ModelFacts, gpu: Gpu, settings: EngineSettings) -> ServePlan:
    """The engine's start-up on `gpu` with `settings` (VllmSettings or SglangSettings)."""
    engine = vllm if isinstance(settings, VllmSettings) else sglang
    return engine.plan(model, gpu, settings)  # type: ignore[arg-type]


def solve(
    model: ModelSpec | ModelFacts, gpu: Gpu, settings: EngineSettings, *, concurrency: float = 1, max_gpus: int = 8
) -> ServePlan | None:
    """The smallest layout (fewest GPUs; then the most TP, then PP, then DP) of at most `max_gpus` GPUs that starts
    at the settings' context length and serves `concurrency` full-length requests at once; None if none does."""
    facts = facts_of(model)

    def one(layout: Layout) -> ServePlan | None:
        chosen = settings.with_layout(layout)
        return None if chosen is None else plan(facts, gpu, chosen)

    return _search(one, concurrency, max_gpus)


__all__ = [
    "ENGINES",
    "EngineSettings",
    "KvGroup",
    "Layout",
    "ServePlan",
    "ENGINE_NAMES",
    "KV_RULES",
    "VERDICT",
    "SglangSettings",
    "VllmSettings",
    "VERSIONS",
    "engine_settings",
    "kv_cache",
    "layouts",
    "plan",
    "solve",
    "verdict",
]
