"""config.json -> the tensors transformers would create for the model (names and shapes): hfmem's one
config->parameters model.

A repo without safetensors headers gets its parameter count (spec.py) and the linear layers the memory model
reads (memory/facts.py) from this list, so the two cannot disagree. Shapes follow each family's modelling code
in transformers; names follow its module layout closely enough for the memory model (LoRA leaf names, experts
under `.experts.*` with a count, embeddings under EMBEDDING_MODULES names). A family is one `_Family` entry in
config.py; its layer builder here is chosen by the entry's fields (stack, mixer, layers), not by its name.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .architecture import STATE_KINDS, Architecture
from .config import _Family, _has_lm_head, _Reader, _reader
from .errors import UnsupportedModel
from .header import Tensor
from .vision import LLAVA_TOWER, TOWER_DEFAULTS

Entry = tuple[str, tuple[int, ...], int]  # name, shape, count


@dataclass
class Layout:
    """A model's tensors: `single` entries, and per distinct layer a template (names relative to the layer) with
    the prefixes of the layers built like it (10,000 identical layers are one template)."""

    single: list[Entry]
    layers: list[tuple[list[Entry], list[str]]]

    def tensors(self, dtype: str) -> tuple[Tensor, ...]:
        return tuple(Tensor(name, dtype, shape, count=count) for name, shape, count in self.entries())

    def entries(self) -> list[Entry]:
        out = list(self.single)
        for template, prefixes in self.layers:
            out += [(prefix + name, shape, count) for prefix in prefixes for name, shape, count in template]
        return out


@dataclass
class _Tensors:
    """Collects (name, shape, count) entries; zero-sized ones (a switched-off feature) are dropped."""

    out: list[Entry] = field(default_factory=list)
    layers: dict[object, tuple[list[Entry], list[str]]] = field(default_factory=dict)

    def add(self, name: str, *shape: int, count: int = 1) -> None:
        if min(shape) > 0:
            self.out.append((name, shape, count))

    def linear(self, name: str, out: int, inp: int, bias: bool = False, count: int = 1) -> None:
        self.add(f"{name}.weight", out, inp, count=count)
        if bias:
            self.add(f"{name}.bias", out, count=count)

    def norm(self, name: str, width: int, bias: bool = False) -> None:
        self.add(f"{name}.weight", width)
        if bias:
            self.add(f"{name}.bias", width)


def config_layout(arch: Architecture, config: Any = None) -> Layout:
    """Every parameter tensor (name, shape, count) of the model class transformers would build from `config` (a decoded config.json;
    `arch` is read_architecture's reading of it). Without `config` a Llama layout is assumed. CLIP/SigLIP vision
    towers are built LLaVA-style (exact for LLaVA-1.5). Raises UnsupportedModel when a needed dimension is
    missing."""
    cfg: Mapping[str, Any] = config if isinstance(config, Mapping) else {}
    r, _ = _reader(cfg, [])
    family = r.family
    needed = ["hidden_size", "num_hidden_layers", "vocab_size"]
    if family.layers != "all":
        needed += ["num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size"]
    missing = [name for name in needed if not getattr(arch, name)]
    if missing:
        raise UnsupportedModel(f"config.json lacks {', '.join(missing)}: cannot derive a parameter count")
    t = _Tensors()
    if family.stack == "t5":
        _t5(t, arch, r)
    elif family.layers == "zamba2":
        _zamba2(t, arch, r)
    elif family.stack == "bert":
        _bert(t, arch, r)
    else:
        _decoder(t, arch, r)
    if _has_lm_head(arch.architectures, arch.is_encoder_only) and not arch.tie_word_embeddings:
        t.linear("lm_head", arch.vocab_size or 0, arch.hidden_size or 0, bias=family.lm_head_bias)
    _vision(t, cfg, arch.hidden_size or 0)
    return Layout(t.out, list(t.layers.values()))


# --- decoder stacks (and their recurrent layers) ---


def _decoder(t: _Tensors, arch: Architecture, r: _Reader) -> None:
    h, vocab, family = arch.hidden_size or 0, arch.vocab_size or 0, r.family
    ssm_only = family.layers == "all"
    base = "backbone" if ssm_only else "model"
    t.add(f"{base}.{'embeddings' if ssm_only else 'embed_tokens'}.weight", vocab, h)
    if family.position_table:
        t.add(f"{base}.embed_positions.weight", arch.max_position_embeddings or 0, h)
    kinds = arch.layer_types or ("full_attention",) * (arch.num_hidden_layers or 0)
    moe = _moe_layers(arch, r)
    for i, kind in enumerate(kinds):
        key = (kind, i in moe)
        if key not in t.layers:  # names relative to the layer: ".self_attn.q_proj.weight"
            layer = _Tensors()
            _layer(layer, kind, i in moe, arch, r)
            t.layers[key] = (layer.out, [])
        t.layers[key][1].append(f"{base}.layers.{i}")
    t.norm(f"{base}.{'norm_f' if ssm_only else 'norm'}", h, family.norm_bias)


def _zamba2(t: _Tensors, arch: Architecture, r: _Reader) -> None:
    """Zamba2Model (transformers modeling_zamba2.py): every layer a Zamba2MambaDecoderLayer (mixer, input norm); a
    hybrid layer adds its own hidden x hidden `linear` and runs shared transformer block j % num_mem_blocks (j: its
    rank among the hybrid layers). A block is one set of weights, counted once, stored under the first hybrid layer
    that uses it: attention over [hidden, embeddings] (2 x hidden wide), its norm, pre_ff norm and the gated MLP
    (gate_up_proj, down_proj). Each use j owns a rank-`adapter_rank` adapter pair in its block: always on
    gate_up_proj (Zamba2MLP), on q/k/v too with use_shared_attention_adapter (Zamba2Attention). Only blocks some
    hybrid layer uses are modules of the model (the rest of Zamba2Model's `blocks` list is dropped)."""
    h, vocab, inner = arch.hidden_size or 0, arch.vocab_size or 0, arch.intermediate_size or 0
    kinds = arch.layer_types or ("recurrent",) * (arch.num_hidden_layers or 0)
    t.add("model.embed_tokens.weight", vocab, h)
    for i, kind in enumerate(kinds):
        key = ("zamba2", kind)
        if key not in t.layers:
            layer, p = _Tensors(), ".mamba_decoder" if kind == "hybrid" else ""
            _mixer(layer, f"{p}.mamba", arch, r)
            layer.norm(f"{p}.input_layernorm", h)
            if kind == "hybrid":
                layer.linear(".linear", h, h)
            t.layers[key] = (layer.out, [])
        t.layers[key][1].append(f"model.layers.{i}")
    hybrid = [i for i, kind in enumerate(kinds) if kind == "hybrid"]
    blocks, rank = r.int("num_mem_blocks") or 1, r.int("adapter_rank") or 0
    bias, qkv_adapters = r.flag("add_bias_linear"), r.flag("use_shared_attention_adapter")
    wide, d = 2 * h, arch.head_dim or 0
    q_width, kv_width = (arch.num_attention_heads or 0) * d, (arch.num_key_value_heads or 0) * d
    for k in range(min(blocks, len(hybrid))):
        p = f"model.layers.{hybrid[k]}.shared_transformer"
        t.linear(f"{p}.self_attn.q_proj", q_width, wide)
        t.linear(f"{p}.self_attn.k_proj", kv_width, wide)
        t.linear(f"{p}.self_attn.v_proj", kv_width, wide)
        t.linear(f"{p}.self_attn.o_proj", h, q_width)
        t.norm(f"{p}.input_layernorm", wide)
        t.norm(f"{p}.pre_ff_layernorm", h)
        t.linear(f"{p}.feed_forward.gate_up_proj", 2 * inner, h, bias)
        t.linear(f"{p}.feed_forward.down_proj", h, inner, bias)
        for j in range(k, len(hybrid), blocks):  # the uses of block k
            t.linear(f"{p}.feed_forward.gate_up_proj_adapter_list.{j}.0", rank, h)
            t.linear(f"{p}.feed_forward.gate_up_proj_adapter_list.{j}.1", 2 * inner, rank)
            for name in ("q", "k", "v") if qkv_adapters else ():
                t.linear(f"{p}.self_attn.linear_{name}_adapter_list.{j}.0", rank, wide)
                t.linear(f"{p}.self_attn.linear_{name}_adapter_list.{j}.1", wide, rank)
    t.norm("model.final_layernorm", h)


def _layer(t: _Tensors, kind: str, moe: bool, arch: Architecture, r: _Reader) -> None:
    h, family = arch.hidden_size or 0, r.family
    if family.layers == "all":  # Mamba/Mamba2 blocks: one norm and the mixer, no MLP
        t.norm(".norm", h)
        _mixer(t, ".mixer", arch, r)
        return
    if kind in STATE_KINDS and arch.recurrent is not None:
        _mixer(t, ".mamba", arch, r)
    if kind != "recurrent":
        _attention(t, ".self_attn", arch, r)
    for n in range(family.layer_norms):
        t.norm(f".norm_{n}", h, family.norm_bias)
    _feed_forward(t, ".mlp", moe, arch, r)


def _attention(t: _Tensors, p: str, arch: Architecture, r: _Reader) -> None:
    h, heads, family = arch.hidden_size or 0, arch.num_attention_heads or 0, r.family
    qkv_bias, o_bias = r.flag(family.qkv_bias), r.flag(family.o_bias)
    if arch.attention == "mla":
        nope, rope, v = arch.qk_nope_head_dim or 0, arch.qk_rope_head_dim or 0, arch.v_head_dim or 0
        kv_rank, q_rank = arch.kv_lora_rank or 0, arch.q_lora_rank
        if q_rank is None:
            t.linear(f"{p}.q_proj", heads * (nope + rope), h)
        else:  # low-rank down (+ bias), RMSNorm, up
            t.linear(f"{p}.q_a_proj", q_rank, h, qkv_bias)
            t.norm(f"{p}.q_a_layernorm", q_rank)
            t.linear(f"{p}.q_b_proj", heads * (nope + rope), q_rank)
        # joint down-projection to the latent + shared rope key (+ bias), RMSNorm, up to per-head k_nope and v
        t.linear(f"{p}.kv_a_proj_with_mqa", kv_rank + rope, h, qkv_bias)
        t.norm(f"{p}.kv_a_layernorm", kv_rank)
        t.linear(f"{p}.kv_b_proj", heads * (nope + v), kv_rank)
        t.linear(f"{p}.o_proj", h, heads * v, o_bias)
        return
    d = arch.head_dim or 0
    q_width, kv_width = heads * d, (arch.num_key_value_heads or 0) * d
    t.linear(f"{p}.q_proj", q_width * (2 if family.attention_gate else 1), h, qkv_bias)
    t.linear(f"{p}.k_proj", kv_width, h, qkv_bias)
    t.linear(f"{p}.v_proj", kv_width, h, qkv_bias)
    t.linear(f"{p}.o_proj", h, q_width, o_bias)
    if family.qk_norm and (family.qk_norm_flag is None or r.flag(family.qk_norm_flag)):
        per_head = family.qk_norm == "head"
        t.norm(f"{p}.q_norm", d if per_head else q_width, family.norm_bias)
        t.norm(f"{p}.k_norm", d if per_head else kv_width, family.norm_bias)
    if family.attention_sinks:
        t.add(f"{p}.sinks", heads)


def _moe_layers(arch: Architecture, r: _Reader) -> set[int]:
    """Layers holding routed experts: Qwen-MoE (decoder_sparse_step, mlp_only_layers), DeepSeek
    (first_k_dense_replace, moe_layer_freq) and Jamba (expert_layer_period/offset) rules."""
    if not arch.num_experts:
        return set()
    layers = range(arch.num_hidden_layers or 0)
    if r.raw("expert_layer_period") is not None:
        period, offset = r.int("expert_layer_period") or 1, r.int("expert_layer_offset") or 0
        return {i for i in layers if i % period == offset}
    dense = r.raw("mlp_only_layers")
    dense = {i for i in dense if isinstance(i, int)} if isinstance(dense, list) else set()
    first, freq = r.int("first_k_dense_replace") or 0, r.int("moe_layer_freq") or 1
    step = r.int("decoder_sparse_step") or 1
    return {i for i in layers if i >= first and i % freq == 0 and (i + 1) % step == 0 and i not in dense}


def _mlp(t: _Tensors, p: str, h: int, inner: int, gated: bool, bias: bool, count: int = 1) -> None:
    if gated:
        t.linear(f"{p}.gate_proj", inner, h, bias, count)
    t.linear(f"{p}.up_proj", inner, h, bias, count)
    t.linear(f"{p}.down_proj", h, inner, bias, count)


def _feed_forward(t: _Tensors, p: str, moe: bool, arch: Architecture, r: _Reader) -> None:
    """One layer's MLP: dense, or routed experts (+ router and shared experts)."""
    h, inner, family = arch.hidden_size or 0, arch.intermediate_size or 0, r.family
    bias, gated = r.flag(family.mlp_bias), arch.gated_mlp
    shared = r.int("shared_intermediate_size") if family.layers == "layer_types" and family.mixer == "mamba2" else None
    if shared is not None:  # GraniteMoeHybrid: a shared MLP in every layer, beside the experts when there are any
        _mlp(t, f"{p}.shared_mlp", h, shared, gated, bias)
        if not arch.num_experts:
            return
        moe = True
    if not moe:
        _mlp(t, p, h, inner, gated, bias)
        return
    experts = arch.num_experts or 0
    t.linear(f"{p}.{family.bare_router or 'gate'}", experts, h, family.router_bias)
    expert_inner = arch.moe_intermediate_size or inner
    if family.fused_experts:  # GptOssExperts: (experts, hidden, 2 x inner) and (experts, inner, hidden) + biases
        t.add(f"{p}.experts.gate_up_proj", experts, h, 2 * expert_inner)
        t.add(f"{p}.experts.gate_up_proj_bias", experts, 2 * expert_inner if bias else 0)
        t.add(f"{p}.experts.down_proj", experts, expert_inner, h)
        t.add(f"{p}.experts.down_proj_bias", experts, h if bias else 0)
    else:
        _mlp(t, f"{p}.experts.*", h, expert_inner, gated, bias, count=experts)
    if shared is not None:
        return
    shared_inner = r.int("shared_expert_intermediate_size") or (arch.num_shared_experts or 0) * expert_inner
    if shared_inner:
        _mlp(t, f"{p}.shared_experts", h, shared_inner, gated, bias)
        if family.shared_expert_gate:
            t.linear(f"{p}.shared_expert_gate", 1, h)


def _mixer(t: _Tensors, p: str, arch: Architecture, r: _Reader) -> None:
    """A recurrent layer's mixer, as its transformers module declares its parameters."""
    rec, h, family = arch.recurrent, arch.hidden_size or 0, r.family
    if rec is None:
        return
    if rec.mixer == "short_conv":  # Lfm2ShortConv
        bias = r.flag("conv_bias")
        t.linear(f"{p}.in_proj", 3 * h, h, bias)
        t.add(f"{p}.conv.weight", h, 1, rec.conv_width)  # depthwise nn.Conv1d
        t.add(f"{p}.conv.bias", h if bias else 0)
        t.linear(f"{p}.out_proj", h, h, bias)
        return
    if rec.mixer == "gated_deltanet":  # Qwen3NextGatedDeltaNet
        v_heads, _, d_v = rec.state_shape
        value_dim = v_heads * d_v
        key_dim = (rec.conv_channels - value_dim) // 2
        t.linear(f"{p}.in_proj_qkvz", 2 * key_dim + 2 * value_dim, h)
        t.linear(f"{p}.in_proj_ba", 2 * v_heads, h)
        t.add(f"{p}.conv1d.weight", rec.conv_channels, 1, rec.conv_width)
        t.add(f"{p}.dt_bias", v_heads)
        t.add(f"{p}.A_log", v_heads)
        t.norm(f"{p}.norm", d_v)
        t.linear(f"{p}.out_proj", h, value_dim)
        return
    prefixed = family.prefix == "mamba_"
    proj_bias = r.flag("mamba_proj_bias" if prefixed else ("add_bias_linear" if family.layers == "zamba2"
                                                             else "use_bias"))  # fmt: skip
    # Zamba2MambaMixer builds conv1d with bias=True whatever use_conv_bias says
    conv_bias = family.layers == "zamba2" or r.flag("mamba_conv_bias" if prefixed else "use_conv_bias")
    out_bias = r.flag("projectors_bias") if family.layers == "parallel" else proj_bias
    if rec.mixer == "mamba":  # MambaMixer; Jamba adds RMSNorms on dt, B and C
        inner, state = rec.state_shape
        dt_rank = r.raw("mamba_dt_rank" if prefixed else "time_step_rank")
        dt_rank = math.ceil(h / 16) if dt_rank == "auto" or dt_rank is None else r.int(
            "mamba_dt_rank" if prefixed else "time_step_rank") or 0  # fmt: skip
        t.linear(f"{p}.in_proj", 2 * inner, h, proj_bias)
        t.add(f"{p}.conv1d.weight", inner, 1, rec.conv_width)
        t.add(f"{p}.conv1d.bias", inner if conv_bias else 0)
        t.linear(f"{p}.x_proj", dt_rank + 2 * state, inner)
        t.linear(f"{p}.dt_proj", inner, dt_rank, bias=True)
        t.add(f"{p}.A_log", inner, state)
        t.add(f"{p}.D", inner)
        t.linear(f"{p}.out_proj", h, inner, out_bias)
        if prefixed:
            t.norm(f"{p}.dt_layernorm", dt_rank)
            t.norm(f"{p}.b_layernorm", state)
            t.norm(f"{p}.c_layernorm", state)
        return
    heads, _, state = rec.state_shape  # mamba2: Mamba2Mixer and the hybrids' copies of it
    inner = rec.conv_channels - 2 * _groups(r) * state
    t.linear(f"{p}.in_proj", inner + rec.conv_channels + heads, h, proj_bias)
    t.add(f"{p}.conv1d.weight", rec.conv_channels, 1, rec.conv_width)
    t.add(f"{p}.conv1d.bias", rec.conv_channels if conv_bias else 0)
    t.add(f"{p}.dt_bias", heads)
    t.add(f"{p}.A_log", heads)
    t.add(f"{p}.D", heads)
    if family.layers != "parallel" or r.flag("mamba_rms_norm"):
        t.norm(f"{p}.norm", inner)
    t.linear(f"{p}.out_proj", h, inner, out_bias)


def _groups(r: _Reader) -> int:
    family = r.family
    if family.layers == "zamba2":
        return r.int("mamba_ngroups") or 0
    return r.int("mamba_n_groups" if family.prefix == "mamba_" else "n_groups") or 0


# --- encoder stacks ---


def _bert(t: _Tensors, arch: Architecture, r: _Reader) -> None:
    """BERT-style encoders: embeddings (+ token types, LayerNorm), layers, pooler and the MLM/NSP heads."""
    h, vocab, family = arch.hidden_size or 0, arch.vocab_size or 0, r.family
    inner = arch.intermediate_size or 0
    t.add("bert.embeddings.word_embeddings.weight", vocab, h)
    t.add("bert.embeddings.position_embeddings.weight", arch.max_position_embeddings or 0, h)
    t.add("bert.embeddings.token_type_embeddings.weight", r.int("type_vocab_size") or 0, h)
    t.norm("bert.embeddings.LayerNorm", h, family.norm_bias)
    for i in range(arch.num_hidden_layers or 0):
        p = f"bert.encoder.layer.{i}"
        _attention(t, f"{p}.attention.self", arch, r)
        t.norm(f"{p}.attention.output.LayerNorm", h, family.norm_bias)
        _mlp(t, f"{p}.mlp", h, inner, arch.gated_mlp, r.flag(family.mlp_bias))
        t.norm(f"{p}.output.LayerNorm", h, family.norm_bias)
    names = " ".join(arch.architectures)
    if "ForMaskedLM" not in names:
        t.linear("bert.pooler.dense", h, h, bias=True)
    if "ForMaskedLM" in names or "ForPreTraining" in names:
        t.linear("cls.predictions.transform.dense", h, h, bias=True)
        t.norm("cls.predictions.transform.LayerNorm", h, family.norm_bias)
        t.add("cls.predictions.bias", vocab)  # the decoder weight is tied to the word embeddings
    if "ForPreTraining" in names:
        t.linear("cls.seq_relationship", 2, h, bias=True)


def _t5(t: _Tensors, arch: Architecture, r: _Reader) -> None:
    """T5: shared embedding; encoder (self-attention + FF) and decoder (self + cross-attention + FF); RMS norms;
    a relative-position bias in the first layer of each stack."""
    h, heads, d = arch.hidden_size or 0, arch.num_attention_heads or 0, arch.head_dim or 0
    inner, buckets = arch.intermediate_size or 0, r.int("relative_attention_num_buckets") or 0
    t.add("shared.weight", arch.vocab_size or 0, h)
    for stack, layers in (("encoder", arch.num_hidden_layers or 0), ("decoder", arch.num_decoder_layers or 0)):
        blocks = ("SelfAttention",) if stack == "encoder" else ("SelfAttention", "EncDecAttention")
        for i in range(layers):
            p = f"{stack}.block.{i}.layer"
            for n, block in enumerate(blocks):
                for proj in ("q", "k", "v"):
                    t.linear(f"{p}.{n}.{block}.{proj}", heads * d, h)
                t.linear(f"{p}.{n}.{block}.o", h, heads * d)
                t.norm(f"{p}.{n}.layer_norm", h)
            if i == 0:
                t.add(f"{p}.0.SelfAttention.relative_attention_bias.weight", buckets, heads)
            ff = f"{p}.{len(blocks)}.DenseReluDense"
            for wi in ("wi_0", "wi_1") if arch.gated_mlp else ("wi",):
                t.linear(f"{ff}.{wi}", inner, h)
            t.linear(f"{ff}.wo", h, inner)
            t.norm(f"{p}.{len(blocks)}.layer_norm", h)
        t.norm(f"{stack}.final_layer_norm", h)


# --- vision towers (class defaults: hfmem.vision's) ---


def _vision(t: _Tensors, config: Mapping[str, Any], text_hidden: int) -> None:
    """CLIP/SigLIP vision tower plus a LLaVA two-layer projector (other towers are not modelled: the list then
    covers the language model only)."""
    vision = config.get("vision_config")
    if vision is None and isinstance(config.get("model_type"), str) and config["model_type"].startswith("llava"):
        vision = LLAVA_TOWER
    if not isinstance(vision, Mapping):
        return
    kind = vision.get("model_type", "clip_vision_model")
    if not isinstance(kind, str) or kind not in TOWER_DEFAULTS:
        return
    defaults = TOWER_DEFAULTS[kind]
    r = _Reader(vision, _Family(defaults=defaults), [], "vision_config.")
    v = {name: r.int(name) or default for name, default in defaults.items()}  # a value not an integer: the default
    h, inner, patch, clip = v["hidden_size"], v["intermediate_size"], v["patch_size"], kind == "clip_vision_model"
    positions = (v["image_size"] // patch) ** 2 + (1 if clip else 0)  # CLIP adds a class token
    p = "vision_tower.vision_model"
    t.add(f"{p}.embeddings.patch_embedding.weight", h, v["num_channels"], patch, patch)
    t.add(f"{p}.embeddings.{'class_embedding' if clip else 'patch_embedding.bias'}", h)
    t.add(f"{p}.embeddings.position_embedding.weight", positions, h)
    if clip:
        t.norm(f"{p}.pre_layrnorm", h, bias=True)
    for i in range(v["num_hidden_layers"]):
        layer = f"{p}.encoder.layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t.linear(f"{layer}.self_attn.{proj}", h, h, bias=True)
        t.norm(f"{layer}.layer_norm1", h, bias=True)
        t.norm(f"{layer}.layer_norm2", h, bias=True)
        t.linear(f"{layer}.mlp.fc1", inner, h, bias=True)
        t.linear(f"{layer}.mlp.fc2", h, inner, bias=True)
    t.norm(f"{p}.post_layernorm", h, bias=True)
    feature_layers = config.get("vision_feature_layer", -2)
    width = h * (len(feature_layers) if isinstance(feature_layers, list) else 1)
    bias = bool(config.get("multimodal_projector_bias", True))
    t.linear("multi_modal_projector.linear_1", text_hidden, width, bias)
    t.linear("multi_modal_projector.linear_2", text_hidden, text_hidden, bias)
