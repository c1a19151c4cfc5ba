"""A training step as phases: the peak is persistent state + the largest phase's transient memory.

memory-model.md A.1.3 / B §1.10: forward end (saved activations + loss buffers), the loss backward, the end of
backward (all gradients + one layer's working set), and the optimizer step (gradients + step temporaries).
Gradients are freed by zero_grad(set_to_none=True) (the default of torch >= 2.0 and the HF Trainer), so they are
absent in the forward pass. The components of the reported peak are those of its phase, so they add up exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import activations as act
from .facts import Dims
from .results import Formula
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
    adapter_bytes_per_token: int = 0,
) -> StepActivations:
    """Activations of one training step. `adapter_bytes_per_token` is PEFT's extra saving (fp32 input copies and
    lora_A outputs) summed over all adapted linears."""
    tokens, h, layers = batch_size * seq_len, dims.hidden, dims.layers
    if not (h and layers):
        return StepActivations(0, 0, 0, 0, 0, ())
    saved = act.layer_saved(dims, c, residual, batch_size, seq_len, trainable, eager)
    moe = act.moe_mlp_saved(dims, c, trainable) if dims.moe_layers else 0
    per_layer = [saved.per_token()] * (layers - dims.moe_layers) + [
        saved.per_token() - saved.mlp + moe
    ] * dims.moe_layers
    per_layer = with_recurrent_layers(dims, per_layer, saved.attention, saved.mlp, c, trainable)
    cross = act.norm_saved(h, c, residual, trainable) + saved.attention if dims.encoder_decoder else 0
    final_norm = act.norm_saved(h, c, residual, trainable)
    stack = tokens * (sum(per_layer) + dims.decoder_layers * cross * dims.encoder_decoder + adapter_bytes_per_token)
    stack += tokens * layers * saved.per_sequence
    one_layer = tokens * (max(per_layer) + cross + saved.per_sequence + adapter_bytes_per_token // layers)
    widest = max(
        dims.intermediate,
        dims.experts_per_token * dims.expert_intermediate + dims.shared_intermediate if dims.moe_layers else 0,
    )
    working = tokens * c * 2 * (h + widest)
    logit_elements = tokens * dims.vocab if dims.has_lm_logits else 0
    fwd_b, bwd_b = act.logits_training(c)
    inputs = {
        "batch_size": batch_size,
        "seq_len": seq_len,
        "hidden": h,
        "layers": layers,
        "compute_bytes": c,
        "saved_per_token_per_layer": max(per_layer),
    }
    if checkpointing:
        kept = tokens * (layers * c * h + final_norm)
        formula = Formula(
            "activations (checkpointed)",
            "layers x b x s x h x c (each layer's input) + final norm; one layer recomputed in backward",
            inputs,
            kept,
            exact=False,
        )
    else:
        kept = stack + tokens * final_norm
        formula = Formula(
            "activations (saved)",
            "b x s x Σ_layers [norms + q/k/v/out (+ lse) + MLP intermediates (+ adapter inputs)]"
            + (" + b x heads x s^2 x (c + 4) eager scores" if eager else ""),
            inputs,
            kept,
            exact=False,
        )
    formulas = (
        formula,
        Formula(
            "logits/loss",
            "b x s x vocab x (c + 4) after forward; x (c + 12) at the loss backward",
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
