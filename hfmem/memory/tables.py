"""Tables users ask for (memory-model.md A.5): sequence x batch sweep, largest context / batch that fits, what-if."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from ..gpus import Gpu
from ..spec import ModelSpec
from .estimator import mode_estimate
from .facts import ModelFacts, facts_of
from .settings import DEFAULT_SEQ_LEN, MODES, Mode, Optimizer, Recipe, Settings, resolve_seq_len, usable_bytes

CURVE_START = 256  # the shortest sequence of the memory-against-context curve
SWEEP_SEQ_LENS = (512, 2048, 8192)
SWEEP_BATCHES = (1, 4, 8)
MAX_BATCH = 1 << 16
UNKNOWN_CONTEXT = 1 << 20  # search bound when the config states no context
WHAT_IF_GPUS = 8  # ZeRO rows spread over this many GPUs unless --gpus says more


@dataclass(frozen=True)
class SweepRow:
    seq_len: int
    batch_size: int
    totals: dict[Mode, int]  # mode -> total bytes

    def to_dict(self) -> dict[str, int]:
        return {"seq_len": self.seq_len, "batch_size": self.batch_size, **{m.value: t for m, t in self.totals.items()}}


@dataclass(frozen=True)
class Limits:
    """The inverse answers on one GPU, per mode: the longest context at the chosen batch size, and the largest
    batch at the chosen sequence length (None: not even 1 fits)."""

    gpu: Gpu
    batch_size: int  # the batch the contexts are for
    seq_len: int  # the sequence length the batches are for
    max_seq_len: dict[Mode, int | None]
    max_batch_size: dict[Mode, int | None]

    def to_dict(self) -> dict[str, dict[str, int | None]]:
        return {m: {"max_seq_len": self.max_seq_len[m], "max_batch_size": self.max_batch_size[m]} for m in MODES}


@dataclass(frozen=True)
class WhatIfRow:
    change: str
    mode: Mode  # the mode the change applies to
    total_bytes: int
    baseline_bytes: int  # the same mode without the change
    fits: bool | None  # None when no GPU was given
    reason: str | None = None  # why the change saves nothing, when the model knows

    @property
    def saving_bytes(self) -> int:
        return self.baseline_bytes - self.total_bytes

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "change": self.change, "total_bytes": self.total_bytes,
                "saves_bytes": self.saving_bytes, "fits": self.fits, "reason": self.reason}  # fmt: skip


OPTIMIZER_PEAK = "the optimizer step is the peak, and it holds no activations"


def _no_saving_reason(name: str, saving: int, peak_phase: str | None) -> str | None:
    """Why gradient checkpointing saves nothing: it shrinks the activations, and the peak phase has none."""
    if "gradient checkpointing" in name and saving <= 0 and peak_phase == "optimizer step":
        return OPTIMIZER_PEAK
    return None


def _total(facts: ModelFacts, settings: Settings, mode: Mode) -> int:
    return mode_estimate(facts, settings, mode).total_bytes


def sweep_seq_lens(max_positions: int | None) -> tuple[int, ...]:
    """512 / 2048 / 8192 and the model's context (those beyond the context left out)."""
    if max_positions is None:
        return SWEEP_SEQ_LENS
    return tuple(sorted({s for s in SWEEP_SEQ_LENS if s < max_positions} | {max_positions}))


def _sweep_row(facts: ModelFacts, settings: Settings, seq_len: int, batch_size: int) -> SweepRow:
    point = replace(settings, seq_len=seq_len, batch_size=batch_size)
    return SweepRow(seq_len, batch_size, {mode: _total(facts, point, mode) for mode in MODES})


def sweep(model: ModelSpec | ModelFacts, settings: Settings) -> list[SweepRow]:
    """Total per mode over sequence lengths x batch sizes, so linear and quadratic growth show at a glance."""
    facts = facts_of(model)
    seq_lens = sweep_seq_lens(facts.dims.max_positions)
    return [_sweep_row(facts, settings, seq_len, batch) for seq_len in seq_lens for batch in SWEEP_BATCHES]


def curve_seq_lens(max_positions: int | None) -> tuple[int, ...]:
    """Powers of two from 256 below the model's context, then the context (4096 when the config states none)."""
    context = max_positions or DEFAULT_SEQ_LEN
    shorter = (CURVE_START << i for i in range(max(context // CURVE_START, 1).bit_length()))
    return (*(n for n in shorter if n < context), context)


def seq_curve(model: ModelSpec | ModelFacts, settings: Settings) -> tuple[SweepRow, ...]:
    """Total per mode at the chosen batch size over curve_seq_lens(): memory against context, for a chart."""
    facts = facts_of(model)
    return tuple(_sweep_row(facts, settings, n, settings.batch_size) for n in curve_seq_lens(facts.dims.max_positions))


def _largest(fits: Callable[[int], bool], high: int) -> int | None:
    """The largest n in [1, high] with fits(n), for a fits() that is true up to some n; None if fits(1) is false."""
    if not fits(1):
        return None
    low = 1
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def limits(model: ModelSpec | ModelFacts, settings: Settings, gpu: Gpu) -> Limits:
    facts = facts_of(model)
    seq_len = resolve_seq_len(settings, facts.dims.max_positions)
    return Limits(gpu, settings.batch_size, seq_len, max_seq_len(facts, settings, gpu), max_batch(facts, settings, gpu))


def max_seq_len(model: ModelSpec | ModelFacts, settings: Settings, gpu: Gpu) -> dict[Mode, int | None]:
    """Per mode, the longest sequence (up to the model's context) that fits the GPU at the given batch size."""
    facts = facts_of(model)
    usable = usable_bytes(gpu, settings)
    bound = facts.dims.max_positions or UNKNOWN_CONTEXT

    def fits(mode: Mode, seq_len: int) -> bool:
        return _total(facts, replace(settings, seq_len=seq_len), mode) <= usable

    return {mode: _largest(partial(fits, mode), bound) for mode in MODES}


def max_batch(model: ModelSpec | ModelFacts, settings: Settings, gpu: Gpu) -> dict[Mode, int | None]:
    """Per mode, the largest batch that fits the GPU at the given sequence length."""
    facts = facts_of(model)
    usable = usable_bytes(gpu, settings)

    def fits(mode: Mode, batch_size: int) -> bool:
        return _total(facts, replace(settings, batch_size=batch_size), mode) <= usable

    return {mode: _largest(partial(fits, mode), MAX_BATCH) for mode in MODES}


def what_if(model: ModelSpec | ModelFacts, settings: Settings, gpu: Gpu | None = None) -> list[WhatIfRow]:
    """The usual memory savers on this model, each as the new total of the mode it affects. Savings are not
    additive: each row changes one thing from the baseline, and the peak may move to another phase."""
    facts = facts_of(model)
    usable = usable_bytes(gpu, settings) if gpu else None
    gpus = max(settings.gpus, WHAT_IF_GPUS)
    other_recipe = Recipe.BF16 if settings.recipe is not Recipe.BF16 else Recipe.MIXED
    changes: list[tuple[str, Mode, Settings]] = [
        ("baseline", Mode.INFERENCE, settings),
        ("baseline", Mode.TRAINING, settings),
        ("baseline", Mode.LORA, settings),
        ("gradient checkpointing", Mode.TRAINING,
         replace(settings, grad_checkpointing=not settings.grad_checkpointing)),
        (f"recipe {other_recipe.value}", Mode.TRAINING, replace(settings, recipe=other_recipe)),
        ("8-bit AdamW", Mode.TRAINING, replace(settings, optimizer=Optimizer.ADAMW_8BIT)),
        (f"ZeRO-2 over {gpus} GPUs", Mode.TRAINING, replace(settings, gpus=gpus, zero=2)),
        (f"ZeRO-3 over {gpus} GPUs", Mode.TRAINING, replace(settings, gpus=gpus, zero=3)),
        ("gradient checkpointing", Mode.LORA, replace(settings, grad_checkpointing=not settings.grad_checkpointing)),
        ("QLoRA (NF4 base)", Mode.LORA, replace(settings, qlora=True)),
    ]
    if facts.spec.quantization is None:
        changes += [
            ("int8 weights", Mode.INFERENCE, replace(settings, dtype="int8")),
            ("int4 weights", Mode.INFERENCE, replace(settings, dtype="int4")),
        ]
    if facts.spec.gguf is not None:  # llama.cpp: a quantized cache type, not an fp8 dtype
        changes.append(("q8_0 KV cache", Mode.INFERENCE, replace(settings, cache_type_k="q8_0", cache_type_v="q8_0")))
    else:
        changes.append(("fp8 KV cache", Mode.INFERENCE, replace(settings, kv_dtype="fp8")))
    if settings.grad_checkpointing:
        changes = [
            (name.replace("gradient checkpointing", "no gradient checkpointing"), mode, s) for name, mode, s in changes
        ]
    baselines = {mode: _total(facts, settings, mode) for mode in MODES}
    rows = []
    for name, mode, changed in changes:
        if changed == settings:
            total, phase = baselines[mode], None
        else:
            result = mode_estimate(facts, changed, mode)
            total, phase = result.total_bytes, result.settings.get("peak_phase")
        reason = _no_saving_reason(name, baselines[mode] - total, phase)
        rows.append(WhatIfRow(name, mode, total, baselines[mode], None if usable is None else total <= usable, reason))
    return rows
