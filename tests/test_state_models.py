"""State-space and hybrid families: per-sequence state, KV only for attention layers, counts from the config.

Expected values are derived by hand below from transformers' modelling and cache code:
- cache_utils.py LinearAttentionLayer.lazy_initialization: conv_states = zeros((*conv_input.shape[:-1], kernel)) in
  the conv input's dtype (the compute dtype); recurrent_states = zeros_like(the scan's final state);
- the final state is float32: mamba_ssm ops/triton/ssd_state_passing.py `_state_passing_fwd` allocates
  final_states with dtype=torch.float32 (Mamba-2); modeling_qwen3_next.py torch_chunk_gated_delta_rule keeps
  last_recurrent_state in float32; MambaMixer's scans keep the state in float32;
- shapes: Mamba2Mixer conv_dim = intermediate + 2 x n_groups x state_size, ssm (num_heads, head_dim, state_size);
  MambaMixer / JambaMambaMixer conv (intermediate, conv_kernel), ssm (intermediate, state_size);
  Qwen3NextGatedDeltaNet conv_dim = 2 x key_dim + value_dim, recurrent (num_v_heads, head_k_dim, head_v_dim);
  Lfm2ShortConv conv (hidden, conv_L_cache).
The configs in fixtures/configs/ are the repos' config.json files, except two transcriptions (no complete
config.json of either family was found by code search): falcon-h1-0.5b.json is tiiuae/Falcon-H1-0.5B-Instruct's
(16K positions) as NVIDIA-NeMo/Megatron-Bridge's Falcon-H1 bridge test gives it (FALCON_H1_500M_CONFIG), plus
mamba_d_ssm 1,536 = 24 heads x 64, which FalconH1Config's validation demands (its default, 1,024, would fail);
granite-4.0-h-1b.json is ibm-granite/granite-4.0-h-1b's as a third-party importer test transcribes it ("verbatim
from the published config.json, minus the fields the importer does not read"): the flags it omits
(attention_bias, mamba_conv_bias, mamba_proj_bias) take GraniteMoeHybridConfig's defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hfmem.config import read_architecture
from hfmem.memory import Settings, estimate, explain, kv_bytes_per_token
from hfmem.memory.facts import analyse
from hfmem.snapshot import Snapshot
from hfmem.spec import ModelSpec, build_spec, config_parameters

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs"


def config(name: str) -> dict:
    return json.loads((CONFIGS / f"{name}.json").read_text())


def spec_of(name: str) -> ModelSpec:
    """A repo with config.json only (pickle weights): everything comes from the config."""
    return build_spec(Snapshot(name, name, None, None, "local", (), config(name), {}))


# name: (state bytes per sequence in bf16, KV bytes per token in bf16, parameters)
EXPECTED = {
    # 64 Mamba-2 layers: conv (4096 x 2 + 2 x 8 x 128 = 10,240) x 4 x 2 B = 81,920;
    # ssm 128 heads x 64 x 128 x 4 B = 4,194,304; no attention.
    # Parameters per layer: in_proj 4096 x (2 x 8192 + 2 x 8 x 128 + 128 = 18,560) = 76,021,760, conv1d
    # 10,240 x 4 + 10,240 bias, dt_bias/A_log/D 3 x 128, gated norm 8,192, out_proj 8,192 x 4,096 = 33,554,432,
    # block norm 4,096: 109,640,064; x 64 + embeddings and untied lm_head 2 x 32,768 x 4,096 + norm_f 4,096.
    "mamba-codestral-7b-v0.1": (64 * (10_240 * 4 * 2 + 128 * 64 * 128 * 4), 0,
                                64 * 109_640_064 + 2 * 32_768 * 4_096 + 4_096),
    # 24 Mamba layers: conv 1,536 x 4 x 2 B = 12,288; ssm 1,536 x 16 x 4 B = 98,304.
    # Parameters per layer: in_proj 768 x 3,072, conv1d 1,536 x 4 + 1,536, x_proj (48 + 32) x 1,536, dt_proj
    # 1,536 x 48 + 1,536, A_log 1,536 x 16, D 1,536, out_proj 1,536 x 768, norm 768: 3,771,648; tied embeddings.
    "mamba-130m-hf": (24 * (1_536 * 4 * 2 + 1_536 * 16 * 4), 0, 24 * 3_771_648 + 50_280 * 768 + 768),
    # Jamba: attention where i % 8 == 4 (4 layers), Mamba elsewhere (28): conv 8,192 x 4 x 2 B = 65,536, ssm
    # 8,192 x 16 x 4 B = 524,288. KV: 4 layers x 2 x 8 kv heads x 128 x 2 B.
    # Parameters: Mamba layer 105,308,448 (in_proj 4,096 x 16,384, conv1d 8,192 x 4 + 8,192, x_proj (256 + 32) x
    # 8,192, dt_proj 8,192 x 256 + 8,192, A_log 8,192 x 16, D 8,192, out_proj 8,192 x 4,096, dt/B/C norms
    # 256 + 16 + 16); attention 41,943,040; experts where i % 2 == 1 (16 layers): router 16 x 4,096 + 16 x 3 x
    # 4,096 x 14,336; dense MLP 3 x 4,096 x 14,336 elsewhere; 2 norms per layer; untied embeddings; final norm.
    "jamba-v0.1": (28 * (65_536 + 524_288), 4 * 2 * 8 * 128 * 2,
                   28 * 105_308_448 + 4 * 41_943_040 + 16 * (16 * 4_096 + 16 * 3 * 4_096 * 14_336)
                   + 16 * 3 * 4_096 * 14_336 + 32 * 2 * 4_096 + 2 * 65_536 * 4_096 + 4_096),
    # Qwen3-Next: every 4th layer full attention (12), gated delta-net elsewhere (36): conv (2 x 16 x 128 + 32 x
    # 128 = 8,192) x 4 x 2 B = 65,536; recurrent 32 x 128 x 128 x 4 B = 2,097,152. KV: 12 x 2 x 2 x 256 x 2 B.
    # Parameters: linear attention 33,718,464 (in_proj_qkvz 2,048 x 12,288, in_proj_ba 2,048 x 64, conv1d
    # 8,192 x 4, dt_bias + A_log 64, norm 128, out_proj 4,096 x 2,048); gated full attention 27,263,488 (q_proj
    # 2,048 x 8,192 with its gate, k/v 2 x 2,048 x 512, o_proj 4,096 x 2,048, q/k norms 2 x 256); MoE in all 48
    # layers 1,614,809,088 (router 512 x 2,048, 512 experts x 3 x 2,048 x 512, shared expert 3 x 2,048 x 512,
    # shared gate 2,048); 2 norms per layer; untied embeddings 2 x 151,936 x 2,048; final norm.
    "qwen3-next-80b-a3b-instruct": (36 * (65_536 + 2_097_152), 12 * 2 * 2 * 256 * 2,
                                    36 * 33_718_464 + 12 * 27_263_488 + 48 * 1_614_809_088 + 48 * 2 * 2_048
                                    + 2 * 151_936 * 2_048 + 2_048),
    # LFM2: 10 short-conv layers: 2,048 x 3 x 2 B = 12,288, no recurrent state; 6 attention layers: 2 x 8 x 64 x 2 B.
    # Parameters: conv layer 16,783,360 (in_proj 2,048 x 6,144, conv 2,048 x 3, out_proj 2,048 x 2,048); attention
    # 10,485,888 (q/o 2 x 2,048^2, k/v 2 x 2,048 x 512, q/k norms 2 x 64); MLP 3 x 2,048 x 8,192 (block_ff_dim
    # 12,288 x 2/3, rounded to 256) in all 16; 2 norms per layer; tied embeddings 65,536 x 2,048; final norm.
    # Falcon-H1-0.5B: every layer runs Mamba-2 beside attention (FalconH1DecoderLayer). State: conv (1,536 +
    # 2 x 1 x 128 = 1,792) x 4 x 2 B = 14,336, ssm 24 x 64 x 128 x 4 B = 786,432. KV: 36 x 2 x 2 x 64 x 2 B.
    # Parameters per layer: in_proj 1,024 x (1,536 + 1,792 + 24) = 3,432,448, conv1d 1,792 x 4 + 1,792,
    # dt_bias/A_log/D 3 x 24, no gated norm (mamba_rms_norm false), out_proj 1,536 x 1,024 = 1,572,864;
    # attention q/o 2 x 1,024 x 512, k/v 2 x 1,024 x 128; MLP 3 x 1,024 x 2,048; 2 norms. Untied embeddings
    # 2 x 32,784 x 1,024 and the final norm: 521,411,104 (published as 0.5B).
    "falcon-h1-0.5b": (36 * (14_336 + 786_432), 36 * 2 * 2 * 64 * 2,
                       36 * (3_432_448 + 8_960 + 72 + 1_572_864 + 2 * 1_024 * 512 + 2 * 1_024 * 128
                             + 3 * 1_024 * 2_048 + 2 * 1_024) + 2 * 32_784 * 1_024 + 1_024),
    # Granite-4.0-H-1B: layer_types gives 4 attention layers, 36 Mamba-2. State: conv (3,072 + 2 x 128 = 3,328)
    # x 4 x 2 B = 26,624, ssm 48 x 64 x 128 x 4 B = 1,572,864. KV: 4 x 2 x 4 x 128 x 2 B.
    # Parameters: mamba layer in_proj 1,536 x (3,072 + 3,328 + 48) = 9,904,128, conv1d 3,328 x 4 + 3,328,
    # 3 x 48, gated norm 3,072, out_proj 3,072 x 1,536 = 4,718,592; attention q/o 2 x 1,536^2, k/v 2 x 1,536 x
    # 512; no experts (num_local_experts 0), so only the shared MLP 3 x 1,536 x 4,096 in all 40 layers;
    # 2 norms per layer; tied embeddings 100,352 x 1,536; final norm: 1,461,538,368 (published as 1.5B).
    "granite-4.0-h-1b": (36 * (26_624 + 1_572_864), 4 * 2 * 4 * 128 * 2,
                         36 * (9_904_128 + 16_640 + 144 + 3_072 + 4_718_592) + 4 * (2 * 1_536**2 + 2 * 1_536 * 512)
                         + 40 * (3 * 1_536 * 4_096 + 2 * 1_536) + 100_352 * 1_536 + 1_536),
    "lfm2-1.2b": (10 * 2_048 * 3 * 2, 6 * 2 * 8 * 64 * 2,
                  10 * 16_783_360 + 6 * 10_485_888 + 16 * 3 * 2_048 * 8_192 + 16 * 2 * 2_048 + 65_536 * 2_048
                  + 2_048),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_state_kv_and_parameters_from_the_config(name: str) -> None:
    state, kv_per_token, parameters = EXPECTED[name]
    spec = spec_of(name)
    settings = Settings(dtype="bfloat16", batch_size=3)
    assert spec.parameters.total == parameters
    assert config_parameters(*read_architecture(config(name))[:1], config(name))[0] == parameters
    facts = analyse(spec)
    assert sum(t.numel * t.count for t in facts.tensors) == parameters  # one config->tensors model
    assert kv_bytes_per_token(facts, settings) == kv_per_token
    for seq_len in (1, 4096):
        report = estimate(spec, Settings(dtype="bfloat16", batch_size=3, seq_len=seq_len))
        assert report.inference.components["kv_cache"] == 3 * (state + seq_len * kv_per_token)
    assert not [w for w in spec.warnings if "not one hfmem knows" in w or "not modelled" in w]


def test_explain_shows_state_beside_kv() -> None:
    formulas = explain(spec_of("jamba-v0.1"), Settings(dtype="bfloat16", batch_size=2, seq_len=100))["inference"]
    kv = next(f for f in formulas if f.name == "kv_cache")
    assert kv.inputs["state_bytes_per_sequence"] == 28 * (65_536 + 524_288)
    assert kv.inputs["layers"] == 4 and kv.inputs["state_layers"] == 28
    assert "per sequence" in kv.expression and "2 x kv_heads" in kv.expression
    assert kv.result_bytes == 2 * (100 * 4 * 2 * 8 * 128 * 2 + 28 * (65_536 + 524_288))


def test_state_follows_the_compute_dtype_but_the_recurrent_state_stays_fp32() -> None:
    """float32 compute doubles the conv window only: Mamba-130m's 24 x (1,536 x 4 x 4 + 1,536 x 16 x 4)."""
    report = estimate(spec_of("mamba-130m-hf"), Settings(dtype="float32", seq_len=10))
    assert report.inference.components["kv_cache"] == 24 * (1_536 * 4 * 4 + 1_536 * 16 * 4)


def test_hybrid_layer_kinds() -> None:
    arch, _ = read_architecture(config("jamba-v0.1"))
    assert [i for i, kind in enumerate(arch.layer_types or ()) if kind == "full_attention"] == [4, 12, 20, 28]
    qwen, _ = read_architecture(config("qwen3-next-80b-a3b-instruct"))
    assert (qwen.layer_types or ())[:4] == ("recurrent", "recurrent", "recurrent", "full_attention")
    mamba, warnings = read_architecture(config("mamba-codestral-7b-v0.1"))
    assert mamba.num_attention_heads is None and mamba.attention is None and warnings == []


def test_training_saves_the_mamba2_kernels_tensors_not_attention() -> None:
    """Full training, mixed precision: per token and layer the block's RMSNorm (fp32 input 4 h, the fp32 residual
    and the 16-bit output for the trainable in_proj: 6 h) plus MambaSplitConv1dScanCombinedFn's saved zxbcdt
    2 x (2 x 8,192 + 2 x 8 x 128 + 128), out_x 2 x 8,192 and rstd 4 x 8 groups; no attention, no MLP."""
    formulas = explain(spec_of("mamba-codestral-7b-v0.1"), Settings(batch_size=1, seq_len=1024))["training"]
    saved = next(f for f in formulas if f.name.startswith("activations"))
    assert saved.inputs["saved_per_token_per_layer"] == 10 * 4_096 + 2 * 18_560 + 2 * 8_192 + 4 * 8


def small(model_type: str, **keys: object) -> ModelSpec:
    raw = {"model_type": model_type, "hidden_size": 64, "vocab_size": 100, "torch_dtype": "bfloat16", **keys}
    return build_spec(Snapshot(model_type, model_type, None, None, "local", (), raw, {}))


def test_falcon_h1_runs_attention_and_mamba_in_every_layer() -> None:
    """FalconH1DecoderLayer: mamba (FalconH1Mixer) beside self_attn, then the MLP. Per layer: conv (96 + 2 x 1 x
    8 = 112) x 4 x 2 B = 896 and ssm 6 x 16 x 8 x 4 B = 3,072; K/V 2 x 2 x 16 x 2 B per token.
    Parameters per layer: in_proj 64 x (96 + 112 + 6) = 13,696, conv1d 112 x 4 + 112, dt_bias/A_log/D 3 x 6,
    no gated norm (mamba_rms_norm false), out_proj 96 x 64; attention 2 x 64^2 + 2 x 64 x 32; MLP 3 x 64 x 128;
    2 norms. Untied embeddings 2 x 100 x 64 and the final norm."""
    spec = small("falcon_h1", num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                 intermediate_size=128, mamba_d_ssm=96, mamba_n_heads=6, mamba_d_head=16, mamba_n_groups=1,
                 mamba_d_state=8, mamba_d_conv=4, mamba_rms_norm=False, tie_word_embeddings=False)  # fmt: skip
    report = estimate(spec, Settings(seq_len=10))
    assert report.inference.components["kv_cache"] == 2 * (896 + 3_072) + 10 * 2 * (2 * 2 * 16 * 2)
    layer = 13_696 + 560 + 18 + 96 * 64 + 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128 + 2 * 64
    assert spec.parameters.total == 2 * layer + 2 * 100 * 64 + 64


def test_granite_hybrid_mamba_and_attention_layers_with_a_shared_mlp() -> None:
    """GraniteMoeHybrid: layer_types picks mamba (Mamba-2 mixer) or attention; every layer has the shared MLP and
    the experts. Mamba layer state: conv (128 + 2 x 16 = 160) x 4 x 2 B = 1,280, ssm 8 x 16 x 16 x 4 B = 8,192
    (mamba_d_head "auto" = 128 / 8 heads); K/V in the one attention layer only: 2 x 2 x 16 x 2 B per token.
    Parameters: mamba layer in_proj 64 x (128 + 160 + 8), conv1d 160 x 4 + 160, 3 x 8, norm 128, out_proj
    128 x 64 = 28,088; attention 12,288; per layer shared MLP 3 x 64 x 128, router 4 x 64, experts 4 x 3 x 64 x
    32 and 2 norms; tied embeddings; final norm."""
    spec = small("granitemoehybrid", num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, shared_intermediate_size=128,
                 layer_types=["mamba", "attention", "mamba", "mamba"], mamba_n_heads=8, mamba_d_head="auto",
                 mamba_n_groups=1, mamba_d_state=16, mamba_d_conv=4, mamba_expand=2,
                 tie_word_embeddings=True)  # fmt: skip
    report = estimate(spec, Settings(seq_len=10, batch_size=2))
    assert report.inference.components["kv_cache"] == 2 * (3 * (1_280 + 8_192) + 10 * 2 * 2 * 16 * 2)
    ff = 3 * 64 * 128 + 4 * 64 + 4 * 3 * 64 * 32 + 2 * 64
    assert spec.parameters.total == 3 * 28_088 + 12_288 + 4 * ff + 100 * 64 + 64


def test_zamba2_hybrid_layers_attend_over_twice_the_hidden_size() -> None:
    """Zamba2: every layer keeps Mamba-2 state, conv (64 + 2 x 8 = 80) x 4 x 2 B = 640 and ssm 8 x 8 x 8 x 2 B
    = 1,024 (mamba_headdim is 2 x 32 / 8 whatever the file says: Zamba2Config computes it; Zamba2HybridDynamicCache
    allocates ssm_states in the model's dtype, not float32); the hybrid layer's shared block attends with head_dim
    2 x 32 / 4 = 16 over 4 K/V heads."""
    raw = {"model_type": "zamba2", "hidden_size": 32, "vocab_size": 100, "num_hidden_layers": 3,
           "num_attention_heads": 4, "layers_block_type": ["mamba", "hybrid", "mamba"], "mamba_d_state": 8,
           "mamba_d_conv": 4, "mamba_expand": 2, "mamba_ngroups": 1, "mamba_headdim": 99, "n_mamba_heads": 8,
           "torch_dtype": "bfloat16"}  # fmt: skip
    arch, warnings = read_architecture(raw)
    assert arch.head_dim == 16 and arch.layer_types == ("recurrent", "hybrid", "recurrent") and warnings == []
    assert arch.recurrent is not None and arch.recurrent.state_shape == (8, 8, 8)
    report = estimate(build_spec(Snapshot("z", "z", None, None, "local", (), raw, {})), Settings(seq_len=10))
    assert report.inference.components["kv_cache"] == 3 * (640 + 1_024) + 10 * 2 * 4 * 16 * 2


# Zamba2Config's class defaults (the 2.7B-style configuration of its docstring): 54 layers, hidden 2,560, 32 heads
# of 2 x 2,560 / 32 = 160, intermediate 4 x 2,560, Mamba-2 with 8 heads of 5,120 / 8 = 640, d_state 64, 1 group;
# layers 6, 12, 18, 24, 30, 36, 42, 47 and 51 hybrid; one shared block; adapter_rank 128 on the MLP only.
ZAMBA2_MAMBA_LAYER = (2_560 * (5_120 + 5_248 + 8) + 5_248 * 4 + 5_248 + 3 * 8 + 5_120 + 5_120 * 2_560
                      + 2_560)  # in_proj, conv1d (+ bias, always), dt_bias/A_log/D, gated norm, out_proj, norm
ZAMBA2_BLOCK = (3 * 5_120 * 5_120 + 5_120 * 2_560  # q/k/v over 2 x hidden, o_proj
                + 5_120 + 2_560  # input_layernorm (2 x hidden), pre_ff_layernorm
                + 2_560 * 2 * 10_240 + 10_240 * 2_560)  # gate_up_proj, down_proj
ZAMBA2_ADAPTER = 2_560 * 128 + 128 * 2 * 10_240  # gate_up_proj_adapter_list[j]: hidden -> rank -> 2 x intermediate


def test_zamba2_counts_each_shared_block_once_and_each_use_its_adapters() -> None:
    """modeling_zamba2.py: Zamba2Model builds num_mem_blocks Zamba2AttentionDecoderLayer and cycles them over the
    hybrid layers; each hybrid layer adds a bias-free hidden x hidden `linear`; Zamba2MLP gives use j its own
    adapter pair in block j % num_mem_blocks; Zamba2Attention adds q/k/v adapter pairs only with
    use_shared_attention_adapter. Tied embeddings 32,000 x 2,560; final norm."""
    raw = {"model_type": "zamba2"}
    arch, warnings = read_architecture(raw)
    assert warnings == [] and [i for i, k in enumerate(arch.layer_types or ()) if k == "hybrid"] == [
        6, 12, 18, 24, 30, 36, 42, 47, 51]  # fmt: skip
    rest = 9 * 2_560 * 2_560 + 32_000 * 2_560 + 2_560
    total = 54 * ZAMBA2_MAMBA_LAYER + ZAMBA2_BLOCK + 9 * ZAMBA2_ADAPTER + rest
    assert total == 2_481_848_336
    assert config_parameters(arch, raw)[0] == total
    # Two blocks: the second's weights join once; every use still has its own adapters. With attention adapters
    # each use also gets 3 x (5,120 x 128 + 128 x 5,120).
    two = {"model_type": "zamba2", "num_mem_blocks": 2, "use_shared_attention_adapter": True}
    assert config_parameters(read_architecture(two)[0], two)[0] == total + ZAMBA2_BLOCK + 9 * 3 * 2 * 5_120 * 128
    # More blocks than hybrid layers: Zamba2Model drops the unused ones.
    many = {"model_type": "zamba2", "num_mem_blocks": 20}
    assert config_parameters(read_architecture(many)[0], many)[0] == total + 8 * ZAMBA2_BLOCK
    names = {t.name for t in analyse(build_spec(Snapshot("z", "z", None, None, "local", (), raw, {}))).tensors}
    assert "model.layers.6.shared_transformer.feed_forward.gate_up_proj_adapter_list.8.1.weight" in names
    assert "model.layers.51.mamba_decoder.mamba.in_proj.weight" in names and "model.layers.51.linear.weight" in names


def test_zamba2_2_7b_from_zyphras_config() -> None:
    """fixtures/configs/zamba2-2.7b.json is Zyphra/Zamba2's config.json (the standalone Zamba2-2.7B) in
    Zamba2Config's names: num_layers 54, hidden 2,560, state_size 64, conv_dimension 4, expansion_factor 2,
    add_bias_linear false, shared-block LoRA rank 128 (adapter_rank), 32 heads, padded_vocab_size 32,000,
    num_mem_blocks 2, layer_mapping's "g" as "hybrid"; from its MambaConfig defaults mamba_headdim 64 and 1 group
    (so 5,120 / 64 = 80 Mamba heads) and ffn_hidden_size 4 x hidden. Against the class defaults: 80 Mamba heads
    widen in_proj by 2,560 x 72 and dt_bias/A_log/D by 3 x 72 per layer, and a second shared block (ABAB). State per
    layer in bf16: conv 5,248 x 4 x 2 B, ssm 80 x 64 x 64 x 2 B (Zamba2HybridDynamicCache: the model's dtype); KV
    in the 9 hybrid layers, 32 heads of 160. (transformers builds only the adapters a block uses; Zyphra's own
    module builds all 9 in each block, 9 x 2,949,120 more.)"""
    raw = config("zamba2-2.7b")
    per_layer = ZAMBA2_MAMBA_LAYER + 2_560 * 72 + 3 * 72
    total = 54 * per_layer + 2 * ZAMBA2_BLOCK + 9 * ZAMBA2_ADAPTER + 9 * 2_560 * 2_560 + 32_000 * 2_560 + 2_560
    assert spec_of("zamba2-2.7b").parameters.total == total == 2_662_214_560
    report = estimate(spec_of("zamba2-2.7b"), Settings(dtype="bfloat16", seq_len=1_000))
    state = 54 * (5_248 * 4 * 2 + 80 * 64 * 64 * 2)
    assert report.inference.components["kv_cache"] == state + 1_000 * 9 * 2 * 32 * 160 * 2
    assert read_architecture(raw)[1] == []


def test_every_family_entry_builds_its_model_from_the_class_defaults() -> None:
    """A family is one _FAMILIES entry: its class defaults alone read and count."""
    from hfmem.config import _FAMILIES

    for model_type in _FAMILIES:
        raw = {"model_type": model_type}
        arch, warnings = read_architecture(raw)
        assert not [w for w in warnings if "not one hfmem knows" in w], model_type
        total, embedding = config_parameters(arch, raw)
        assert total > embedding > 0, model_type


def test_prefill_of_a_mamba2_layer_holds_the_kernels_intermediates() -> None:
    """Per token: residual and normed input 2 x 2 x 4,096; zxbcdt 2 x (8,192 + 10,240 + 128), the conv output
    2 x 10,240, y and the gated norm's output 2 x 2 x 8,192; the scan's fp32 chunk states 4 x 128 x 64 x 128 / 256
    per token. Batch 2 x 512 tokens."""
    report = estimate(spec_of("mamba-codestral-7b-v0.1"), Settings(dtype="bfloat16", batch_size=2, seq_len=512))
    per_token = 4 * 4_096 + 2 * 18_560 + 2 * 10_240 + 4 * 8_192 + 4 * 128 * 64 * 128 // 256
    formula = next(f for f in explain(spec_of("mamba-codestral-7b-v0.1"), Settings(dtype="bfloat16", batch_size=2,
                   seq_len=512))["inference"] if f.name == "prefill layer peak")  # fmt: skip
    assert formula.result_bytes == 2 * 512 * per_token
    assert report.inference.components["activations"] >= formula.result_bytes


def test_qwen3_5_is_one_family_entry() -> None:
    """Qwen3_5TextConfig's class defaults (the 9B): 24 gated delta-net layers, conv (2 x 16 x 128 + 32 x 128) x 4
    x 2 B and recurrent 32 x 128 x 128 x 4 B each; 8 gated full-attention layers, K/V 2 x 4 x 256 x 2 B per token.
    Parameters: linear attention 67,403,968 (in_proj_qkv 4,096 x 8,192, in_proj_z 4,096 x 4,096, in_proj_b/a
    2 x 4,096 x 32, conv1d 8,192 x 4, dt_bias + A_log 64, norm 128, out_proj 4,096 x 4,096); attention 58,720,768
    (q_proj 4,096 x 8,192 with its gate, k/v 2 x 4,096 x 1,024, o_proj 4,096^2, q/k norms 512); dense MLP 3 x
    4,096 x 12,288 in all 32 layers; 2 norms per layer; untied embeddings 2 x 248,320 x 4,096; final norm. The
    composite qwen3_5 reads its text_config (the vision tower is not counted)."""
    raw = {"model_type": "qwen3_5", "text_config": {"model_type": "qwen3_5_text"}, "torch_dtype": "bfloat16"}
    spec = build_spec(Snapshot("q", "q", None, None, "local", (), raw, {}))
    report = estimate(spec, Settings(seq_len=100))
    assert report.inference.components["kv_cache"] == 24 * (8_192 * 4 * 2 + 32 * 128 * 128 * 4) + 100 * 8 * 4_096
    assert spec.parameters.total == (24 * 67_403_968 + 8 * 58_720_768 + 32 * 3 * 4_096 * 12_288 + 32 * 2 * 4_096
                                     + 2 * 248_320 * 4_096 + 4_096)  # fmt: skip


def test_pure_ssm_models_get_the_lora_targets_transformers_documents() -> None:
    """PEFT's default mapping has no mamba / mamba2 entry; transformers' mamba.md and mamba2.md fine-tune with
    target_modules ["x_proj", "embeddings", "in_proj", "out_proj"]. Rank 8, PEFT's r x (in + out) per module:
    mamba-130m per layer x_proj (1,536 + 80), in_proj (768 + 3,072), out_proj (1,536 + 768) over 24 layers, and
    the embedding's lora_A/lora_B 8 x (50,280 + 768); Codestral (no x_proj) per layer in_proj (4,096 + 18,560) and
    out_proj (8,192 + 4,096) over 64 layers, embedding 8 x (32,768 + 4,096). A hybrid keeps the attention names."""
    settings = Settings(lora_rank=8, seq_len=16)
    cases = {
        "mamba-130m-hf": (("x_proj", "embeddings", "in_proj", "out_proj"),
                          24 * 8 * (1_616 + 3_840 + 2_304) + 8 * (50_280 + 768)),
        "mamba-codestral-7b-v0.1": (("embeddings", "in_proj", "out_proj"),
                                    64 * 8 * (22_656 + 12_288) + 8 * (32_768 + 4_096)),
        "jamba-v0.1": (("q_proj", "k_proj", "v_proj", "o_proj"), 4 * 8 * (2 * (4_096 + 4_096) + 2 * (4_096 + 1_024))),
    }  # fmt: skip
    for name, (targets, trainable) in cases.items():
        report = estimate(spec_of(name), settings)
        assert report.lora is not None
        assert report.lora.target_modules == targets and report.lora.trainable_parameters == trainable, name
        assert not [w for w in report.warnings if "LoRA target" in w], name
