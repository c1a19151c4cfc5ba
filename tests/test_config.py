"""config.json normalisation (hfmem.config) against the dataset's ground truth, plus synthetic configs."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from hfmem.architecture import Architecture
from hfmem.config import MAX_LAYERS, checked_int, read_architecture
from hfmem.errors import ConfigError, UnsupportedModel
from hfmem.spec import config_parameters
from tests.dataset import DATASET, config, expected, model_dirs, needs_dataset, repo_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
WITH_TRUTH = model_dirs(with_ground_truth=True)
CONFIG_ONLY = sorted(set(model_dirs()) - set(WITH_TRUTH))

# expected.json dims -> Architecture fields (the rest of dims share the Architecture name).
MOE_FIELDS = {
    "num_experts": "num_experts",
    "experts_per_token": "num_experts_per_tok",
    "moe_intermediate_size": "moe_intermediate_size",
    "shared_experts": "num_shared_experts",
}


def model(repo: str) -> Path:
    return DATASET / "models" / repo.replace("/", "__", 1)


def arch_of(repo: str) -> Architecture:
    arch, _ = read_architecture(config(model(repo)))
    return arch


@needs_dataset
@pytest.mark.parametrize("model_dir", WITH_TRUTH, ids=repo_id)
def test_dims_match_ground_truth(model_dir: Path) -> None:
    arch, warnings = read_architecture(config(model_dir))
    truth = expected(model_dir)
    for key, value in truth["dims"].items():
        if key == "moe":
            for moe_key, field in MOE_FIELDS.items():
                assert getattr(arch, field) == value[moe_key], field
        elif key == "mla":
            for field, rank in value.items():
                assert getattr(arch, field) == rank, field
        else:
            assert getattr(arch, key) == value, key
    assert arch.tie_word_embeddings == truth["tied_word_embeddings"]
    assert arch.model_type == truth["model_type"]
    assert warnings == []


@needs_dataset
@pytest.mark.parametrize("model_dir", WITH_TRUTH, ids=repo_id)
def test_config_parameters_match_ground_truth(model_dir: Path) -> None:
    """Exact today for every family in the dataset, MoE included (the contract asks for 0.5 % on dense models)."""
    params = expected(model_dir)["params"]
    tables = params["embedding"]
    total, embedding = config_parameters(read_architecture(config(model_dir))[0], config(model_dir))
    assert total == params["total"]
    assert embedding == sum(
        tables[k] for k in ("input_embedding", "other_embedding_tables", "untied_output_projection")
    )


@needs_dataset
@pytest.mark.parametrize("model_dir", CONFIG_ONLY, ids=repo_id)
def test_config_only_models_are_sane(model_dir: Path) -> None:
    arch, _ = read_architecture(config(model_dir))
    for field in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
                  "intermediate_size", "vocab_size", "max_position_embeddings"):  # fmt: skip
        value = getattr(arch, field)
        assert isinstance(value, int) and value > 0, field
    assert arch.attention in {"mha", "gqa", "mqa", "mla"}
    total, embedding = config_parameters(arch, config(model_dir))
    assert 0 < embedding < total


@needs_dataset
@pytest.mark.parametrize(
    ("repo", "kind"),
    [
        ("meta-llama/Llama-3.1-8B", "gqa"),
        ("meta-llama/Llama-2-7b-hf", "mha"),
        ("openai-community/gpt2", "mha"),
        ("google/gemma-2b", "mqa"),
        ("deepseek-ai/DeepSeek-V3", "mla"),
        ("openai/gpt-oss-20b", "gqa"),
        ("google-bert/bert-base-uncased", "mha"),
    ],
)
def test_attention_kind(repo: str, kind: str) -> None:
    assert arch_of(repo).attention == kind


@needs_dataset
def test_family_facts() -> None:
    assert arch_of("google-bert/bert-base-uncased").is_encoder_only
    t5 = arch_of("google-t5/t5-small")
    assert t5.is_encoder_decoder and not t5.is_encoder_only and t5.num_decoder_layers == 6
    assert not t5.gated_mlp and t5.hidden_act == "relu"
    assert not arch_of("openai-community/gpt2").gated_mlp
    assert not arch_of("bigcode/starcoder2-7b").gated_mlp
    assert arch_of("meta-llama/Llama-3.1-8B").gated_mlp
    v3 = arch_of("deepseek-ai/DeepSeek-V3")
    assert (v3.kv_lora_rank, v3.qk_rope_head_dim, v3.head_dim) == (512, 64, 64)
    llava = arch_of("llava-hf/llava-1.5-7b-hf")
    assert (llava.model_type, llava.architectures) == ("llava", ("LlavaForConditionalGeneration",))
    assert arch_of("deepseek-ai/DeepSeek-V2-Lite").q_lora_rank == 1536  # DeepseekV2Config default for the omitted key


@needs_dataset
def test_an_explicit_null_q_lora_rank_means_q_proj() -> None:
    """DeepSeek-V2-Lite's Hub config.json says "q_lora_rank": null (the dataset's copy omits the key, which
    DeepseekV2Config then fills with 1536). Null reaches the model as None and modeling_deepseek_v2.py
    DeepseekV2Attention builds q_proj (hidden -> heads x (nope + rope)) instead of q_a_proj, q_a_layernorm and
    q_b_proj: per layer 2,048 x 16 x 192 in place of 2,048 x 1,536 + 1,536 + 1,536 x 3,072, over 27 layers."""
    raw = {**config(model("deepseek-ai/DeepSeek-V2-Lite")), "q_lora_rank": None}
    arch, warnings = read_architecture(raw)
    assert arch.q_lora_rank is None and arch.kv_lora_rank == 512 and warnings == []
    omitted = config_parameters(arch_of("deepseek-ai/DeepSeek-V2-Lite"), config(model("deepseek-ai/DeepSeek-V2-Lite")))
    per_layer = 2_048 * 16 * 192 - (2_048 * 1_536 + 1_536 + 1_536 * 3_072)
    assert config_parameters(arch, raw)[0] == omitted[0] + 27 * per_layer == 15_706_484_224


def _kinds(arch: Architecture) -> str:
    assert arch.layer_types is not None
    return "".join("S" if t == "sliding_attention" else "F" for t in arch.layer_types)


@needs_dataset
def test_sliding_layouts() -> None:
    gemma2 = arch_of("google/gemma-2-2b-it")  # even layers slide
    assert (_kinds(gemma2), gemma2.sliding_window) == ("SF" * 13, 4096)
    gemma3 = arch_of("google/gemma-3-1b-it")  # every 6th layer is global
    assert (_kinds(gemma3), gemma3.sliding_window) == (("SSSSSF" * 5)[:26], 512)
    oss = arch_of("openai/gpt-oss-20b")  # explicit layer_types
    assert (_kinds(oss), oss.sliding_window) == ("SF" * 12, 128)
    starcoder = arch_of("bigcode/starcoder2-7b")  # Mistral-style window on every layer
    assert (_kinds(starcoder), starcoder.sliding_window) == ("S" * 32, 4096)
    for repo in (
        "mistralai/Mistral-7B-Instruct-v0.3",  # sliding_window: null
        "Qwen/Qwen2.5-7B",  # use_sliding_window: false
        "microsoft/Phi-3.5-mini-instruct",  # window 262144 is longer than the context
        "meta-llama/Llama-3.1-8B",
    ):
        arch = arch_of(repo)
        assert (arch.layer_types, arch.sliding_window) == (None, None), repo


# --- synthetic configs (no dataset needed) ---


def test_unknown_model_type_uses_aliases_and_warns() -> None:
    arch, warnings = read_architecture(
        {"model_type": "mystery", "n_embd": 256, "n_layer": 4, "n_head": 8, "n_positions": 512, "vocab_size": 1000}
    )
    assert (arch.hidden_size, arch.num_hidden_layers, arch.num_attention_heads) == (256, 4, 8)
    assert (arch.num_key_value_heads, arch.head_dim, arch.max_position_embeddings) == (8, 32, 512)
    assert arch.attention == "mha" and arch.model_type == "mystery"
    assert any("mystery" in w for w in warnings)


@pytest.mark.parametrize("raw", [{}, [], None, "not a config", {"model_type": 7, "text_config": "x"}])
def test_unusable_configs_do_not_crash(raw: object) -> None:
    arch, warnings = read_architecture(raw)
    assert arch.hidden_size is None and arch.attention is None and warnings
    with pytest.raises(UnsupportedModel):
        config_parameters(arch, raw)


def test_bad_value_types_are_warnings() -> None:
    arch, warnings = read_architecture({"model_type": "llama", "hidden_size": "big", "num_hidden_layers": 2.0})
    assert arch.hidden_size is None and arch.num_hidden_layers == 2
    assert any("hidden_size" in w for w in warnings)


def test_llava_text_config_gets_llama_defaults() -> None:
    raw = {
        "model_type": "llava",
        "architectures": ["LlavaForConditionalGeneration"],
        "text_config": {"model_type": "llama", "vocab_size": 32064, "max_position_embeddings": 4096},
        "tie_word_embeddings": False,
    }
    arch, warnings = read_architecture(raw)
    assert (arch.model_type, arch.vocab_size, arch.max_position_embeddings) == ("llava", 32064, 4096)
    assert (arch.hidden_size, arch.intermediate_size, arch.num_hidden_layers, arch.num_attention_heads) == (
        4096, 11008, 32, 32,
    )  # fmt: skip
    assert (arch.num_key_value_heads, arch.head_dim, arch.tie_word_embeddings) == (32, 128, False)
    assert warnings == []


def test_missing_kv_heads_default_to_heads() -> None:
    arch, _ = read_architecture({"model_type": "llama", "num_attention_heads": 16, "hidden_size": 1024})
    assert (arch.num_key_value_heads, arch.head_dim, arch.attention) == (16, 64, "mha")


def test_gpt2_null_n_inner_is_four_times_hidden() -> None:
    arch, _ = read_architecture({"model_type": "gpt2", "n_embd": 64, "n_inner": None})
    assert arch.intermediate_size == 256 and arch.tie_word_embeddings


def test_t5_gated_gelu() -> None:
    arch, _ = read_architecture({"model_type": "t5", "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False})
    assert arch.gated_mlp and arch.hidden_act == "gelu_new" and not arch.tie_word_embeddings
    assert arch.num_decoder_layers == arch.num_hidden_layers == 6


def test_qwen2_sliding_from_max_window_layers() -> None:
    raw = {"model_type": "qwen2", "num_hidden_layers": 4, "use_sliding_window": True, "sliding_window": 1024,
           "max_window_layers": 2, "max_position_embeddings": 32768}  # fmt: skip
    arch, _ = read_architecture(raw)
    assert (_kinds(arch), arch.sliding_window) == ("FFSS", 1024)


def test_mistral_v01_window_on_every_layer() -> None:
    arch, _ = read_architecture({"model_type": "mistral", "num_hidden_layers": 3, "max_position_embeddings": 32768})
    assert (_kinds(arch), arch.sliding_window) == ("SSS", 4096)  # MistralConfig's default window


def test_bare_encoder_has_no_output_projection() -> None:
    arch, _ = read_architecture({"model_type": "bert", "architectures": ["BertModel"]})
    assert arch.is_encoder_only and not arch.tie_word_embeddings
    masked, _ = read_architecture({"model_type": "bert", "architectures": ["BertForMaskedLM"]})
    assert masked.tie_word_embeddings


def test_config_parameters_tiny_llama() -> None:
    raw = {
        "model_type": "llama", "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "intermediate_size": 16, "vocab_size": 10, "tie_word_embeddings": True,
    }  # fmt: skip
    arch, _ = read_architecture(raw)
    # per layer: q 64 + k 32 + v 32 + o 64 + two RMSNorms 16 + gated MLP 384 = 592; embedding 80; final norm 8
    assert config_parameters(arch, raw) == (2 * 592 + 80 + 8, 80)
    untied = dict(raw, tie_word_embeddings=False)
    assert config_parameters(read_architecture(untied)[0], untied) == (2 * 592 + 80 + 8 + 80, 160)


# --- what a config number may be (checked_int) ---


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("hidden_size", 4096, 4096),
        ("hidden_size", 4096.0, 4096),  # written as a float by some exporters
        ("num_hidden_layers", 0, 0),  # an embeddings-only model
        ("num_experts", 0, 0),  # 0 experts: dense
        ("sliding_window", 0, 0),  # 0: no window
        ("num_hidden_layers", MAX_LAYERS, MAX_LAYERS),
        ("vocab_size", 10**9, 10**9),
        ("hidden_size", None, None),
    ],
)
def test_plausible_numbers_pass(name: str, value: object, expected: int | None) -> None:
    warnings: list[str] = []
    assert checked_int(name, name, value, warnings) == expected and warnings == []


@pytest.mark.parametrize("value", ["12", [], {}, True, 2.5])
def test_numbers_of_another_type_are_ignored_with_a_warning(value: object) -> None:
    warnings: list[str] = []
    assert checked_int("hidden_size", "text_config.hidden_size", value, warnings) is None
    assert len(warnings) == 1 and warnings[0].startswith("config.json text_config.hidden_size is ")


@pytest.mark.parametrize(
    "name, value, shown",
    [
        ("num_hidden_layers", -1, "-1"),
        ("hidden_size", 0, "0"),
        ("num_attention_heads", -(10**30), "-1000000000000000000000000000000"),
        ("num_hidden_layers", MAX_LAYERS + 1, "10001"),
        ("num_hidden_layers", 1e308, "1e+308"),
        ("vocab_size", float("inf"), "inf"),
        ("head_dim", float("nan"), "nan"),
        pytest.param("intermediate_size", int("9" * 4300), "9" * 28 + "..." + "9" * 29, id="4300-digits"),
    ],
)
def test_impossible_numbers_are_config_errors(name: str, value: object, shown: str) -> None:
    with pytest.raises(ConfigError, match=rf"^config\.json {name} is {re.escape(shown)}: not a plausible value \("):
        checked_int(name, name, value, [])


def test_a_bad_number_is_named_as_the_file_spells_it() -> None:
    with pytest.raises(ConfigError, match=r"^config\.json text_config\.n_layer is -2: "):
        read_architecture({"model_type": "llava", "text_config": {"model_type": "gpt2", "n_layer": -2}})


def test_deeply_nested_or_huge_values_are_shown_short() -> None:
    deep: object = []
    for _ in range(500):
        deep = [deep]
    _, warnings = read_architecture({"model_type": "x" * 10_000, "hidden_size": deep, "vocab_size": "y" * 10_000})
    assert warnings and all(len(w) < 200 for w in warnings)


def test_too_many_layer_types_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="layer_types has 10,001 entries"):
        read_architecture({"model_type": "llama", "layer_types": ["full_attention"] * (MAX_LAYERS + 1)})


@pytest.mark.parametrize(
    "vision, error",
    [
        ({"patch_size": 0}, "vision_config.patch_size is 0"),
        ({"num_hidden_layers": -1}, "vision_config.num_hidden_layers is -1"),
        ({"image_size": 10**30}, "vision_config.image_size is 1000000000000000000000000000000"),
        ({"model_type": ["clip_vision_model"]}, None),  # not a tower hfmem models: the language model alone
        ({"patch_size": "14"}, None),  # not an integer: the default
    ],
)
def test_vision_tower_numbers(vision: dict, error: str | None) -> None:
    raw = {"model_type": "llava", "text_config": {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 1,
           "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 100},
           "vision_config": {"model_type": "clip_vision_model", **vision}}  # fmt: skip
    arch, _ = read_architecture(raw)
    if error:
        with pytest.raises(ConfigError, match=re.escape(error)):
            config_parameters(arch, raw)
    else:
        total, embedding = config_parameters(arch, raw)
        assert total > embedding > 0


def test_mlp_only_layers_is_read_once_not_per_layer() -> None:
    raw = {"model_type": "qwen2_moe", "hidden_size": 8, "num_hidden_layers": MAX_LAYERS, "num_attention_heads": 2,
           "intermediate_size": 16, "vocab_size": 10, "num_experts": 4, "moe_intermediate_size": 4,
           "shared_expert_intermediate_size": 0,
           "mlp_only_layers": list(range(0, 2_000_000, 2)) + [{}, "x"]}  # fmt: skip
    arch, _ = read_architecture(raw)
    start = time.perf_counter()
    total, _ = config_parameters(arch, raw)
    assert time.perf_counter() - start < 1
    moe_only = dict(raw, mlp_only_layers=[])
    dense_layers = MAX_LAYERS // 2
    difference = config_parameters(arch, moe_only)[0] - total
    per_layer_moe, per_layer_dense = 4 * 8 + 4 * 3 * 8 * 4, 3 * 8 * 16  # router + experts; dense gated MLP
    assert difference == dense_layers * (per_layer_moe - per_layer_dense)


def test_qwen2_5_vl_text_config_is_a_known_family() -> None:
    """Qwen2.5-VL-3B-Instruct's config.json as transformers 4.52 saves it (fixtures/configs/: a parameter-counting
    test in a public repository keeps it whole): the language model sits in text_config with model_type
    qwen2_5_vl_text, tie_word_embeddings only there. Qwen2_5_VLTextModel's decoder layer is Qwen2's: q/k/v with
    bias, o without (modeling_qwen2_5_vl.py Qwen2_5_VLAttention). Per layer q 2,048^2 + 2,048, k/v 2 x (2,048 x 256
    + 256), o 2,048^2, MLP 3 x 2,048 x 11,008, 2 norms: 77,076,992; 36 layers, tied embeddings 151,936 x 2,048 and
    the final norm. (The published 3.75B adds the vision tower, which this list does not build.)"""
    raw = json.loads((FIXTURES / "configs" / "qwen2.5-vl-3b-instruct.json").read_text())
    arch, warnings = read_architecture(raw)
    assert warnings == [] and arch.tie_word_embeddings and arch.sliding_window is None
    assert (arch.num_key_value_heads, arch.head_dim, arch.vocab_size) == (2, 128, 151_936)
    assert config_parameters(arch, raw) == (36 * 77_076_992 + 151_936 * 2_048 + 2_048, 151_936 * 2_048)
    # Older files keep the text keys at the top level (model_type qwen2_vl / qwen2_5_vl); a text_config without
    # its model_type takes the composite's text family; both read Qwen2VLTextConfig's defaults for what is absent.
    for flat in ({"model_type": "qwen2_vl"}, {"model_type": "qwen2_5_vl", "text_config": {}}):
        arch, warnings = read_architecture(flat)
        assert warnings == []
        assert (arch.hidden_size, arch.intermediate_size, arch.vocab_size) == (8_192, 29_568, 152_064)
