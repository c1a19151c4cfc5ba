"""Recurrent state: what a state-space, linear-attention or short-convolution layer keeps per sequence.

Unlike K/V (bytes per token), this state has a fixed size whatever the sequence length. transformers' cache
(cache_utils.py, LinearAttentionLayer.lazy_initialization) allocates each layer's tensors at the first update,
shaped and typed like what the mixer hands it:
- conv_states: zeros of (*conv_input.shape[:-1], conv_kernel) in the dtype of the conv input, i.e. the compute
  dtype: per sequence conv_channels x conv_width elements;
- recurrent_states: zeros_like the scan's final state. The Mamba-2 scan returns it in float32 whatever the input
  (mamba_ssm ops/triton/ssd_state_passing.py `_state_passing_fwd`: final_states dtype=torch.float32; the torch
  path of modeling_mamba2.py computes it from `.float()` inputs), as do the Mamba-1 selective scan (its last
  state is the kernel's fp32 x) and the gated delta rule (modeling_qwen3_next.py torch_chunk_gated_delta_rule
  keeps last_recurrent_state in float32; fla's chunk kernel returns an fp32 final state).
Shapes per mixer (hfmem.architecture.Recurrent holds them per config):
- mamba (MambaMixer, JambaMambaMixer): conv (intermediate, conv_kernel), ssm (intermediate, state_size);
- mamba2 (Mamba2Mixer; Bamba/Falcon-H1/GraniteMoeHybrid/Zamba2 mixers): conv (intermediate + 2 x n_groups x
  state_size, conv_kernel), ssm (num_heads, head_dim, state_size);
- gated_deltanet (Qwen3NextGatedDeltaNet): conv (2 x key_dim + value_dim, linear_conv_kernel_dim), recurrent
  (linear_num_value_heads, linear_key_head_dim, linear_value_head_dim);
- short_conv (Lfm2ShortConv): conv (hidden, conv_L_cache), no recurrent state.
Training runs without a cache (use_cache is off under gradient checkpointing and in a loss forward), so the
state counts in inference only.
"""

from __future__ import annotations

from ..architecture import STATE_KINDS
from .facts import Dims
from .results import Formula

FP32 = 4


def state_layers(dims: Dims) -> int:
    """Layers that keep a recurrent state (recurrent-only and hybrid layers)."""
    if dims.recurrent is None:
        return 0
    return sum(kind in STATE_KINDS for kind in dims.layer_kinds[: dims.decoder_layers])


def layer_state_bytes(dims: Dims, compute_bytes: int) -> tuple[int, int]:
    """(conv, recurrent) bytes one layer keeps for one sequence."""
    rec = dims.recurrent
    if rec is None:
        return 0, 0
    conv = rec.conv_channels * rec.conv_width * compute_bytes
    return conv, rec.state_elements * (FP32 if rec.state_fp32 else compute_bytes)


def state_bytes_per_sequence(dims: Dims, compute_bytes: int) -> int:
    """Σ over layers of one sequence's conv and recurrent state (independent of its length)."""
    return state_layers(dims) * sum(layer_state_bytes(dims, compute_bytes))


def state_term(dims: Dims, compute_bytes: int, batch_size: int) -> tuple[int, str, dict[str, int | float | str]]:
    """The cache's recurrent-state part for a batch: (bytes, expression, inputs) for the KV-cache formula."""
    layers = state_layers(dims)
    if not layers or dims.recurrent is None:
        return 0, "", {}
    conv, recurrent = layer_state_bytes(dims, compute_bytes)
    rec = dims.recurrent
    expression = (
        "batch x state_layers x (conv_channels x conv_width x c"
        + (f" + {' x '.join(map(str, rec.state_shape))} x {FP32 if rec.state_fp32 else 'c'}" if recurrent else "")
        + ") per sequence, any length"
    )
    inputs: dict[str, int | float | str] = {
        "mixer": rec.mixer,
        "state_layers": layers,
        "conv_channels": rec.conv_channels,
        "conv_width": rec.conv_width,
        "conv_bytes_per_layer": conv,
        "recurrent_bytes_per_layer": recurrent,
        "state_bytes_per_sequence": layers * (conv + recurrent),
    }
    return batch_size * layers * (conv + recurrent), expression, inputs


def state_formula(dims: Dims, compute_bytes: int, batch_size: int) -> Formula | None:
    total, expression, inputs = state_term(dims, compute_bytes, batch_size)
    return Formula("recurrent state", expression, inputs, total, exact=True) if expression else None
