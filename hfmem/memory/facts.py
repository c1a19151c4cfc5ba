"""What the memory model needs to know about a model, derived once from its ModelSpec.

Dimensions come from the Architecture; which tensors are linear weights (for LoRA, bitsandbytes quantisation and
the largest layer) comes from the checkpoint's tensor names and shapes. A repo without safetensors gets a
Llama-style tensor list built from the config instead, and a warning says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from .. import dtypes
from ..architecture import Architecture, Recurrent
from ..config import family_of, known_family
from ..errors import UnsupportedModel
from ..gguf import GGML_TYPES
from ..header import Tensor
from ..layouts import Layout, config_layout
from ..spec import ModelSpec, is_embedding

BLOCK = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)\.")
# Floating-point weights, as trainable as any: a GGUF's block-quantised ggml types among them.
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"} | {name for name, block, _ in GGML_TYPES.values() if block > 1}


@dataclass(frozen=True, slots=True)
class Linear:
    """One linear weight (or `count` identical experts): module name (tensor name without '.weight'), features,
    and its block index."""

    module: str
    in_features: int
    out_features: int
    block: int | None
    count: int = 1

    @property
    def numel(self) -> int:
        return self.in_features * self.out_features


# Families whose transformers attention materialises heads x q x kv scores whatever --attention says: T5's
# relative position bias is added to the scores (transformers 4.x: no SDPA path; 5.x passes the bias as a float
# attn_mask of the same shape, models/t5/modeling_t5.py).
EAGER_ONLY_TYPES = frozenset({"t5", "mt5", "umt5"})


@dataclass(frozen=True)
class Dropouts:
    """Dropout sites that run in training (p > 0), from the config keys transformers' modelling code reads. Each
    keeps a bool mask for backward (torch native_dropout: 1 B per element); p = 0 returns its input (no mask)."""

    embedding: int = 0  # hidden-width sites once per token: GPT-2 `drop` (embd_pdrop), T5 stack ends (x 2 / stack)
    sublayer: bool = False  # after each attention / MLP sublayer: resid_pdrop, T5 dropout_rate, BERT hidden
    inner: bool = False  # inside the MLP, on the activation (T5DenseActDense / T5DenseGatedActDense)
    probs: bool = False  # attention probabilities: eager only (SDPA's kernels keep a seed, not a mask)

    @classmethod
    def of(cls, arch: Architecture) -> Dropouts:
        p = dict(arch.dropouts)
        t5 = "dropout_rate" in p
        stacks = 2 if arch.is_encoder_decoder else 1
        return cls(
            embedding=("embd_pdrop" in p) + ("hidden_dropout_prob" in p) + (2 * stacks if t5 else 0),
            sublayer=t5 or "resid_pdrop" in p or "hidden_dropout_prob" in p,
            inner=t5,
            probs=t5 or any(k in p for k in ("attn_pdrop", "attention_dropout", "attention_probs_dropout_prob")),
        )


@dataclass(frozen=True)
class Dims:
    """Dimensions with None resolved to 0 (a 0 switches the dependent term off; facts.warnings says so)."""

    hidden: int
    layers: int  # layers that carry activations: decoder (or encoder) stack; both stacks for encoder-decoder
    decoder_layers: int  # layers holding a KV cache (0 for encoder-only)
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    max_positions: int | None
    gated: bool
    layer_kinds: tuple[str, ...]  # per decoder layer: "full_attention" | "sliding_attention" | other
    window: int | None
    mla: bool
    q_lora_rank: int
    kv_lora_rank: int
    qk_head_dim: int  # per-head query/key width (MLA: nope + rope)
    v_head_dim: int
    qk_rope_head_dim: int
    moe_layers: int  # layers whose MLP is a routed mixture of experts
    experts: int
    experts_per_token: int
    expert_intermediate: int
    shared_intermediate: int
    encoder_decoder: bool
    encoder_only: bool
    has_lm_logits: bool  # a vocabulary projection over every position (causal/seq2seq/masked LM)
    activation: str | None = None  # config hidden_act (ACT2FN key)
    eager_only: bool = False  # EAGER_ONLY_TYPES
    dropouts: Dropouts = Dropouts()
    recurrent: Recurrent | None = None  # state of the layers whose kind is "recurrent" or "hybrid" (memory/state.py)

    @property
    def kv_layers(self) -> int:
        """Decoder layers that cache K/V (a recurrent-only layer keeps a fixed state instead)."""
        return self.decoder_layers - sum(kind == "recurrent" for kind in self.layer_kinds[: self.decoder_layers])


@dataclass(frozen=True)
class ModelFacts:
    spec: ModelSpec
    dims: Dims
    tensors: tuple[Tensor, ...]  # the checkpoint's, or the config-derived stand-in (synthetic=True)
    synthetic: bool
    linears: tuple[Linear, ...]  # every nn.Linear weight except the output projection and bare routers
    linears_by_leaf: dict[str, tuple[Linear, ...]]  # "q_proj" -> every linear whose module name ends with it
    embeddings: tuple[Tensor, ...]  # 2-D embedding / output tables (LoRA may target them by name)
    float_shapes: dict[tuple[int, ...], int]  # shape -> how many floating-point tensors have it (optimizer state)
    trainable_parameters: int  # floating-point elements (what full fine-tuning updates)
    largest_layer_parameters: int  # the largest decoder block, or a larger single tensor (e.g. the embedding)
    largest_tensor_parameters: int
    warnings: tuple[str, ...]

    @property
    def model_type(self) -> str:
        return self.spec.architecture.model_type or ""

    @cached_property
    def linear_parameters(self) -> int:
        return sum(lin.numel * lin.count for lin in self.linears)

    @cached_property
    def sums(self) -> dict[tuple[object, ...], Any]:
        """Per-model cache of tensor sums and matches that estimates ask for repeatedly (keyed by the caller)."""
        return {}

    @cached_property
    def largest_linear(self) -> Linear | None:
        return max(self.linears, key=lambda lin: lin.numel, default=None)

    @cached_property
    def widest_int8_row(self) -> int:
        """The largest in_features + 4 x out_features of a linear: LLM.int8's int8 input plus int32 output per
        token (a maximum of its own: gate/up and down projections tie in numel but not in this)."""
        return max((lin.in_features + 4 * lin.out_features for lin in self.linears), default=0)


def analyse(spec: ModelSpec) -> ModelFacts:
    """Everything the memory model reads from a spec (one pass over its tensors)."""
    return _analyse(spec)


def facts_of(model: ModelSpec | ModelFacts) -> ModelFacts:
    """Tables and renderers take a spec or, to skip the pass over its tensors, facts already made from it."""
    return model if isinstance(model, ModelFacts) else analyse(model)


def _analyse(spec: ModelSpec) -> ModelFacts:
    warnings: list[str] = []
    model_type = spec.architecture.model_type or ""
    tensors, synthetic = spec.tensors, False
    if not tensors:  # the tensors transformers would build from config.json (the parameter count's own list)
        st = dtypes.TORCH_TO_SAFETENSORS.get(spec.dtype or "", "F32")
        layout = spec.layout or _arch_layout(spec.architecture)
        tensors, synthetic = (layout.tensors(st) if layout else ()), True
        warnings.append(
            "no safetensors headers: linear-layer shapes (LoRA counts, int8/int4 sizes, largest layer) are derived "
            "from config.json"
        )
    scan = _scan(tensors, model_type)
    arch = spec.architecture
    if not synthetic:
        arch = _header_facts(arch, scan, warnings)
        warnings += _contradictions(spec, scan)
    dims = _dims(arch, len(scan.moe_blocks) if tensors else None, warnings)
    by_leaf: dict[str, list[Linear]] = {}
    for lin in scan.linears:
        by_leaf.setdefault(lin.module.rsplit(".", 1)[-1], []).append(lin)
    return ModelFacts(
        spec=spec,
        dims=dims,
        tensors=tensors,
        synthetic=synthetic,
        linears=tuple(scan.linears),
        linears_by_leaf={leaf: tuple(group) for leaf, group in by_leaf.items()},
        embeddings=tuple(scan.embeddings),
        float_shapes=scan.float_shapes,
        trainable_parameters=scan.float_parameters or spec.parameters.total,
        largest_layer_parameters=max(max(scan.blocks.values(), default=0), scan.largest_tensor),
        largest_tensor_parameters=scan.largest_tensor,
        warnings=tuple(warnings),
    )


@dataclass
class _Scan:
    """One pass over the tensors (DeepSeek-V3 has 45k of them, so each is looked at once)."""

    linears: list[Linear] = field(default_factory=list)
    embeddings: list[Tensor] = field(default_factory=list)
    float_shapes: dict[tuple[int, ...], int] = field(default_factory=dict)
    float_parameters: int = 0
    blocks: dict[str, int] = field(default_factory=dict)  # "encoder.block.0." -> its parameters
    moe_blocks: set[int] = field(default_factory=set)  # block indices holding routed experts
    largest_tensor: int = 0


def _scan(tensors: tuple[Tensor, ...], model_type: str) -> _Scan:
    scan = _Scan()
    family = family_of(model_type)
    bare_router = family.bare_router if family else None
    conv1d = bool(family and family.conv1d)
    blocks, float_shapes, linears = scan.blocks, scan.float_shapes, scan.linears  # locals: 45k tensors pass here
    for t in tensors:
        name, shape, numel, count = t.name, t.shape, t.numel, t.count
        match = BLOCK.search(name)
        block = None
        if match:
            block = int(match.group(1))
            key = name[: match.end()]
            blocks[key] = blocks.get(key, 0) + numel * count
            if ".experts." in name:
                scan.moe_blocks.add(block)
        if numel > scan.largest_tensor:
            scan.largest_tensor = numel
        if t.dtype in _FLOAT_DTYPES or t.dtype.startswith("F8"):
            float_shapes[shape] = float_shapes.get(shape, 0) + count
            scan.float_parameters += numel * count
        if len(shape) != 2:
            continue
        if is_embedding(name):
            scan.embeddings.append(t)
        elif name.endswith(".weight"):
            module = name[: -len(".weight")]
            leaf = module.rsplit(".", 1)[-1]
            if leaf == bare_router:  # a bare nn.Parameter router, not an nn.Linear
                continue
            rows, cols = shape
            if conv1d and leaf.startswith(("c_", "q_attn")):  # transformers' Conv1D stores (in, out)
                rows, cols = cols, rows
            linears.append(Linear(module, cols, rows, block, count))
    return scan


_INPUT_TABLES = {"embed_tokens", "wte", "word_embeddings", "tok_embeddings", "embed_in", "embeddings"}
# Quantized storage: what a quantization_config's checkpoint holds besides floats (packed ints, fp8, 4-bit bytes).
_QUANTIZED_DTYPES = {"I32", "U32", "I8", "U8", "I4", "U4"}


def _header_facts(arch: Architecture, scan: _Scan, warnings: list[str]) -> Architecture:
    """What the safetensors headers prove where config.json is silent (an unknown family read with the common key
    names): hidden and vocabulary sizes from the input embedding, the MLP width from up_proj, the layer count from
    `layers.N.` names, K/V heads from k_proj's shape (config.json's num_key_value_heads defaults to the attention
    heads), the routed experts per layer. Each guess is named in a warning."""
    found: dict[str, Any] = {}
    table = next((t for t in scan.embeddings if t.name.rsplit(".", 2)[-2] in _INPUT_TABLES), None)
    if table is not None and not arch.hidden_size:
        found |= {"hidden_size": table.shape[1], "vocab_size": arch.vocab_size or table.shape[0]}
        warnings.append(f"hidden_size {table.shape[1]} taken from the input embedding's shape")
    hidden = found.get("hidden_size", arch.hidden_size)
    up = next((lin for lin in scan.linears if lin.module.endswith(".up_proj") and lin.in_features == hidden), None)
    if up is not None and not arch.intermediate_size and ".experts." not in up.module:
        found["intermediate_size"] = up.out_features
        warnings.append(f"intermediate_size {up.out_features} taken from up_proj's shape")
    blocks = {int(m.group(1)) for key in scan.blocks if (m := BLOCK.search(key))}
    if not arch.num_hidden_layers and blocks:
        found["num_hidden_layers"] = max(blocks) + 1
        warnings.append(f"num_hidden_layers {max(blocks) + 1} taken from the checkpoint's layer names")
    heads = arch.num_attention_heads
    head_dim = arch.head_dim or (hidden // heads if hidden and heads else None)
    k_proj = _k_proj(scan, hidden)
    kv_heads = k_proj.out_features // head_dim if k_proj is not None and head_dim else None
    unknown = not known_family(arch.model_type)
    if (arch.attention != "mla" and unknown and kv_heads and head_dim
            and kv_heads != (arch.num_key_value_heads or heads)):  # fmt: skip
        found |= {"num_key_value_heads": kv_heads, "head_dim": head_dim}
        warnings.append(f"num_key_value_heads {kv_heads} taken from k_proj's shape ({kv_heads * head_dim} / "
                        f"head_dim {head_dim})")  # fmt: skip
    experts = max((lin.count for lin in scan.linears if ".experts." in lin.module), default=1)
    if not arch.num_experts and experts > 1:
        found["num_experts"] = experts
        warnings.append(f"num_experts {experts} taken from the checkpoint's expert tensors (experts per token "
                        f"unknown: 1 assumed)")  # fmt: skip
    return replace(arch, **found) if found else arch


def _k_proj(scan: _Scan, hidden: int | None) -> Linear | None:
    """The language model's first K projection (a vision tower's has another input width)."""
    return next((lin for lin in scan.linears if lin.module.endswith(".k_proj") and lin.in_features == hidden), None)


def _contradictions(spec: ModelSpec, scan: _Scan) -> list[str]:
    """Where the checkpoint contradicts its own config.json (the headers win: they are what loads). A float
    dtype other than torch_dtype is no contradiction (from_pretrained casts); a quantization_config over plain
    float tensors, fewer layers than configured, or K/V projections of another width are."""
    arch, out = spec.architecture, []
    dtypes_held = {t.dtype for t in spec.tensors}
    quant = spec.quantization
    if quant is not None and quant.method != "gguf" and not dtypes_held & _QUANTIZED_DTYPES and not any(
        d.startswith("F8") for d in dtypes_held
    ):
        held = ", ".join(sorted(dtypes_held))
        out.append(f"config.json's quantization_config says {quant.method}, but the checkpoint stores only {held} "
                   "tensors: sizes follow the headers")  # fmt: skip
    blocks = {int(m.group(1)) for key in scan.blocks if (m := BLOCK.search(key))}
    layers = arch.num_hidden_layers or 0
    if blocks and layers and not arch.is_encoder_decoder and max(blocks) + 1 < layers:
        out.append(f"config.json has {layers} layers, but the checkpoint holds {max(blocks) + 1}")
    d = arch.head_dim
    k_proj = _k_proj(scan, arch.hidden_size)
    known = known_family(arch.model_type)  # an unknown family takes the headers' width (_header_facts)
    if known and quant is None and k_proj is not None and arch.attention in ("mha", "gqa", "mqa") and d and \
            arch.num_key_value_heads and k_proj.out_features != arch.num_key_value_heads * d:
        out.append(f"k_proj is {k_proj.out_features} wide, not num_key_value_heads x head_dim = "
                   f"{arch.num_key_value_heads} x {d}: the KV cache follows config.json")  # fmt: skip
    return out


def _dims(arch: Architecture, moe_blocks: int | None, warnings: list[str]) -> Dims:
    """`moe_blocks`: blocks holding routed experts in the checkpoint (None when there is no checkpoint)."""
    required: tuple[str, ...] = ("hidden_size", "num_hidden_layers", "num_attention_heads")
    if arch.layer_types and "recurrent" in arch.layer_types and arch.num_attention_heads is None:
        required = required[:2]  # an attention-free state-space model
    missing = [name for name in required if not getattr(arch, name)]
    if missing:
        warnings.append(f"config lacks {', '.join(missing)}: activations and KV cache are left out (0 bytes)")
    hidden, layers, heads = arch.hidden_size or 0, arch.num_hidden_layers or 0, arch.num_attention_heads or 0
    head_dim = arch.head_dim or (hidden // heads if heads else 0)
    intermediate = arch.intermediate_size or 4 * hidden
    if arch.intermediate_size is None and hidden:
        warnings.append(f"config lacks intermediate_size: activations assume 4 x hidden = {intermediate}")
    if arch.vocab_size is None:
        warnings.append("config lacks vocab_size: the logits term is left out")
    mla = arch.attention == "mla"
    nope, rope = arch.qk_nope_head_dim or 0, arch.qk_rope_head_dim or 0
    decoder_layers = 0 if arch.is_encoder_only else (arch.num_decoder_layers or layers)
    kinds = arch.layer_types or ("full_attention",) * decoder_layers
    experts = arch.num_experts or 0
    moe_layers = moe_blocks if moe_blocks is not None else (layers if experts else 0)
    expert_inner = arch.moe_intermediate_size or intermediate
    names = " ".join(arch.architectures)
    masked_lm = any(marker in names for marker in ("MaskedLM", "PreTraining"))
    return Dims(
        hidden=hidden,
        layers=layers + (decoder_layers if arch.is_encoder_decoder else 0),
        decoder_layers=decoder_layers,
        heads=heads,
        kv_heads=arch.num_key_value_heads or heads,
        head_dim=head_dim,
        intermediate=intermediate,
        vocab=arch.vocab_size or 0,
        max_positions=arch.max_position_embeddings,
        gated=arch.gated_mlp,
        layer_kinds=tuple(kinds),
        window=arch.sliding_window,
        mla=mla,
        q_lora_rank=arch.q_lora_rank or 0,
        kv_lora_rank=arch.kv_lora_rank or 0,
        qk_head_dim=(nope + rope) if mla else head_dim,
        v_head_dim=(arch.v_head_dim or head_dim) if mla else head_dim,
        qk_rope_head_dim=rope,
        moe_layers=moe_layers if experts else 0,
        experts=experts,
        experts_per_token=arch.num_experts_per_tok or 1,
        expert_intermediate=expert_inner,
        shared_intermediate=(arch.num_shared_experts or 0) * expert_inner,
        encoder_decoder=arch.is_encoder_decoder,
        encoder_only=arch.is_encoder_only,
        has_lm_logits=bool(arch.vocab_size) and (not arch.is_encoder_only or masked_lm),
        activation=arch.hidden_act,
        eager_only=arch.model_type in EAGER_ONLY_TYPES,
        dropouts=Dropouts.of(arch),
        recurrent=arch.recurrent,
    )


def _arch_layout(arch: Architecture) -> Layout | None:
    """A spec made without its config.json (by hand, or from a GGUF without tensors): the Llama layout of its
    architecture, or None when it lacks the dimensions."""
    try:
        return config_layout(arch)
    except UnsupportedModel:
        return None
