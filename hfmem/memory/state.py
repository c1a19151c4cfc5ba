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
This is transformers' main branch (2026). Older releases preallocated the state in the model dtype
(Mamba2Cache, HybridMambaAttentionDynamicCache): half these recurrent bytes in 16-bit, though MambaCache's
update_ssm_state already kept the kernel's fp32 state. Zamba2 still has its own Zamba2HybridDynamicCache
(modeling_zamba2.py), preallocated in the model dtype and copied into: its ssm state is compute-dtype.
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


# --- training: what a recurrent mixer saves for backward (per token, bytes) ---


def mixer_saved(dims: Dims, c: int, trainable: bool) -> int:
    """Bytes one recurrent mixer keeps for backward per token, on the path transformers takes by default in
    training on CUDA with the kernels installed (cache off, so no state):
    - mamba2 (Mamba2Mixer.cuda_kernels_forward -> mamba_ssm's MambaSplitConv1dScanCombinedFn, ssd_combined.py
      `ctx.save_for_backward(zxbcdt, conv1d_weight, conv1d_bias, out_x, ..., rstd, ...)`): the in_proj output
      zxbcdt (c x (2 x inner + 2 G N + heads)), the scan output out_x (c x inner) and the gated norm's rstd
      (fp32 per group); conv, scan, norm and out_proj are recomputed in backward;
    - mamba (MambaMixer -> mamba_ssm's MambaInnerFn, checkpoint_lvl=1 recomputes conv1d_out and delta): xz
      (c x 2 x inner), x_dbl (c x (dt_rank + 2 N)), the scan output (c x inner); Jamba's mixer runs the same
      kernels one by one around its dt/B/C norms and is counted the same;
    - gated_deltanet (Qwen3NextGatedDeltaNet with fla's chunk_gated_delta_rule and causal_conv1d): the conv
      input (c x conv_dim), q, k, v (c x conv_dim), g and beta (fp32 per value head), the chunk's A (64 x fp32
      per value head), q/k rstd, and the gated norm's fp32 input and gate (+ out_proj's input when trainable);
    - short_conv (Lfm2ShortConv): in_proj's output B C x (c x 3 h), B x and the conv output (c x h each), and
      out_proj's input when trainable.
    Modelled from the saved tensors, not measured: Formula kind "model"."""
    rec, h = dims.recurrent, dims.hidden
    if rec is None:
        return 0
    if rec.mixer == "mamba2":
        heads, _, state = rec.state_shape
        inner = heads * rec.state_shape[1]
        groups = (rec.conv_channels - inner) // (2 * state) if state else 0
        return c * (inner + rec.conv_channels + heads) + c * inner + FP32 * groups
    if rec.mixer == "mamba":
        inner, state = rec.state_shape
        dt_rank = -(-h // 16)  # time_step_rank "auto", what released configs use
        return c * 2 * inner + c * (dt_rank + 2 * state) + c * inner
    if rec.mixer == "gated_deltanet":
        v_heads, d_k, d_v = rec.state_shape
        value = v_heads * d_v
        k_heads = (rec.conv_channels - value) // (2 * d_k) if d_k else 0
        saved = 2 * c * rec.conv_channels + FP32 * (2 + 64) * v_heads + FP32 * 2 * k_heads
        return saved + FP32 * value + c * value + (c * value if trainable else 0)
    return c * 5 * h + (c * h if trainable else 0)  # short_conv


def with_recurrent_layers(dims: Dims, per_layer: list[int], attention: int, mlp: int, c: int,
                          trainable: bool) -> list[int]:
    """Per-layer saved bytes per token with each recurrent layer's attention replaced by its mixer (a hybrid
    layer has both; an attention-free Mamba block has one norm, the mixer and no MLP). `attention` and `mlp` are
    the attention and MLP parts of the layers as activations.layer_saved counted them."""
    if dims.recurrent is None:
        return per_layer
    mixer = mixer_saved(dims, c, trainable)
    kinds = dims.layer_kinds[: len(per_layer)]
    if all(kind == "recurrent" for kind in kinds) and dims.heads == 0:
        return [(value - attention - mlp) // 2 + mixer for value in per_layer]  # one norm instead of two
    adjust = {"recurrent": mixer - attention, "hybrid": mixer}
    return [value + adjust.get(kind, 0) for value, kind in zip(per_layer, kinds)] + per_layer[len(kinds):]


def mixer_prefill(dims: Dims, c: int) -> int:
    """Per token, the prefill working set of a recurrent layer (nothing kept for backward): the residual and the
    normalised input (2 c h) plus the mixer's intermediates alive at once, on the kernel paths above:
    - mamba2: in_proj's zxbcdt, the conv output, the scan output y and the gated norm's output (compute dtype),
      and the chunk states mamba_chunk_scan_combined keeps in fp32 (heads x head_dim x N per 256-token chunk);
    - mamba: xz, the conv output, x_dbl, delta and the scan output;
    - gated_deltanet: in_proj_qkvz's output, the conv output, the core output and the fp32 gated norm;
    - short_conv: B C x, B x, the conv output and C times it.
    Modelled, not measured."""
    rec, h = dims.recurrent, dims.hidden
    if rec is None:
        return 0
    base = 2 * c * h
    if rec.mixer == "mamba2":
        heads, head_dim, _ = rec.state_shape
        inner = heads * head_dim
        return base + c * (inner + 2 * rec.conv_channels + heads + 2 * inner) + FP32 * rec.state_elements // 256
    if rec.mixer == "mamba":
        inner, state = rec.state_shape
        return base + c * (2 * inner + inner + -(-h // 16) + 2 * state + 2 * inner)
    if rec.mixer == "gated_deltanet":
        v_heads, _, d_v = rec.state_shape
        value = v_heads * d_v
        return base + c * (rec.conv_channels + value + rec.conv_channels + value) + FP32 * value
    return base + c * 6 * h  # short_conv
