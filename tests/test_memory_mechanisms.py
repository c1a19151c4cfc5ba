"""Issue 14's mechanisms, one test each: the bytes expected are derived by hand from the code transformers and
torch run (file and function named in each docstring), not from hfmem's own formulas."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from hfmem.cli import cli
from hfmem.memory import Settings, estimate, what_if
from hfmem.memory.facts import analyse
from hfmem.memory.phases import step_activations
from hfmem.memory.tables import OPTIMIZER_PEAK
from hfmem.snapshot import Snapshot
from hfmem.spec import ModelSpec, build_spec
from hfmem.views.text import render_what_if

GPT2 = {
    "model_type": "gpt2",
    "architectures": ["GPT2LMHeadModel"],
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 4,
    "n_positions": 1024,
    "n_inner": None,  # 4 x n_embd = 256
    "vocab_size": 1000,
    "activation_function": "gelu_new",
    "resid_pdrop": 0.0,
    "embd_pdrop": 0.0,
    "attn_pdrop": 0.0,
}
T5 = {
    "model_type": "t5",
    "architectures": ["T5ForConditionalGeneration"],
    "d_model": 64,
    "d_kv": 16,
    "d_ff": 128,
    "num_layers": 2,
    "num_decoder_layers": 3,
    "num_heads": 4,
    "vocab_size": 1000,
    "feed_forward_proj": "relu",
    "dropout_rate": 0.0,
    "is_encoder_decoder": True,
    "tie_word_embeddings": False,
}
LLAMA = {  # 2 layers, hidden 64, 8 query heads / 2 KV heads of 16, FFN 128
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 8,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
    "vocab_size": 1000,
    "max_position_embeddings": 32768,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
}
MIXTRAL = {  # 2 layers of 4 experts, 2 per token, FFN 96
    "model_type": "mixtral",
    "architectures": ["MixtralForCausalLM"],
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "intermediate_size": 96,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "vocab_size": 1000,
    "max_position_embeddings": 4096,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
}


def spec_of(config: dict) -> ModelSpec:
    """As `hfmem inspect` builds it from a repo with this config.json (no weights: config-derived tensors)."""
    return build_spec(Snapshot("test/model", "test/model", None, None, "local", (), config, {}))


def saved(config: dict, **options) -> int:
    """Activations kept for backward at the end of forward (logits excluded), one sequence of 512 tokens."""
    args = {"c": 2, "residual": 2, "batch_size": 1, "seq_len": 512, "trainable": True, "eager": False,
            "checkpointing": False} | options  # fmt: skip
    return step_activations(analyse(spec_of(config)).dims, **args).saved


def test_gelu_new_chain_saves_four_mlp_wide_tensors_fp32_under_autocast():
    """transformers activations.py NewGELUActivation: 0.5 * x * (1.0 + tanh(sqrt(2/pi) * (x + 0.044715 *
    pow(x, 3.0)))). Autograd (torch tools/autograd/derivatives.yaml) keeps: pow -> its input; tanh -> its result;
    the last product -> both factors; products with a Python number and sums keep nothing. Under CUDA autocast
    pow is an fp32 op (aten/src/ATen/autocast_mode.h AT_FORALL_FP32), so pow's input is an fp32 copy of x, and
    x + 0.044715 x^3, tanh and 1 + tanh are promoted to fp32; only 0.5 * x stays bf16:
    4 (x fp32) + 4 (tanh) + 2 (0.5x) + 4 (1 + tanh) = 14 B per MLP element, against 2 B for the native kernel
    (gelu_pytorch_tanh saves its input). GPT-2: 2 layers x 512 tokens x 256 MLP elements.
    Without autocast (pure bf16, as the LoRA estimate runs) the four are bf16: 8 B against 2."""
    native = GPT2 | {"activation_function": "gelu_pytorch_tanh"}
    mixed = saved(GPT2, autocast=True) - saved(native, autocast=True)
    assert mixed == 2 * 512 * 256 * (14 - 2)
    pure = saved(GPT2, trainable=False) - saved(native, trainable=False)
    assert pure == 2 * 512 * 256 * (8 - 2)


def test_gelu_new_holds_four_mlp_wide_tensors_in_a_prefill():
    """Without autograd the chain's temporaries die as soon as the next operation has read them, but Python
    evaluates `0.5 * input` first: x (the c_fc output), 0.5x, and two intermediates (pow then 0.044715 x^3, ...,
    tanh then 1 + tanh) are alive at once: 4 MLP-wide tensors, where a native gelu holds its input and output.
    GPT-2 in fp32 (4 B), one 512-token sequence: the MLP is the widest block, b x s x (residual + normed input
    (2 x 64 x 4) + 4 x 256 x 4)."""
    for act, tensors in (("gelu_new", 4), ("gelu_pytorch_tanh", 2)):
        spec = spec_of(GPT2 | {"activation_function": act, "torch_dtype": "float32"})
        inference = estimate(spec, Settings(seq_len=512)).inference
        layer = next(f for f in inference.formulas if f.name == "prefill layer peak")
        assert layer.result_bytes == 512 * (2 * 64 * 4 + tensors * 256 * 4)


def test_dropout_masks_are_kept_when_the_config_sets_dropout():
    """torch native_dropout (p > 0 in training) returns a bool mask that its backward keeps: 1 B per element;
    p = 0 returns the input (aten/src/ATen/native/Dropout.cpp), no mask. GPT-2 (models/gpt2/modeling_gpt2.py):
    `drop` on the embeddings (embd_pdrop), `resid_dropout` after attention and `dropout` after the MLP
    (resid_pdrop), `attn_dropout` on the probabilities (attn_pdrop; eager only: SDPA gets dropout_p and keeps
    a seed). 512 tokens: embeddings 64 + 2 layers x 2 x 64 under SDPA; eager adds 2 layers x 4 heads x 512 keys."""
    on = GPT2 | {"resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1}
    assert saved(on) - saved(GPT2) == 512 * (64 + 2 * 2 * 64)
    assert saved(on, eager=True) - saved(GPT2, eager=True) == 512 * (64 + 2 * 2 * 64) + 2 * 4 * 512 * 512


def test_t5_dropout_rate_masks_every_sublayer_the_ffn_and_the_probabilities():
    """T5 (models/t5/modeling_t5.py) with dropout_rate: each stack's embeddings and final norm output; every
    self-attention, cross-attention and FFN sublayer output (T5LayerSelfAttention / T5LayerCrossAttention /
    T5LayerFF); the FFN's activation (T5DenseActDense); the attention probabilities (always materialised in
    T5). Encoder (2 layers) over 512 tokens, decoder (3 layers) over 32:
    encoder 512 x (2 x 64 + 2 x (2 x 64 + 128 + 4 x 512)); decoder 32 x (2 x 64 + 3 x (3 x 64 + 128 + 4 x 32
    + 4 x 512))."""
    on = T5 | {"dropout_rate": 0.1}
    encoder = 512 * (2 * 64 + 2 * (2 * 64 + 128 + 4 * 512))
    decoder = 32 * (2 * 64 + 3 * (3 * 64 + 128 + 4 * 32 + 4 * 512))
    assert saved(on, eager=True, decoder_len=32) - saved(T5, eager=True, decoder_len=32) == encoder + decoder


def test_logits_are_freed_before_backward_with_loss_equals_model_loss():
    """loss/loss_utils.py ForCausalLMLoss: logits.float() then cross_entropy. At the loss backward the fp32
    log-softmax (saved), nll_loss's fp32 gradient and log_softmax's fp32 input gradient are alive: 12 B per
    element. The bf16 logits (2 B) are alive only while the model output is held: `loss = model(...).loss`
    frees them, `outputs = model(...); loss = outputs.loss` keeps them. With checkpointing the loss backward is
    this model's peak, so the two loops differ by exactly batch x seq x vocab x 2 bytes."""
    spec = spec_of(LLAMA)
    base = Settings(batch_size=2, seq_len=2048, grad_checkpointing=True)
    freed = estimate(spec, base).training
    kept = estimate(spec, Settings(batch_size=2, seq_len=2048, grad_checkpointing=True, keep_outputs=True)).training
    assert freed.settings["peak_phase"] == kept.settings["peak_phase"] == "loss backward"
    assert kept.total_bytes - freed.total_bytes == 2 * 2048 * 1000 * 2


def test_padding_mask_and_repeat_kv_only_for_padded_batches():
    """masking_utils._ignore_causal_mask_sdpa: no padding -> no mask, SDPA's is_causal; then
    integrations/sdpa_attention.py use_gqa_in_sdpa(mask=None) passes enable_gqa and K/V keep their 2 heads. A
    padded batch builds a (batch, 1, seq, seq) bool mask (1 B) and repeat_kv copies K and V to all 8 heads: SDPA
    saves them (bf16), 2 x (8 - 2) x 16 x 2 B more per token and layer. 4 x 512 tokens, 2 layers. In a prefill
    torch's SDPA also turns the bool mask into an additive bf16 one for its memory-efficient kernel
    (aten/src/ATen/native/transformers/attention.cpp convert_boolean_attn_mask): 1 + 2 B per mask element."""
    none, padded = saved(LLAMA, batch_size=4), saved(LLAMA, batch_size=4, padded=True)
    assert padded - none == 2 * 4 * 512 * 2 * (8 - 2) * 16 * 2
    spec = spec_of(LLAMA)
    plain = estimate(spec, Settings(batch_size=4, seq_len=512)).inference
    masked = estimate(spec, Settings(batch_size=4, seq_len=512, padding="padded")).inference
    # prefill: the widest block grows by the expanded K/V (rotated k, and v: 3 x 6 heads x 16 x 2 B per token)
    mask = 4 * 512 * 512 * (1 + 2)
    assert masked.components["activations"] - plain.components["activations"] == mask + 4 * 512 * 3 * 6 * 16 * 2
    assert masked.settings["padding"] == "padded" and plain.settings["padding"] == "none"


def test_eager_prefill_holds_scores_fp32_softmax_and_copy_at_once():
    """models/llama/modeling_llama.py eager_attention_forward:
    softmax(scores, dim=-1, dtype=float32).to(query.dtype) holds the bf16 scores, the fp32 softmax and the bf16
    copy at once: 8 B per score element, heads x seq x seq for one layer at a time; K/V go through repeat_kv;
    the eager mask (masking_utils eager_mask) is a (batch, 1, seq, seq) tensor in the compute dtype. At 8192
    tokens the scores are the widest block: b x s x (residual + normed input (2 x 64 x 2) + q, rotated q, k,
    rotated k, v, out (6 x 128 x 2) + 8 heads x 8192 x 8) + s^2 x 2."""
    spec = spec_of(LLAMA)
    eager = estimate(spec, Settings(seq_len=8192, attention="eager")).inference.components["activations"]
    per_token = 2 * 64 * 2 + 6 * 128 * 2 + 8 * 8192 * 8
    assert eager == 8192 * per_token + 8192 * 8192 * 2


def test_t5_runs_eager_and_a_one_token_decoder_caches_one_token():
    """T5 materialises its scores whatever --attention says (transformers 4.x: no SDPA class; 5.x: the position
    bias is a float mask of the scores' shape). Its cache (EncoderDecoderCache) holds decoder self-attention K/V
    per generated token and cross-attention K/V per encoder token: 3 decoder layers x (1 + 512) tokens x 2 x 4
    heads x 16 x 2 B for one decoder token over a 512-token input."""
    report = estimate(spec_of(T5), Settings(seq_len=512, decoder_len=1))
    assert report.inference.settings["attention_used"] == "eager" == report.training.settings["attention_used"]
    assert report.inference.settings["decoder_len"] == 1
    assert any("position bias" in w for w in report.warnings)
    assert report.inference.components["kv_cache"] == 3 * (1 + 512) * 2 * 4 * 16 * 2


def test_encoder_decoder_activations_follow_both_lengths():
    """T5 training, encoder over 512 tokens and decoder over 32: the logits cover the decoder's positions only
    (batch x 32 x vocab x 12 B at the loss backward), and the cross-attention keys are projected from the
    512 encoder tokens: a longer decoder adds decoder rows, not encoder ones."""
    spec = spec_of(T5)
    short = estimate(spec, Settings(seq_len=512, decoder_len=32)).training
    loss = next(f for f in short.formulas if f.name == "logits/loss")
    assert loss.inputs["logit_elements"] == 32 * 1000
    assert loss.result_bytes == 32 * 1000 * 12
    assert saved(T5, decoder_len=64, eager=True) > saved(T5, decoder_len=32, eager=True)


def test_moe_routing_keeps_each_experts_output_and_the_indices_in_lora():
    """models/mixtral/modeling_mixtral.py MixtralExperts: per routed (token, expert) pair, with frozen experts
    (LoRA): silu saves the gate output, the product saves the activation and up (3 x 96 x 2 B); the expert output
    (64 x 2 B) is saved by its product with the fp32 routing weight (4 B, saved too); torch.where's token and
    slot indices (2 x int64) are saved by the gather, the weight lookup and index_add_. MixtralTopKRouter: the
    fp32 softmax over 4 experts (saved) and top-k's int64 indices (2 x 8 B). Per token and layer: 2 pairs x
    (576 + 128 + 16 + 4) + 16 + 16 B."""
    moe = saved(MIXTRAL, trainable=False)
    dense = saved(MIXTRAL | {"num_local_experts": 0}, trainable=False)  # the same layer with one dense MLP
    per_token_moe = 2 * (3 * 96 * 2 + 64 * 2 + 2 * 8 + 4) + 4 * 4 + 2 * 8
    per_token_dense = 3 * 96 * 2
    assert moe - dense == 2 * 512 * (per_token_moe - per_token_dense)


def test_logits_for_every_position_stay_in_the_compute_dtype():
    """A plain forward (LlamaForCausalLM.forward: logits = self.lm_head(hidden_states)) keeps bf16 logits and
    upcasts nothing outside the loss; generate() copies only the last position to fp32
    (generation/utils.py: outputs.logits[:, -1].to(copy=True, dtype=torch.float32)). With a 100,000-token
    vocabulary the logits are the largest prefill buffer: 2 x 512 x 100,000 x 2 B."""
    spec = spec_of(LLAMA | {"vocab_size": 100_000})
    every = estimate(spec, Settings(batch_size=2, seq_len=512, logits="all")).inference
    last = estimate(spec, Settings(batch_size=2, seq_len=512)).inference
    assert every.components["activations"] == 2 * 512 * 100_000 * 2
    logits = next(f for f in last.formulas if f.name == "logits")
    assert logits.result_bytes == 2 * 100_000 * (2 + 4)


def test_what_if_says_why_checkpointing_saves_nothing():
    """A short sequence: full training peaks at the optimizer step (gradients + states + AdamW's foreach
    temporary), which holds no activations, so checkpointing cannot lower it; the row says so. LoRA at the same
    length peaks in the loss backward, and checkpointing saves there: no reason."""
    rows = what_if(spec_of(LLAMA), Settings(seq_len=16))
    training = next(r for r in rows if r.mode == "training" and r.change == "gradient checkpointing")
    assert training.saving_bytes == 0 and training.reason == OPTIMIZER_PEAK
    assert training.to_dict()["reason"] == OPTIMIZER_PEAK
    baseline = next(r for r in rows if r.mode == "training" and r.change == "baseline")
    assert baseline.reason is None
    shown = " ".join(render_what_if(rows).split())
    assert f"training, gradient checkpointing: saves nothing, {OPTIMIZER_PEAK}" in shown


@pytest.mark.parametrize("args", [["--padding", "padded"], ["--decoder-len", "7"]])
def test_cli_padding_and_decoder_len_reach_the_settings(hub_repo, args):
    hub_repo("hfmem-test/tiny-llama")
    result = CliRunner().invoke(cli, ["inspect", "hfmem-test/tiny-llama", "--json", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    settings = json.loads(result.stdout)["memory"]["training"]["settings"]
    if args[0] == "--padding":
        assert settings["padding"] == "padded"
    else:  # a decoder-only model has no decoder length apart
        assert "decoder_len" not in settings and settings["padding"] == "none"
