"""Activation memory: what one HF decoder layer saves for backward, the prefill peak, and the logits/loss terms.

Training follows Korthikanti et al. 2022 (arXiv 2205.05198, Table 2) adapted to Hugging Face stacks as
memory-model.md B §1.8 lists: memory-efficient SDPA (no heads x seq^2), no dropout, RMSNorm upcast to fp32,
SwiGLU, GQA, frozen-linear inputs not saved, PEFT's fp32 adapter-input copies. Byte counts are per token of one
layer; callers multiply by batch x seq. Every count names the tensor autograd keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

from .facts import Dims

FP32 = 4


@dataclass(frozen=True)
class Saved:
    """What one layer keeps per token (bytes), by part, so --explain can show it."""

    norms: int
    attention: int
    mlp: int
    per_sequence: int  # eager scores: bytes per token that grow with seq (heads x seq x (c + 4)), so seq^2 per layer

    def per_token(self) -> int:
        return self.norms + self.attention + self.mlp


def expands_kv(dims: Dims, batch_size: int) -> bool:
    """Whether SDPA sees K/V repeated to every query head. A padded batch (batch > 1) makes transformers build a
    4-D mask, which disables SDPA's native GQA and calls repeat_kv (memory-model.md A.4b); a single sequence
    needs no padding mask."""
    return batch_size > 1 and not dims.mla and dims.kv_heads < dims.heads


def attention_widths(dims: Dims, batch_size: int) -> tuple[int, int, int, int]:
    """Per-token widths of q, k, v as SDPA sees them, and of the attention output."""
    q = dims.heads * dims.qk_head_dim
    out = dims.heads * dims.v_head_dim
    if dims.mla:  # k = [k_nope per head, shared k_rope expanded], v per head (DeepSeek-V3 modelling)
        return q, q, out, out
    kv = dims.heads * dims.head_dim if expands_kv(dims, batch_size) else dims.kv_heads * dims.head_dim
    return q, kv, kv, out


def layer_saved(
    dims: Dims, c: int, residual: int, batch_size: int, seq_len: int, trainable: bool, eager: bool
) -> Saved:
    """Bytes one decoder layer saves for backward, per token. `c` is the compute dtype's size and `residual` the
    residual stream's (4 under autocast over an fp32 model); `trainable` says whether the block's weights get
    gradients (full fine-tuning) or are frozen (LoRA; adapters are added by the caller)."""
    h = dims.hidden
    norm = norm_saved(h, c, residual, trainable)
    q, k, v, out = attention_widths(dims, batch_size)
    attention = c * (q + k + v + out)  # q, k, v and the output, saved by SDPA
    attention += 0 if eager else FP32 * dims.heads  # logsumexp per head
    attention += c * out if trainable else 0  # o_proj input (the transposed contiguous copy)
    if dims.mla:  # latent norms (fp32 copies) and, when trainable, the up-projection inputs
        latent = dims.q_lora_rank + dims.kv_lora_rank
        attention += FP32 * latent + (2 * c * latent if trainable else 0)
    mlp = _mlp_saved(dims, c, trainable, moe=False)
    per_sequence = 0
    if eager:  # fp32 softmax output (saved by softmax) and its cast copy (saved by the PV matmul): heads x seq^2
        per_sequence = dims.heads * seq_len * (FP32 + (c if c < FP32 else 0))
    return Saved(norms=2 * norm, attention=attention, mlp=mlp, per_sequence=per_sequence)


def norm_saved(h: int, c: int, residual: int, trainable: bool) -> int:
    """A pre-norm saves its fp32 input copy (HF RMSNorm upcasts); with a trainable weight also the normalised
    input (residual dtype) for the weight gradient, and its output (compute dtype) because the following linears
    save their input."""
    return FP32 * h + ((residual + c) * h if trainable else 0)


def moe_mlp_saved(dims: Dims, c: int, trainable: bool) -> int:
    return _mlp_saved(dims, c, trainable, moe=True)


def _mlp_saved(dims: Dims, c: int, trainable: bool, moe: bool) -> int:
    """Gated MLP: gate output (saved by the activation), activation and up outputs (saved by the product) and,
    when down_proj is trainable, the product. Non-gated: fc output, and the activation output when trainable.
    MoE: top-k experts per token, each with its gathered input when trainable, + shared experts + fp32 router."""
    h = dims.hidden
    if not moe:
        return _dense_mlp(dims.intermediate, dims.gated, c, trainable)
    k, inner = dims.experts_per_token, dims.expert_intermediate
    routed = k * (_dense_mlp(inner, dims.gated, c, trainable) + (c * h if trainable else 0))
    shared = _dense_mlp(dims.shared_intermediate, dims.gated, c, trainable) if dims.shared_intermediate else 0
    return routed + shared + FP32 * dims.experts


def _dense_mlp(inner: int, gated: bool, c: int, trainable: bool) -> int:
    if gated:
        return c * inner * (4 if trainable else 3)
    return c * inner * (2 if trainable else 1)


def logits_training(c: int) -> tuple[int, int]:
    """Bytes per logit element (batch x seq x vocab) at the end of forward and at the start of backward.
    Forward: logits in compute dtype (kept in the model output) + fp32 log-softmax (saved). Backward start: + the
    grad of the log-softmax output and the grad of its input, both fp32: c + 12, i.e. 14 B for 16-bit
    (memory-model.md B §1.8: 10-14 B per logit element at peak)."""
    return c + FP32, c + 3 * FP32


def logits_inference(c: int) -> int:
    """Bytes per logit element at prefill: compute-dtype logits + the fp32 copy generate() takes."""
    return c + FP32


def prefill_layer_peak(dims: Dims, c: int, batch_size: int, seq_len: int, eager: bool) -> int:
    """Largest per-token working set of one layer at inference (nothing is kept for backward): the residual
    stream, the normalised input and the widest block's intermediates (the norm's fp32 temporaries, the
    attention's q/k/v (+ rotated copies) and output (+ eager scores and their fp32 softmax), or the MLP's
    gate/up/product)."""
    h = dims.hidden
    base = 2 * c * h  # residual + normalised input
    norm = 2 * FP32 * h  # fp32 upcast and the fp32 normalised value inside RMSNorm
    q, k, v, out = attention_widths(dims, batch_size)
    attention = c * (2 * q + 2 * k + v + out)  # projections, rotated q/k, output
    attention += dims.heads * seq_len * (c + FP32) if eager else 0  # scores + fp32 softmax, per token
    if dims.moe_layers:
        inner = dims.experts_per_token * dims.expert_intermediate + dims.shared_intermediate
        mlp = c * (3 * inner + h) + FP32 * dims.experts  # expert intermediates, the combined output, router logits
    else:
        mlp = c * dims.intermediate * (3 if dims.gated else 2)
    return base + max(norm, attention, mlp)
