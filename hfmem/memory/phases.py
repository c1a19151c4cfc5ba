"""A training step as phases: the peak is persistent state + the largest phase's transient memory.

memory-model.md A.1.3 / B §1.10: forward end (saved activations + loss buffers), the loss backward, the end of
backward (all gradients + one layer's working set), and the optimizer step (gradients + step temporaries).
Gradients are freed by zero_grad(set_to_none=True) (the default of torch >= 2.0 and the HF Trainer), so they are
absent in the forward pass. The components of the reported peak are those of its phase, so they add up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import activations as act
from .facts import Dims, ModelFacts
from .results import Formula
from .settings import Settings
from .state import with_recurrent_layers


@dataclass(frozen=True)
class Phase:
    name: str
    parts: dict[str, int]  # component -> bytes at this phase

    @property
    def total_bytes(self) -> int:
        return sum(self.parts.values())


def peak(phases: list[Phase]) -> Phase:
    return max(phases, key=lambda p: p.total_bytes)


def peak_formula(phases: list[Phase]) -> Formula:
    """Every phase's total, and which one is the peak."""
    top = peak(phases)
    expression = " | ".join(f"{p.name}: {p.total_bytes:,}" for p in phases)
    return Formula("peak phase", expression, {"phase": top.name}, top.total_bytes, exact=False)


@dataclass(frozen=True)
class StepActivations:
    saved: int  # kept for backward at the end of forward (logits excluded)
    layer: int  # one layer's saved activations (what checkpointing recomputes)
    working: int  # activation gradients in flight during backward
    logits_forward: int  # loss buffers at the end of forward
    logits_backward: int  # loss buffers at the start of backward
    formulas: tuple[Formula, ...]
    first_in: int = 0  # saved by what forward runs first (a vision tower): held until the end of backward


def step_activations(
    dims: Dims,
    *,
    c: int,
    residual: int,
    batch_size: int,
    seq_len: int,
    trainable: bool,
    eager: bool,
    checkpointing: bool,
    padded: bool = False,
    autocast: bool = False,
    keep_outputs: bool = False,
    decoder_len: int | None = None,
    adapter_bytes_per_token: int = 0,
) -> StepActivations:
    """Activations of one training step. `eager`: attention materialises its scores (--attention eager, or a family
    that always does); `padded`: the batch carries a padding mask; `autocast`: 16-bit autocast over an fp32 model;
    `keep_outputs`: the loop holds the model output through backward. An encoder-decoder model's encoder runs over
    seq_len tokens and its decoder over decoder_len (Settings.decoder_tokens; None: seq_len), its cross-attention
    over the encoder's.
    `adapter_bytes_per_token` is PEFT's extra saving (fp32 input copies and lora_A outputs) summed over all adapted
    linears."""
    h, layers, b = dims.hidden, dims.layers, batch_size
    if not (h and layers):
        return StepActivations(0, 0, 0, 0, 0, ())
    enc_dec = dims.encoder_decoder
    dec_len = decoder_len or seq_len
    enc_layers = layers - dims.decoder_layers if enc_dec else 0
    dec_layers = layers - enc_layers
    enc_tokens, dec_tokens = b * seq_len * bool(enc_dec), b * dec_len

    def saved_over(kv_len: int) -> act.Saved:
        return act.layer_saved(dims, c, residual, kv_len=kv_len, padded=padded, trainable=trainable, eager=eager,
                               autocast=autocast)  # fmt: skip

    saved = saved_over(dec_len)
    moe = act.moe_mlp_saved(dims, c, trainable, autocast) if dims.moe_layers else 0
    per_layer = [saved.per_token()] * (dec_layers - dims.moe_layers) + [
        saved.per_token() - saved.mlp + moe
    ] * dims.moe_layers
    per_layer = with_recurrent_layers(dims, per_layer, saved.attention, saved.mlp, c, trainable)
    final_norm = act.norm_saved(h, c, residual, trainable)
    stacks = 2 if enc_dec else 1
    embedding_masks = act.MASK * h * dims.dropouts.embedding // stacks  # per token of each stack
    adapter_share = adapter_bytes_per_token // layers  # per token of one layer
    # Σ over layers of (tokens x bytes per token); one_layer is the largest layer (what checkpointing recomputes)
    stack = dec_tokens * (sum(per_layer) + dec_layers * saved.per_sequence)
    stack += adapter_bytes_per_token * (enc_tokens * enc_layers + dec_tokens * dec_layers) // layers
    one_layer = dec_tokens * (max(per_layer) + saved.per_sequence + adapter_share)
    if enc_dec:  # encoder layers (bidirectional over seq_len), and each decoder layer's cross-attention
        encoder = saved_over(seq_len)
        q, k, v, out = act.attention_widths(dims, act.expands_kv(dims, padded, eager))
        cross_query = (
            final_norm
            + c * (q + out)
            + (0 if eager else act.FP32 * dims.heads)
            + (c * out if trainable else 0)
            + act.MASK * h * dims.dropouts.sublayer
            + (dims.heads * seq_len * act.eager_saved_bytes(c, dims.dropouts.probs) if eager else 0)
        )
        cross_keys = c * (k + v)  # per encoder token: K/V projected from the encoder output, per decoder layer
        stack += enc_tokens * enc_layers * (encoder.per_token() + encoder.per_sequence)
        stack += dec_layers * (dec_tokens * cross_query + enc_tokens * cross_keys)
        one_layer = max(
            enc_tokens * (encoder.per_token() + encoder.per_sequence + adapter_share),
            one_layer + dec_tokens * cross_query + enc_tokens * cross_keys,
        )
    tokens = dec_tokens + enc_tokens  # every token of both stacks
    widest = max(
        dims.intermediate,
        dims.experts_per_token * dims.expert_intermediate + dims.shared_intermediate if dims.moe_layers else 0,
    )
    working = max(dec_tokens, enc_tokens) * c * 2 * (h + widest)
    logit_elements = dec_tokens * dims.vocab if dims.has_lm_logits else 0
    fwd_b, bwd_b = act.logits_training(c, keep_outputs)
    inputs = {
        "batch_size": batch_size,
        "seq_len": seq_len,
        **({"decoder_len": dec_len} if enc_dec else {}),
        "hidden": h,
        "layers": layers,
        "compute_bytes": c,
        "saved_per_token_per_layer": max(per_layer),
    }
    outside = tokens * (final_norm + embedding_masks)  # final norms and embedding dropout masks, never recomputed
    if checkpointing:
        kept = (enc_tokens * enc_layers + dec_tokens * dec_layers) * c * h + outside
        formula = Formula(
            "activations (checkpointed)",
            "layers x b x s x h x c (each layer's input) + final norm; one layer recomputed in backward",
            inputs,
            kept,
            exact=False,
        )
    else:
        kept = stack + outside
        formula = Formula(
            "activations (saved)",
            "b x s x Σ_layers [norms + q/k/v/out (+ lse) + MLP intermediates + dropout masks (+ adapter inputs)]"
            + (" + b x heads x s^2 x (4 + c) eager scores" if eager else ""),
            inputs,
            kept,
            exact=False,
        )
    formulas = (
        formula,
        Formula(
            "logits/loss",
            f"b x s x vocab x ({fwd_b} B) after forward; x ({bwd_b} B) at the loss backward"
            + (" (the loop keeps the model output's logits)" if keep_outputs else ""),
            {"logit_elements": logit_elements, "forward_bytes_per_element": fwd_b, "backward_bytes_per_element": bwd_b},
            logit_elements * bwd_b,
            exact=False,
        ),
    )
    return StepActivations(
        saved=kept,
        layer=one_layer,
        working=working,
        logits_forward=logit_elements * fwd_b,
        logits_backward=logit_elements * bwd_b,
        formulas=formulas,
    )


def step_settings(facts: ModelFacts, settings: Settings, seq_len: int, zero: int, peak_phase: str) -> dict[str, Any]:
    """The settings a training or LoRA estimate reports after its own: how each step runs, on how many GPUs."""
    return {
        "grad_checkpointing": settings.grad_checkpointing,
        "attention": settings.attention,
        "attention_used": "eager" if act.runs_eager(facts.dims, settings.attention) else settings.attention,
        "padding": settings.padding,
        "keep_outputs": settings.keep_outputs,
        **({"decoder_len": settings.decoder_tokens(seq_len, facts.dims.encoder_decoder)}
           if facts.dims.encoder_decoder else {}),
        "gpus": settings.gpus,
        "zero": zero,
        "peak_phase": peak_phase,
    }  # fmt: skip
