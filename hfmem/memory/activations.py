"""Activation memory: what one HF decoder layer saves for backward, the prefill peak, and the logits/loss terms.

Training follows Korthikanti et al. 2022 (arXiv 2205.05198, Table 2) adapted to Hugging Face stacks as
memory-model.md B §1.8 lists: memory-efficient SDPA (no heads x seq^2), RMSNorm upcast to fp32, SwiGLU, GQA,
frozen-linear inputs not saved, PEFT's fp32 adapter-input copies; and the mechanisms of issue 14 as
transformers and torch's autograd run them: activations written as Python chains, dropout masks, eager scores,
padded batches, MoE routing, the loss's logits. Byte counts are per token of one layer; callers multiply by
batch x seq. Every count names the tensor autograd keeps (torch tools/autograd/derivatives.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass

from .facts import Dims

FP32 = 4
MASK = 1  # torch.bool: dropout masks (native_dropout) and SDPA's padded-batch mask
INDEX = 8  # int64 indices


@dataclass(frozen=True)
class Saved:
    """What one layer keeps per token (bytes), by part, so --explain can show it."""

    norms: int
    attention: int
    mlp: int
    masks: int  # dropout masks of the sublayer outputs and the MLP's activation
    per_sequence: int  # eager scores: bytes per token that grow with the keys' length (heads x kv x bytes)

    def per_token(self) -> int:
        return self.norms + self.attention + self.mlp + self.masks


def runs_eager(dims: Dims, attention: str) -> bool:
    """Whether attention materialises its scores: --attention eager, or a family that always does
    (facts.EAGER_ONLY_TYPES)."""
    return attention == "eager" or dims.eager_only


def expands_kv(dims: Dims, padded: bool, eager: bool) -> bool:
    """Whether attention sees K/V repeated to every query head. Eager attention always calls repeat_kv
    (models/llama/modeling_llama.py eager_attention_forward); SDPA does only when a mask is passed, i.e. for a
    padded batch: transformers' use_gqa_in_sdpa (integrations/sdpa_attention.py) enables native GQA when
    attention_mask is None, which masking_utils._ignore_causal_mask_sdpa makes it for unpadded batches."""
    return (padded or eager) and not dims.mla and dims.kv_heads < dims.heads


def attention_widths(dims: Dims, expanded: bool) -> tuple[int, int, int, int]:
    """Per-token widths of q, k, v as attention sees them, and of the attention output."""
    q = dims.heads * dims.qk_head_dim
    out = dims.heads * dims.v_head_dim
    if dims.mla:  # k = [k_nope per head, shared k_rope expanded], v per head (DeepSeek-V3 modelling)
        return q, q, out, out
    kv = dims.heads * dims.head_dim if expanded else dims.kv_heads * dims.head_dim
    return q, kv, kv, out


def activation_bytes(activation: str | None, c: int, autocast: bool) -> tuple[int, int]:
    """(bytes autograd saves per MLP element for the activation, bytes per element of its output).

    transformers' activations.py writes some activations as chains of Python operations; each saves what its
    derivative needs. gelu_new (GPT-2, phi-1, GPT-J, T5's gated-gelu):
    0.5 * x * (1.0 + tanh(sqrt(2/pi) * (x + 0.044715 * pow(x, 3.0)))). pow saves its input, tanh its result,
    the final product both factors (0.5 * x and 1 + tanh); products with a Python number and sums save nothing.
    Under autocast pow is an fp32 op (aten/src/ATen/autocast_mode.h AT_FORALL_FP32), so its input is an fp32 copy
    and everything after it is promoted to fp32 except 0.5 * x: 4 + 4 + c + 4 = 14 B for bf16, output fp32.
    Without autocast the four are in the input dtype: 4c. gelu_fast saves x, 0.044715x, x*0.798, 1 + 0.044715x^2,
    tanh, 0.5x and 1 + tanh (7c); quick_gelu x and sigmoid (2c). Native kernels (gelu, gelu_pytorch_tanh, silu,
    relu) save one tensor."""
    if activation == "gelu_new":
        if autocast and c < FP32:
            return 3 * FP32 + c, FP32
        return 4 * c, c
    if activation == "gelu_fast":
        return 7 * c, c
    if activation == "quick_gelu":
        return 2 * c, c
    return c, c


def activation_peak(activation: str | None) -> int:
    """MLP-width tensors alive at once while the activation runs without autograd (inference), its input and
    output included. Python evaluates `0.5 * x` first and frees each temporary once the next operation has read
    it: gelu_new holds x, 0.5x and two intermediates (4); gelu_fast x, 0.5x, x*0.798 and two (5); quick_gelu x,
    1.702x and its sigmoid (3); a native kernel its input and output (2)."""
    return {"gelu_new": 4, "gelu_fast": 5, "quick_gelu": 3}.get(activation or "", 2)


def eager_saved_bytes(c: int, dropout: bool) -> int:
    """Bytes one eager score element keeps for backward: softmax(dtype=float32) saves its fp32 result, and the
    probabilities matmul saves their compute-dtype copy (`.to(query.dtype)`; the dropout output instead, the same
    size, plus its bool mask, when attention dropout is on)."""
    return FP32 + (c if c < FP32 else 0) + (MASK if dropout else 0)


def eager_peak_bytes(c: int) -> int:
    """Bytes one eager score element holds at once: while `softmax(scores, dtype=float32).to(query.dtype)` runs,
    the compute-dtype scores, the fp32 softmax and its copy (8 B for bf16; an fp32 model has no copy)."""
    return c + FP32 + (c if c < FP32 else 0)


def layer_saved(
    dims: Dims,
    c: int,
    residual: int,
    *,
    kv_len: int,
    padded: bool,
    trainable: bool,
    eager: bool,
    autocast: bool,
) -> Saved:
    """Bytes one decoder layer saves for backward, per token. `c` is the compute dtype's size and `residual` the
    residual stream's (4 under autocast over an fp32 model); `trainable` says whether the block's weights get
    gradients (full fine-tuning) or are frozen (LoRA; adapters are added by the caller); `kv_len` is the length of
    the keys each query attends to (eager scores)."""
    h = dims.hidden
    norm = norm_saved(h, c, residual, trainable)
    q, k, v, out = attention_widths(dims, expands_kv(dims, padded, eager))
    attention = c * (q + k + v + out)  # q, k, v and the output, saved by SDPA
    attention += 0 if eager else FP32 * dims.heads  # logsumexp per head
    attention += c * out if trainable else 0  # o_proj input (the transposed contiguous copy)
    if dims.mla:  # latent norms (fp32 copies) and, when trainable, the up-projection inputs
        latent = dims.q_lora_rank + dims.kv_lora_rank
        attention += FP32 * latent + (2 * c * latent if trainable else 0)
    mlp = _mlp_saved(dims, c, trainable, moe=False, autocast=autocast)
    drop = dims.dropouts
    masks = MASK * (2 * h * drop.sublayer + dims.intermediate * drop.inner)
    per_sequence = dims.heads * kv_len * eager_saved_bytes(c, drop.probs) if eager else 0
    return Saved(norms=2 * norm, attention=attention, mlp=mlp, masks=masks, per_sequence=per_sequence)


def norm_saved(h: int, c: int, residual: int, trainable: bool) -> int:
    """A pre-norm saves its fp32 input copy (HF RMSNorm upcasts); with a trainable weight also the normalised
    input (residual dtype) for the weight gradient, and its output (compute dtype) because the following linears
    save their input."""
    return FP32 * h + ((residual + c) * h if trainable else 0)


def moe_mlp_saved(dims: Dims, c: int, trainable: bool, autocast: bool = False) -> int:
    return _mlp_saved(dims, c, trainable, moe=True, autocast=autocast)


def _mlp_saved(dims: Dims, c: int, trainable: bool, moe: bool, autocast: bool) -> int:
    """Gated MLP: what the activation saves, its output and up's output (saved by the product) and, when down_proj
    is trainable, the product. Non-gated: what the activation saves, and its output when trainable.

    MoE (models/mixtral/modeling_mixtral.py MixtralExperts / MixtralTopKRouter): per routed (token, expert) pair
    the expert MLP, the expert's output (saved by its product with the fp32 routing weight, which is saved too),
    the token and slot indices torch.where returns (int64, saved by the gather, the weight lookup and index_add_)
    and, when trainable, the gathered input; per token the router's fp32 softmax and top-k indices (int64); and
    the shared experts."""
    h = dims.hidden
    act = activation_bytes(dims.activation, c, autocast)
    if not moe:
        return _dense_mlp(dims.intermediate, dims.gated, c, trainable, act)
    k, inner = dims.experts_per_token, dims.expert_intermediate
    pair = _dense_mlp(inner, dims.gated, c, trainable, act) + c * h + 2 * INDEX + FP32 + (c * h if trainable else 0)
    shared = _dense_mlp(dims.shared_intermediate, dims.gated, c, trainable, act) if dims.shared_intermediate else 0
    return k * pair + shared + FP32 * dims.experts + INDEX * k


def _dense_mlp(inner: int, gated: bool, c: int, trainable: bool, act: tuple[int, int]) -> int:
    saved, out = act
    if gated:
        return inner * (saved + out + c + (c if trainable else 0))
    return inner * (saved + (c if trainable else 0))


def logits_training(c: int, keep_outputs: bool) -> tuple[int, int]:
    """Bytes per logit element (batch x seq x vocab) at the end of forward and at the start of backward.

    transformers' ForCausalLMLoss (loss/loss_utils.py) upcasts with logits.float() (a copy unless already fp32)
    and calls cross_entropy: log_softmax saves its fp32 result, nll_loss only the targets. Forward: the
    compute-dtype logits, the fp32 copy and the log-softmax (10 B for bf16). Backward start: nll_loss's dense fp32
    gradient, the saved log-softmax and log_softmax's fp32 input gradient (12 B). The compute-dtype logits are
    alive then only if the loop keeps the model output (outputs = model(...); loss = outputs.loss); with
    loss = model(...).loss (the Trainer's compute_loss) they are freed before backward."""
    copy = FP32 if c < FP32 else 0
    return c + copy + FP32, 3 * FP32 + (c if keep_outputs else 0)


def logits_inference(c: int, all_positions: bool) -> int:
    """Bytes per logit element at prefill. generate() takes an fp32 copy of the last position's logits
    (generation/utils.py: outputs.logits[:, -1].to(copy=True, dtype=torch.float32)); a plain forward over every
    position keeps the lm_head output in the compute dtype (no upcast outside the loss)."""
    return c if all_positions else c + FP32


def prefill_layer_peak(dims: Dims, c: int, *, kv_len: int, padded: bool, eager: bool) -> int:
    """Largest per-token working set of one layer at inference (nothing is kept for backward): the residual
    stream, the normalised input and the widest block's intermediates (the norm's fp32 temporaries, the
    attention's q/k/v (+ rotated copies) and output (+ eager scores at their peak), or the MLP's
    gate/up/product)."""
    h = dims.hidden
    base = 2 * c * h  # residual + normalised input
    norm = 2 * FP32 * h  # fp32 upcast and the fp32 normalised value inside RMSNorm
    q, k, v, out = attention_widths(dims, expands_kv(dims, padded, eager))
    attention = c * (2 * q + 2 * k + v + out)  # projections, rotated q/k, output
    attention += dims.heads * kv_len * eager_peak_bytes(c) if eager else 0
    if dims.moe_layers:
        inner = dims.experts_per_token * dims.expert_intermediate + dims.shared_intermediate
        mlp = c * (3 * inner + h) + FP32 * dims.experts  # expert intermediates, the combined output, router logits
    else:  # gated: gate, up and their product; or the activation's own temporaries, whichever is more
        mlp = c * dims.intermediate * max(3 if dims.gated else 2, activation_peak(dims.activation))
    return base + max(norm, attention, mlp)


def mask_bytes(c: int, *, padded: bool, eager: bool) -> int:
    """Bytes per (query, key) element of the (batch, 1, q, kv) masks alive during a prefill layer. transformers
    builds one per forward (masking_utils.py): none for an unpadded batch under SDPA (is_causal instead); a bool
    one for a padded batch, which torch's SDPA turns into an additive mask in the query dtype before its
    memory-efficient kernel (aten/src/ATen/native/transformers/attention.cpp convert_boolean_attn_mask), one
    layer at a time; for eager attention an additive mask in the compute dtype, always materialised."""
    if eager:
        return c
    return MASK + c if padded else 0
