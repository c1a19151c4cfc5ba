"""What the safetensors headers prove when config.json is silent, and checkpoints that contradict their config."""

from __future__ import annotations

from hfmem.header import Header, Tensor
from hfmem.memory import Settings, estimate
from hfmem.memory.facts import analyse
from hfmem.snapshot import Snapshot
from hfmem.spec import ModelSpec, build_spec


def spec_with(config: dict, tensors: list[Tensor]) -> ModelSpec:
    return build_spec(Snapshot("m", "m", None, None, "local", (), config, {"model.safetensors": Header(tuple(tensors))}))


def layers(n: int, hidden: int, kv_width: int, dtype: str = "BF16", experts: int = 0) -> list[Tensor]:
    out = [Tensor("model.embed_tokens.weight", dtype, (100, hidden))]
    for i in range(n):
        p = f"model.layers.{i}"
        out += [Tensor(f"{p}.self_attn.q_proj.weight", dtype, (hidden, hidden)),
                Tensor(f"{p}.self_attn.k_proj.weight", dtype, (kv_width, hidden)),
                Tensor(f"{p}.self_attn.v_proj.weight", dtype, (kv_width, hidden)),
                Tensor(f"{p}.self_attn.o_proj.weight", dtype, (hidden, hidden))]  # fmt: skip
        if experts:
            out.append(Tensor(f"{p}.mlp.experts.*.up_proj.weight", dtype, (32, hidden), count=experts))
    return out


def test_an_unknown_family_takes_layers_kv_heads_and_experts_from_the_headers() -> None:
    """model_type "newarch" names no layer count, KV heads or experts: the headers hold 3 layers, k_proj 64 wide
    (2 heads of 256 / 8 = 32) and 4 experts per layer. KV per token = 3 layers x 2 x 64 x 2 B."""
    config = {"model_type": "newarch", "hidden_size": 256, "num_attention_heads": 8, "vocab_size": 100,
              "torch_dtype": "bfloat16"}  # fmt: skip
    spec = spec_with(config, layers(3, 256, 64, experts=4))
    facts = analyse(spec)
    assert (facts.dims.decoder_layers, facts.dims.kv_heads, facts.dims.head_dim) == (3, 2, 32)
    assert facts.dims.experts == 4
    guessed = [w for w in facts.warnings if "taken from" in w]
    assert len(guessed) == 3 and any("num_key_value_heads 2" in w for w in guessed)
    kv = estimate(spec, Settings(seq_len=10)).inference.components["kv_cache"]
    assert kv == 10 * 3 * 2 * 64 * 2


def test_a_quantization_config_over_float_tensors_is_named() -> None:
    config = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 128, "vocab_size": 100, "quantization_config": {"quant_method": "mxfp4"}}
    facts = analyse(spec_with(config, layers(2, 64, 64, dtype="F32")))
    assert any("quantization_config says mxfp4" in w and "F32" in w for w in facts.warnings)


def test_a_float_dtype_other_than_torch_dtype_is_no_contradiction() -> None:
    config = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 128, "vocab_size": 100, "torch_dtype": "bfloat16"}
    facts = analyse(spec_with(config, layers(2, 64, 64, dtype="F32")))
    assert not [w for w in facts.warnings if "checkpoint" in w or "k_proj" in w]


def test_fewer_layers_and_other_kv_widths_than_the_config_says_are_named() -> None:
    config = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 4, "intermediate_size": 128, "vocab_size": 100}
    facts = analyse(spec_with(config, layers(2, 64, 32)))
    assert "config.json has 4 layers, but the checkpoint holds 2" in facts.warnings
    assert any(w.startswith("k_proj is 32 wide, not num_key_value_heads x head_dim = 4 x 16") for w in facts.warnings)


def test_hidden_vocab_and_mlp_width_come_from_the_tables_when_the_config_has_none() -> None:
    """Only the heads are configured: the input embedding (100 x 256) gives hidden and vocabulary, up_proj
    (512 x 256) the MLP width, k_proj (64 x 256) 2 KV heads of 256 / 8 = 32."""
    tensors = layers(2, 256, 64) + [Tensor(f"model.layers.{i}.mlp.up_proj.weight", "BF16", (512, 256)) for i in (0, 1)]
    facts = analyse(spec_with({"model_type": "newarch", "num_attention_heads": 8}, tensors))
    d = facts.dims
    assert (d.hidden, d.vocab, d.intermediate, d.decoder_layers, d.kv_heads) == (256, 100, 512, 2, 2)
    assert sum("taken from" in w for w in facts.warnings) == 4
