"""LoRA / QLoRA: exact adapter parameters from header shapes, frozen base, fp32 adapters, peak by phase."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..spec import is_expert
from ..vision import is_vision_tensor
from .activations import runs_eager
from .facts import ModelFacts
from .phases import Phase, peak, peak_formula, step_activations, step_settings
from .results import Formula, LoraEstimate
from .settings import DEFAULT_LORA_RANK, Settings
from .states import Sharding, optimizer_state_bytes, step_temporary_bytes
from .vision import with_tower
from .weights import FLOAT_BYTES, compute_dtype, inference_weights, quantised_weights

ALL_LINEAR = "all-linear"
ADAPTER_BYTES = 4  # PEFT autocast_adapter_dtype=True keeps adapters in fp32 (peft src/peft/mapping_func.py)
# PEFT-style default targets where the attention projections have other names (memory-model.md A.4).
DEFAULT_TARGETS: dict[str, tuple[str, ...]] = {
    "gpt2": ("c_attn",),
    "gpt_bigcode": ("c_attn",),
    "bert": ("query", "key", "value"),
    "roberta": ("query", "key", "value"),
    "xlm-roberta": ("query", "key", "value"),
    "distilbert": ("q_lin", "k_lin", "v_lin"),
    "t5": ("q", "k", "v", "o"),
    "mt5": ("q", "k", "v", "o"),
    "phi3": ("qkv_proj", "o_proj"),
    "phi": ("q_proj", "k_proj", "v_proj", "dense"),
    "gptj": ("q_proj", "k_proj", "v_proj", "out_proj"),
    "gpt_neox": ("query_key_value", "dense"),
    "falcon": ("query_key_value", "dense"),
    "bloom": ("query_key_value", "dense"),
    # PEFT's mapping (peft utils/constants.py TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING) has no Mamba,
    # Mamba-2 or SSM hybrid entry, so PEFT asks for target_modules; transformers' mamba.md and mamba2.md fine-tune
    # both with LoraConfig(target_modules=["x_proj", "embeddings", "in_proj", "out_proj"]) (Mamba-2 has no x_proj).
    # Hybrids keep the attention-name default below: their attention layers are what that finds.
    "mamba": ("x_proj", "embeddings", "in_proj", "out_proj"),
    "mamba2": ("x_proj", "embeddings", "in_proj", "out_proj"),
}
# Otherwise: whichever of these attention projection names the checkpoint has.
ATTENTION_NAMES = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "qkv_proj",
    "q_a_proj",
    "q_b_proj",
    "kv_a_proj_with_mqa",
    "kv_b_proj",
    "query_key_value",
    "c_attn",
    "query",
    "key",
    "value",
    "Wqkv",
)


@dataclass(frozen=True)
class Adapter:
    """One adapted module (or `count` identical experts): LoRA A (r x in) and B (out x r)."""

    module: str
    in_features: int
    out_features: int
    linear: bool  # False for an embedding table (its input is token ids: no activation copy)
    count: int = 1


def matches(module: str, target: str) -> bool:
    """PEFT target_modules semantics: the full module name equals the target or ends with '.target'."""
    return module == target or module.endswith("." + target)


def default_targets(facts: ModelFacts) -> tuple[str, ...]:
    tables = {t.name.removesuffix(".weight").rsplit(".", 1)[-1] for t in facts.embeddings}
    present = facts.linears_by_leaf.keys() | tables
    preset = DEFAULT_TARGETS.get(facts.model_type)
    if preset and present & set(preset):
        return tuple(t for t in preset if t in present)
    found = tuple(name for name in ATTENTION_NAMES if name in present)
    return found or ("q_proj", "k_proj", "v_proj", "o_proj")


def adapters(facts: ModelFacts, targets: tuple[str, ...]) -> list[Adapter]:
    """Modules PEFT would adapt: all-linear = every nn.Linear but the output layer (facts.linears already leaves
    out lm_head and bare-parameter routers); named targets may also hit embedding tables."""
    if ALL_LINEAR in targets:
        return [Adapter(lin.module, lin.in_features, lin.out_features, True, lin.count) for lin in facts.linears]
    leaves = {t.rsplit(".", 1)[-1] for t in targets}  # a module matching a target ends with its last part
    candidates = [lin for leaf in sorted(leaves) for lin in facts.linears_by_leaf.get(leaf, ())]
    found = [
        Adapter(lin.module, lin.in_features, lin.out_features, True, lin.count)
        for lin in candidates
        if any(matches(lin.module, t) for t in targets)
    ]
    for t in facts.embeddings:
        module = t.name.removesuffix(".weight")
        if any(matches(module, x) for x in targets):
            rows, cols = t.shape
            lm_head = module.endswith(("lm_head", "embed_out"))  # a Linear over the vocabulary
            found.append(Adapter(module, cols, rows, lm_head))
    return found


def _adapter_bytes_per_token(facts: ModelFacts, adapted: list[Adapter], r: int) -> int:
    """PEFT casts each adapted linear's input to fp32 and saves it, and lora_B saves lora_A's output (A.4b). A
    routed expert sees only the tokens routed to it: over a layer's E experts that is k copies per token, not E.
    Adapters in a vision tower see its patches, not the text's tokens (memory.vision.with_tower counts them)."""
    text = [a for a in adapted if a.linear and not is_vision_tensor(a.module)]
    dense = sum((a.in_features + r) * a.count for a in text if not is_expert(a.module))
    routed = sum((a.in_features + r) * a.count for a in text if is_expert(a.module))
    dims = facts.dims
    if dims.experts:
        routed = routed * dims.experts_per_token // dims.experts
    return ADAPTER_BYTES * (dense + routed)


@dataclass(frozen=True)
class _Adapted:
    """The modules one target list adapts at rank r, summed once per model: the tables try many settings."""

    modules: tuple[Adapter, ...]
    count: int  # modules, experts counted one by one
    trainable: int  # r x (in + out) over the modules
    shapes: Counter[tuple[int, ...]]  # lora_A / lora_B shape -> how many (read by SHAPED optimizers)
    largest: int  # elements of the largest lora_A or lora_B
    bytes_per_token: int  # _adapter_bytes_per_token


def _adapted(facts: ModelFacts, targets: tuple[str, ...], r: int) -> _Adapted:
    key = ("adapters", targets, r)
    if key not in facts.sums:
        found = adapters(facts, targets)
        shapes: Counter[tuple[int, ...]] = Counter()
        for a in found:
            shapes[(r, a.in_features)] += a.count
            shapes[(a.out_features, r)] += a.count
        facts.sums[key] = _Adapted(
            modules=tuple(found),
            count=sum(a.count for a in found),
            trainable=sum(r * (a.in_features + a.out_features) * a.count for a in found),
            shapes=shapes,
            largest=max((max(a.in_features, a.out_features) * r for a in found), default=0),
            bytes_per_token=_adapter_bytes_per_token(facts, found, r),
        )
    return facts.sums[key]


def resolve_targets(facts: ModelFacts, settings: Settings) -> tuple[str, ...]:
    if settings.lora_targets is None:
        return default_targets(facts)
    targets = settings.lora_targets
    assert not isinstance(targets, str)  # Settings splits a comma-separated string
    if any(t.lower() == ALL_LINEAR for t in targets):
        return (ALL_LINEAR,)
    return targets


def lora_estimate(facts: ModelFacts, settings: Settings, seq_len: int, warnings: list[str]) -> LoraEstimate:
    r = settings.lora_rank or DEFAULT_LORA_RANK
    targets = resolve_targets(facts, settings)
    adapted = _adapted(facts, targets, r)
    if not adapted.modules:
        warnings.append(f"LoRA targets {', '.join(targets)} match no module of this checkpoint: nothing to train")
    elif ALL_LINEAR not in targets:
        unmatched = [t for t in targets if not any(matches(a.module, t) for a in adapted.modules)]
        if unmatched:
            warnings.append(f"LoRA target{'s' * (len(unmatched) > 1)} {', '.join(unmatched)} match no module of "
                            "this checkpoint (PEFT would refuse a target that matches nothing)")
    trainable = adapted.trainable
    shard = Sharding.of(settings)
    if settings.qlora:
        base = quantised_weights(facts, 4, double_quant=True)
        c = 2  # QLoRA computes in 16-bit (bnb_4bit_compute_dtype=bfloat16 in the QLoRA recipe)
    else:
        base = inference_weights(facts, settings, warnings)
        c = FLOAT_BYTES[compute_dtype(facts, settings)]
    weights = shard.split(base.total_bytes, 3)
    params = trainable * ADAPTER_BYTES
    optimizer, optimizer_expr = optimizer_state_bytes(settings.optimizer, ADAPTER_BYTES, trainable, adapted.shapes)
    temporary, temporary_expr = step_temporary_bytes(settings.optimizer, ADAPTER_BYTES, trainable, adapted.largest)
    grads = shard.split(params, 2)
    optimizer, temporary = shard.split(optimizer, 1), shard.split(temporary, 1)
    adapter_act = adapted.bytes_per_token
    steps = step_activations(
        facts.dims,
        c=c,
        residual=c,
        batch_size=settings.batch_size,
        seq_len=seq_len,
        trainable=False,
        eager=runs_eager(facts.dims, settings.attention),
        checkpointing=settings.grad_checkpointing,
        padded=settings.padding == "padded",
        keep_outputs=settings.keep_outputs,
        decoder_len=settings.decoder_tokens(seq_len, facts.dims.encoder_decoder),
        adapter_bytes_per_token=adapter_act,
    )
    steps = with_tower(
        steps, facts, settings, c=c, residual=c, seq_len=seq_len, trainable=False, adapted=adapted.modules, rank=r
    )
    # A quantised base is dequantised one linear at a time, in compute dtype, in forward and in backward.
    dequant = c * facts.largest_linear.numel if base.linear_bytes and facts.largest_linear else 0

    def phase(name: str, g: int, o: int, a: int) -> Phase:
        return Phase(
            name,
            {"weights": weights, "adapters": shard.split(params, 3), "gradients": g, "optimizer": o, "activations": a},
        )

    phases = [
        phase("forward", 0, optimizer, steps.saved + steps.logits_forward + dequant),
        phase("loss backward", 0, optimizer, steps.saved + steps.logits_backward),
        phase("backward end", grads, optimizer, steps.layer + steps.working + steps.first_in + dequant),
        phase("optimizer step", grads, optimizer + temporary, 0),
    ]
    if settings.grad_checkpointing:
        phases.insert(2, phase("recompute", 0, optimizer, steps.saved + steps.layer + steps.working + dequant))
    top = peak(phases)
    where = shard.describe()
    base_what = (
        "QLoRA: linear weights NF4 + double quantisation (4.127 bits), rest 16-bit"
        if settings.qlora
        else "frozen base as loaded"
    )
    formulas = (
        Formula(
            "weights",
            f"{base_what}; {base.formula.expression}, {where}",
            base.formula.inputs,
            weights,
            exact=base.formula.exact,
        ),
        Formula(
            "adapters",
            "Σ over adapted modules r x (in + out) trainable params x 4 B (fp32 adapters)",
            {
                "rank": r,
                "modules": adapted.count,
                "targets": ",".join(targets),
                "trainable_parameters": trainable,
            },
            shard.split(params, 3),
            exact=not facts.synthetic,
        ),
        Formula("gradients", "trainable params x 4 B", {"trainable_parameters": trainable}, grads, exact=True),
        Formula(
            "optimizer",
            f"{settings.optimizer.value}: {optimizer_expr}",
            {"trainable_parameters": trainable},
            optimizer,
            exact=True,
        ),
        Formula("optimizer step", temporary_expr, {"trainable_parameters": trainable}, temporary, exact=False),
        Formula(
            "adapter activations",
            "Σ adapted linears (in + r) x 4 B per token (PEFT fp32 input copy); routed experts x k/E",
            {"bytes_per_token": adapter_act},
            adapter_act * settings.batch_size * seq_len,
            exact=False,
        ),
        *steps.formulas,
        Formula(
            "dequantised weight",
            "c x largest linear (bitsandbytes dequantises per layer)",
            {"compute_bytes": c},
            dequant,
            exact=False,
        ),
        peak_formula(phases),
    )
    return LoraEstimate(
        components=dict(top.parts) | {"overhead": settings.overhead_bytes},
        settings={
            "rank": r,
            "target_modules": list(targets),
            "qlora": settings.qlora,
            "batch_size": settings.batch_size,
            "seq_len": seq_len,
            "optimizer": settings.optimizer.value,
            **step_settings(facts, settings, seq_len, shard.zero, top.name),
        },
        formulas=formulas,
        trainable_parameters=trainable,
        all_parameters=facts.spec.parameters.total + trainable,
        target_modules=targets,
    )
