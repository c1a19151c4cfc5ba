"""ModelSpec: everything hfmem knows about one model, built from a Snapshot (pure; no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from . import dtypes
from .architecture import Architecture, read_dropouts
from .config import checked_int, read_architecture
from .gguf import GgufArchitecture, GgufRepo, GgufTensor, torch_name
from .header import Tensor
from .layouts import Layout, config_layout
from .snapshot import PICKLE_FORMATS, PublicInfo, Snapshot
from .untrusted import one_line
from .vision import VisionTower, is_vision_tensor, read_vision_tower

if TYPE_CHECKING:
    from .diffusers import Pipeline
    from .peft import Adapter
    from .sentence import SentenceModel


@dataclass(frozen=True)
class Quantization:
    method: str  # quant_method of quantization_config: "fp8", "mxfp4", "gptq", "awq", "bitsandbytes", ...
    bits: float | None


@dataclass(frozen=True)
class Parameters:
    total: int
    by_dtype: dict[str, int]
    embedding: int  # input embedding + other embedding tables + an untied output projection
    active: int | None  # MoE: parameters used per token (routed experts counted k/E); None for dense models
    exact: bool = True  # False when derived from config.json or the Hub's public counts (no safetensors headers)
    # What a quantized checkpoint stands for: packed weights unpacked, scales and zero points left out.
    logical: int | None = None  # None: the same as total
    vision: int | None = None  # a vision-language model's vision tower and projector (hfmem.vision); else None


@dataclass(frozen=True)
class Files:
    weights_bytes: int  # sum over tensors of elements x dtype size, as the headers state
    download_bytes: int | None  # every file of the repo (None when sizes are unknown)
    formats: tuple[str, ...]  # weight formats present: "safetensors", "pytorch", "gguf", ...
    count: int  # number of files in the repo
    vision_bytes: int | None = None  # the vision tower's and projector's share of weights_bytes


@dataclass(frozen=True)
class ModelSpec:
    model: str
    revision: str | None
    commit: str | None
    source: str  # "hub" | "local" | "cache"
    architecture: Architecture
    dtype: str | None  # torch name: config torch_dtype/dtype, else the dominant header dtype
    quantization: Quantization | None
    parameters: Parameters
    files: Files
    tensors: tuple[Tensor, ...]  # every tensor of the checkpoint (experts grouped); empty when counted from the config
    warnings: tuple[str, ...] = field(default_factory=tuple)
    gguf: GgufRepo | None = None  # a GGUF repo: tensors are the chosen variant's, renamed as transformers names them
    adapter: Adapter | None = None  # a PEFT adapter repo: everything else describes its base model
    vision: VisionTower | None = None  # a vision-language model's image encoder, as its config describes it
    # Without safetensors headers: the tensors transformers would build from config.json (the count's source).
    layout: Layout | None = field(default=None, repr=False, compare=False)
    sentence: SentenceModel | None = None  # a sentence-transformers repo: tensors include its modules' weights
    pipeline: Pipeline | None = None  # a Diffusers pipeline: tensors are every component's (chosen variant)
    access: str = "public"  # Snapshot.access: "gated" when only the Hub's public metadata could be read

    @property
    def tensor_count(self) -> int:
        return sum(t.count for t in self.tensors)


# Modules (the last name before .weight/.bias) that are embedding tables or the output projection.
EMBEDDING_MODULES = {
    "embed_tokens", "tok_embeddings", "wte", "wpe", "word_embeddings", "position_embeddings",
    "token_type_embeddings", "embed_positions", "position_embedding", "shared", "relative_attention_bias",
    "embed_in", "embed_out", "lm_head",
}  # fmt: skip


def is_embedding(name: str) -> bool:
    parts = name.rsplit(".", 2)
    # Mamba's input table is `backbone.embeddings.weight` (CLIP's `embeddings.class_embedding` is no table).
    return len(parts) >= 2 and (parts[-2] in EMBEDDING_MODULES or parts[-2:] == ["embeddings", "weight"])


def is_expert(name: str) -> bool:
    """Routed-expert weights (shared experts and routers are always active)."""
    return ".experts." in name


# Quantization side tensors (GPTQ/AWQ, compressed-tensors, MXFP4, bitsandbytes, FP8): no parameters of their own.
QUANT_AUXILIARY = (
    ".qzeros", ".scales", ".g_idx", "_scales", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map",
    ".weight_scale", ".weight_scale_inv", ".input_scale", ".weight_zero_point", ".weight_shape", ".weight_g_idx",
    ".SCB", ".weight_format",
)  # fmt: skip


def logical_numel(t: Tensor, quant: Quantization | None) -> int:
    """The parameters a tensor of a quantized checkpoint stands for (huggingface.js counts them the same way)."""
    if quant is None:
        return t.numel
    if t.name.endswith(QUANT_AUXILIARY) or ".quant_state." in t.name:
        return 0
    bits = int(quant.bits or 4)
    if t.name.endswith((".qweight", ".weight_packed")) and t.dtype in ("I32", "U32"):
        return t.numel * (32 // bits)  # GPTQ / AWQ / compressed-tensors pack 32/bits values per int32
    if t.dtype == "U8" and (t.name.endswith("_blocks") or (quant.method == "bitsandbytes" and bits == 4)):
        return t.numel * 2  # MXFP4 blocks and bitsandbytes NF4/FP4: two 4-bit values per byte
    return t.numel


def build_spec(snapshot: Snapshot) -> ModelSpec:
    """Normalise a snapshot: architecture from config.json, exact counts from the safetensors headers; or both from
    the chosen GGUF variant's headers."""
    if snapshot.gguf is not None:
        return _gguf_spec(snapshot, snapshot.gguf)
    if snapshot.pipeline is not None:
        return _pipeline_spec(snapshot, snapshot.pipeline)
    if snapshot.public is not None:
        return _public_spec(snapshot, snapshot.public)
    architecture, config_warnings = read_architecture(snapshot.config)
    architecture = replace(architecture, dropouts=read_dropouts(snapshot.config))
    warnings = list(snapshot.warnings) + config_warnings
    tensors = tuple(t for header in snapshot.headers.values() for t in header.tensors)
    if snapshot.sentence is not None and tensors:  # the modules beyond the root Transformer (Dense) count too
        tensors += snapshot.sentence.tensors
        warnings += snapshot.sentence.warnings
    dtype = _config_dtype(snapshot.config)
    quantization = read_quantization(snapshot.config, warnings)
    vision, vision_warnings = read_vision_tower(snapshot.config)
    warnings += vision_warnings
    layout = None
    if tensors:
        parameters = count_parameters(tensors, architecture, quantization)
        weights_bytes = sum(t.nbytes * t.count for t in tensors)
        dtype = dtype or _dominant_dtype(parameters.by_dtype)
        unknown = sorted(name for name in parameters.by_dtype if dtypes.bits(name) is None)
        if unknown:
            warnings.append(f"unknown dtype(s) {', '.join(unknown)}: sizes taken from the headers' data_offsets")
    else:
        layout = config_layout(architecture, snapshot.config)
        parameters, weights_bytes = _parameters_from_config(snapshot, layout, dtype)
        warnings.append(_no_safetensors_warning(snapshot))
    if snapshot.adapter is not None and isinstance(snapshot.adapter.target_modules, str):
        warnings.append(f"the adapter's target_modules is a regex ({one_line(snapshot.adapter.target_modules)[:60]}): "
                        "the LoRA estimate adapts the attention projections unless --lora-targets is given")
    # a vision tower's tensors are the ones count_parameters found (a pass over every name spared when it found none)
    vision_bytes = sum(t.nbytes * t.count for t in tensors if is_vision_tensor(t.name)) if parameters.vision else 0
    files = Files(
        weights_bytes=weights_bytes,
        download_bytes=snapshot.download_bytes,
        formats=snapshot.formats,
        count=len(snapshot.files),
        vision_bytes=vision_bytes or None,
    )
    return ModelSpec(
        **_identity(snapshot),
        architecture=architecture,
        dtype=dtype,
        quantization=quantization,
        parameters=parameters,
        files=files,
        tensors=tensors,
        warnings=tuple(warnings),
        adapter=snapshot.adapter,
        vision=vision,
        layout=layout,
        sentence=snapshot.sentence,
    )


def _identity(snapshot: Snapshot) -> dict[str, Any]:
    """The fields a spec takes from the snapshot as they are."""
    return {"model": snapshot.model, "revision": snapshot.revision, "commit": snapshot.commit,
            "source": snapshot.source, "access": snapshot.access}  # fmt: skip


def _gguf_spec(snapshot: Snapshot, repo: GgufRepo) -> ModelSpec:
    """A GGUF variant: exact parameters per ggml type and bytes from its headers, the architecture from its
    metadata; the download is the variant's files (what llama.cpp's -hf fetches), not the whole repo."""
    model = repo.model
    tensors = tuple(_torch_tensor(t) for t in model.tensors)
    architecture = _gguf_architecture(repo.architecture, tied=not any(t.name == "output.weight" for t in model.tensors))
    parameters = count_parameters(tensors, architecture, None)
    bits = model.bits_per_weight
    return ModelSpec(
        **_identity(snapshot),
        architecture=architecture,
        dtype=max(model.parameters_by_type, key=model.parameters_by_type.__getitem__, default=None),
        quantization=Quantization("gguf", round(bits, 2) if bits else None),
        parameters=parameters,
        files=Files(model.tensor_bytes, repo.chosen.size, snapshot.formats, len(snapshot.files)),
        tensors=tensors,
        warnings=snapshot.warnings,
        gguf=repo,
    )


def _pipeline_spec(snapshot: Snapshot, pipeline: Pipeline) -> ModelSpec:
    """A Diffusers pipeline: every component's tensors (named under its folder) from the chosen variant's headers.
    The architecture names the pipeline and its denoiser only (no transformer dims: hfmem.diffusion models its
    memory); the download is what from_pretrained fetches: the chosen weight files and every file that is not
    weights."""
    tensors = tuple(t for c in pipeline.components for t in pipeline.tensors(c))
    denoiser = pipeline.denoiser
    architecture = Architecture(
        model_type=pipeline.class_name, architectures=(denoiser.class_name,) if denoiser else (), hidden_size=None,
        num_hidden_layers=None, num_attention_heads=None, num_key_value_heads=None, head_dim=None,
        intermediate_size=None, vocab_size=None, max_position_embeddings=None, tie_word_embeddings=False,
        is_encoder_only=True,
    )  # fmt: skip
    parameters = count_parameters(tensors, architecture, None)
    chosen = {f for c in pipeline.components for f in pipeline.files(c)}
    sizes = [f.size for f in snapshot.files if f.path in chosen or f.format is None]
    download = sum(size for size in sizes if size is not None) if None not in sizes else None
    files = Files(sum(t.nbytes * t.count for t in tensors), download, snapshot.formats, len(snapshot.files))
    return ModelSpec(
        **_identity(snapshot),
        architecture=architecture,
        dtype=_dominant_dtype(parameters.by_dtype),
        quantization=None,
        parameters=parameters,
        files=files,
        tensors=tensors,
        warnings=snapshot.warnings + pipeline.warnings,
        pipeline=pipeline,
    )


def _public_spec(snapshot: Snapshot, public: PublicInfo) -> ModelSpec:
    """A gated repo without access: what the Hub's public metadata proves. Parameters per dtype are the Hub's own
    count of the safetensors headers (model_info's `safetensors`), and the weight bytes follow from them when every
    dtype's width is known; the architecture is config.json's model_type and architectures as model_info summarises
    them, nothing more. What is not known is None: the total without counts, the embedding, the weight bytes."""
    by_dtype = dict(sorted(public.parameters.items()))
    widths = [dtypes.bits(dtype) for dtype in by_dtype]
    weights = sum(dtypes.nbytes(d, n) for d, n in by_dtype.items()) if by_dtype and None not in widths else None
    architecture = replace(read_architecture({})[0], model_type=public.model_type,
                           architectures=public.architectures)  # fmt: skip
    warnings = list(snapshot.warnings)
    if not by_dtype:
        warnings.append("the Hub's public metadata gives no parameter counts for this repo")
    return ModelSpec(
        **_identity(snapshot),
        architecture=architecture,
        dtype=_dominant_dtype(by_dtype),
        quantization=None,
        parameters=Parameters(sum(by_dtype.values()) if by_dtype else None,  # type: ignore[arg-type]
                              by_dtype, None, None, exact=False),  # type: ignore[arg-type]
        files=Files(weights, snapshot.download_bytes, snapshot.formats, len(snapshot.files)),  # type: ignore[arg-type]
        tensors=(),
        warnings=tuple(warnings),
        adapter=snapshot.adapter,
    )


def _torch_tensor(t: GgufTensor) -> Tensor:
    """A GGUF tensor as a header Tensor: transformers' name, PyTorch's dimension order, a stacked expert tensor
    (blk.N.ffn_*_exps, experts outermost) as `count` experts; the dtype is the ggml type name."""
    shape = tuple(reversed(t.shape))
    name = torch_name(t.name)
    if ".experts.*." in name and len(shape) == 3:
        return Tensor(name, t.ggml_type, shape[1:], t.nbytes // shape[0], shape[0])
    return Tensor(name, t.ggml_type, shape, t.nbytes)


def _gguf_architecture(a: GgufArchitecture, tied: bool) -> Architecture:
    heads, kv_heads = max(a.head_count, default=0) or None, max(a.head_count_kv, default=0) or None
    attention = None
    if a.kv_lora_rank:
        attention = "mla"
    elif heads and kv_heads:
        attention = "mha" if kv_heads == heads else "mqa" if kv_heads == 1 else "gqa"
    return Architecture(
        model_type=a.architecture,
        architectures=(),
        hidden_size=a.embedding_length,
        num_hidden_layers=a.block_count,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=a.key_length,
        intermediate_size=max(a.feed_forward_length) if a.feed_forward_length else None,
        vocab_size=a.vocab_size,
        max_position_embeddings=a.context_length,
        tie_word_embeddings=tied,
        num_experts=a.expert_count,
        num_experts_per_tok=a.expert_used_count,
        attention=attention,
        layer_types=tuple("sliding_attention" if s else "full_attention" for s in a.sliding_layers)
        if a.sliding_layers
        else None,
        sliding_window=a.sliding_window,
        kv_lora_rank=a.kv_lora_rank,
    )


def count_parameters(tensors: tuple[Tensor, ...], arch: Architecture, quant: Quantization | None) -> Parameters:
    """Exact counts; embedding and MoE figures are in logical parameters (the same as stored unless quantized)."""
    by_dtype: dict[str, int] = {}
    logical = embedding = experts = vision = 0
    for t in tensors:
        by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + t.numel * t.count
        numel = (t.numel if quant is None else logical_numel(t, quant)) * t.count
        logical += numel
        if is_vision_tensor(t.name):
            vision += numel
        if is_embedding(t.name):
            embedding += numel
        elif is_expert(t.name):
            experts += numel
    total = sum(by_dtype.values())
    active = None
    if arch.num_experts and arch.num_experts_per_tok:
        active = logical - experts + experts * arch.num_experts_per_tok // arch.num_experts
    return Parameters(
        total, dict(sorted(by_dtype.items())), embedding, active, logical=logical if logical != total else None,
        vision=vision or None,
    )


def config_parameters(arch: Architecture, config: Any = None) -> tuple[int, int]:
    """(total, embedding) parameters of the model transformers would build from config.json: sums over
    layouts.config_layout, counted as count_parameters counts a checkpoint's headers."""
    return layout_parameters(config_layout(arch, config))


def layout_parameters(layout: Layout) -> tuple[int, int]:
    total = embedding = 0
    groups = [(layout.single, 1)] + [(template, len(prefixes)) for template, prefixes in layout.layers]
    for entries, repeat in groups:
        for name, shape, count in entries:
            numel = math.prod(shape) * count * repeat
            total += numel
            embedding += numel if is_embedding(name) else 0
    return total, embedding


def _parameters_from_config(
    snapshot: Snapshot, layout: Layout, dtype: str | None
) -> tuple[Parameters, int]:
    total, embedding = layout_parameters(layout)
    st_dtype = dtypes.TORCH_TO_SAFETENSORS.get(dtype or "float32", "F32")
    pickle_bytes = [f.size for f in snapshot.files if f.format in PICKLE_FORMATS]
    if pickle_bytes and None not in pickle_bytes:
        weights_bytes = sum(pickle_bytes)  # type: ignore[arg-type]  # pickle overhead is negligible
    else:
        weights_bytes = dtypes.nbytes(st_dtype, total)
    vision = sum(math.prod(shape) * count for name, shape, count in layout.entries() if is_vision_tensor(name))
    return Parameters(total, {st_dtype: total}, embedding, None, exact=False, vision=vision or None), weights_bytes


def _no_safetensors_warning(snapshot: Snapshot) -> str:
    if PICKLE_FORMATS & set(snapshot.formats):
        return (
            "no safetensors weights, only pickle files (.bin/.pt): parameter counts are derived from config.json "
            "(approximate); hfmem never downloads or unpickles them"
        )
    return "no safetensors weights: parameter counts are derived from config.json (approximate)"


def _text_config(config: dict) -> dict:
    """A multimodal config's text_config, when it is an object."""
    text = config.get("text_config")
    return text if isinstance(text, dict) else {}


def _config_dtype(config: dict) -> str | None:
    for source in (config, _text_config(config)):
        value = source.get("torch_dtype") or source.get("dtype")
        if isinstance(value, str) and value != "auto":
            return value.removeprefix("torch.")
    return None


def _dominant_dtype(by_dtype: dict[str, int]) -> str | None:
    if not by_dtype:
        return None
    name = max(by_dtype, key=by_dtype.__getitem__)
    return dtypes.SAFETENSORS_TO_TORCH.get(name, name)


def read_quantization(config: dict, warnings: list[str] | None = None) -> Quantization | None:
    """quantization_config (top level, or under text_config for multimodal models) -> method and bits. A bit
    width is a config number like any other (config.checked_int); what is off about it goes to `warnings`."""
    qc = config.get("quantization_config") or _text_config(config).get("quantization_config")
    if not isinstance(qc, dict):
        return None
    method = qc.get("quant_method")
    if not isinstance(method, str) or not method:
        method = "bitsandbytes" if "load_in_4bit" in qc else "unknown"
    key = "bits" if qc.get("bits") is not None else "w_bit"
    bits = checked_int("bits", f"quantization_config.{key}", qc.get(key), [] if warnings is None else warnings)
    if bits is None:
        if qc.get("load_in_4bit"):
            bits = 4
        elif qc.get("load_in_8bit") or method == "fp8":
            bits = 8
        elif method == "mxfp4":
            bits = 4
    return Quantization(method, float(bits) if bits is not None else None)
