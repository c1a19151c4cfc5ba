"""Hostile config.json files in a local directory: whatever JSON a config holds, `inspect` and `check` give a
report whose numbers are non-negative and whose totals are the sums of their components, or a typed one-line
error; never an internal error, and never work that grows with a number the headers do not confirm."""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from hfmem.api import inspect_model
from hfmem.checks import check_model
from hfmem.cli import cli
from hfmem.errors import ConfigError, HfmemError
from hfmem.gpus import find_gpu
from hfmem.header import Tensor, write_header
from hfmem.views.json import error_dict, to_dict
from tests.fakehub import FIXTURES

TINY = FIXTURES / "hfmem-test__tiny-llama"
LLAMA = json.loads((TINY / "config.json").read_text())
TENSORS = [Tensor(name, t["dtype"], tuple(t["shape"])) 
           for name, t in json.loads((TINY / "tensors.json").read_text()).items()]
HEADER = write_header(TENSORS)
H100 = find_gpu("H100")

# The tiny Llama turned into the other layouts config.py reads: MoE (Qwen and DeepSeek rules), MLA, sliding
# windows, T5, BERT, GPT-2 and a LLaVA wrapper, so that every number they read gets mutated.
MOE = {**LLAMA, "model_type": "qwen2_moe", "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
       "shared_expert_intermediate_size": 64, "decoder_sparse_step": 1, "mlp_only_layers": [1],
       "use_sliding_window": True, "sliding_window": 64, "max_window_layers": 1}
MLA = {**LLAMA, "model_type": "deepseek_v3", "kv_lora_rank": 16, "q_lora_rank": 24, "qk_nope_head_dim": 8,
       "qk_rope_head_dim": 8, "v_head_dim": 8, "num_experts": 4, "num_experts_per_tok": 2, "num_shared_experts": 1,
       "moe_intermediate_size": 32, "first_k_dense_replace": 1, "moe_layer_freq": 1}
GEMMA3 = {**LLAMA, "model_type": "gemma3_text", "sliding_window": 64, "sliding_window_pattern": 2}
T5 = {"model_type": "t5", "d_model": 64, "d_kv": 16, "d_ff": 128, "num_layers": 2, "num_decoder_layers": 2,
      "num_heads": 4, "vocab_size": 256, "relative_attention_num_buckets": 32, "feed_forward_proj": "gated-gelu"}
BERT = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 128, "vocab_size": 256, "max_position_embeddings": 512,
        "type_vocab_size": 2}
GPT2 = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 512, "n_inner": None,
        "vocab_size": 256}
VISION = {"model_type": "clip_vision_model", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
          "image_size": 64, "patch_size": 16, "num_channels": 3}


def llava(text: dict[str, Any]) -> dict[str, Any]:
    return {"model_type": "llava", "architectures": ["LlavaForConditionalGeneration"], "text_config": dict(text),
            "vision_config": dict(VISION), "vision_feature_layer": -2}  # fmt: skip


BASES = {"llama": LLAMA, "moe": MOE, "mla": MLA, "gemma3": GEMMA3, "t5": T5, "bert": BERT, "gpt2": GPT2,
         "llava": llava(LLAMA)}  # fmt: skip
HOSTILE: list[Any] = [-1, 0, 10**30, 1e308, "12", [], {}, None, True]
# Every number a base config holds, plus what config.py and spec.py read when it is present.
EXTRA_KEYS = ["num_key_value_heads", "head_dim", "num_experts", "layer_types", "text_config", "vision_config",
              "quantization_config", "architectures", "model_type", "torch_dtype", "tie_word_embeddings"]  # fmt: skip


def numeric_keys(config: dict[str, Any]) -> list[str]:
    return [k for k, v in config.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]


def write_model(folder: Path, config: Any, weights: str = "safetensors") -> Path:
    """A local model: config.json (any JSON value, or raw text) and the tiny Llama's headers, or a pickle stub so
    that the counts come from the config."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    for name in ("model.safetensors", "pytorch_model.bin"):
        (folder / name).unlink(missing_ok=True)
    if weights == "safetensors":
        (folder / "model.safetensors").write_bytes(HEADER)
    else:
        (folder / "pytorch_model.bin").write_bytes(bytes(64))
    return folder


def numbers(value: Any) -> Iterator[int | float]:
    """Every number in a report, but a what-if row's saving (a change may cost more than it saves)."""
    if isinstance(value, dict):
        value = [v for k, v in value.items() if k != "saves_bytes"]
    if isinstance(value, list):
        for item in value:
            yield from numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def assert_sound(data: dict[str, Any]) -> None:
    """A report (the --json shape) with non-negative numbers and totals that are sums, or a typed error."""
    if "error" in data:
        assert data["error"]["type"] not in ("internal", "error"), data["error"]
        assert "\n" not in data["error"]["message"] and len(data["error"]["message"]) < 300
        return
    assert all(n >= 0 and math.isfinite(n) for n in numbers(data)), data
    for name, estimate in data["memory"].items():
        assert estimate["total_bytes"] == sum(estimate["components"].values()), name


def through_api(folder: Path) -> dict[str, Any]:
    """check_model on `folder`, and the report it made as --json gives it, or the error object (a check without a
    report is one whose estimate failed: inspect_model raises why)."""
    try:
        return to_dict(check_model(str(folder), gpu=H100).report or inspect_model(str(folder)))
    except HfmemError as e:
        return error_dict(str(folder), e)


def through_cli(folder: Path) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["inspect", str(folder), "--json", "--gpu", "H100"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code in (0, 2)
    return json.loads(result.stdout)


def mutated(base: dict[str, Any], key: str, value: Any, section: str | None = None) -> dict[str, Any]:
    config = json.loads(json.dumps(base))
    (config[section] if section else config)[key] = value
    return config


@pytest.mark.parametrize("weights", ["safetensors", "pickle"])
@pytest.mark.parametrize("base", ["llama", "moe", "mla", "llava"])
def test_every_number_set_to_every_hostile_value(base, weights, tmp_path):
    """The Llama's keys at the top level and in a LLaVA's text_config, the vision tower's, and what MoE and MLA
    layouts add."""
    config = BASES[base]
    sections: list[str | None] = ["text_config", "vision_config"] if base == "llava" else [None]
    for section in sections:
        keys = numeric_keys(config[section] if section else config) + (EXTRA_KEYS if section != "vision_config" else [])
        if base in ("moe", "mla"):
            keys = [key for key in keys if key not in LLAMA]
        for key in keys:
            for value in HOSTILE:
                assert_sound(through_api(write_model(tmp_path, mutated(config, key, value, section), weights)))


QUANTIZATION = [{"quant_method": "gptq", "bits": v} for v in HOSTILE + [2.5, "abc", 65, float("inf")]] + [
    {"quant_method": value, "w_bit": 4} for value in HOSTILE
] + [{"load_in_4bit": value} for value in HOSTILE]  # fmt: skip


@pytest.mark.parametrize("weights", ["safetensors", "pickle"])
def test_quantization_config_variants(weights, tmp_path):
    for quantization in QUANTIZATION:
        for config in [{**LLAMA, "quantization_config": quantization},
                       {**llava(LLAMA), "text_config": {**LLAMA, "quantization_config": quantization}}]:
            assert_sound(through_api(write_model(tmp_path, config, weights)))


def test_a_seeded_mutation_grid_through_the_cli(tmp_path):
    """Several keys at once, in every layout, through `hfmem inspect DIR --json`."""
    rng = random.Random(11)
    values = HOSTILE + [float("inf"), float("nan"), 2.5, 10**9, 10_001, -(10**30), "x" * 1000, [[[]]]]
    for _ in range(40):
        name = rng.choice(sorted(BASES))
        config = json.loads(json.dumps(BASES[name]))
        section = config.get(rng.choice(["text_config", "vision_config"])) if name == "llava" else config
        for key in rng.sample(numeric_keys(section) + EXTRA_KEYS, 3):
            section[key] = rng.choice(values)
        assert_sound(through_cli(write_model(tmp_path, config, rng.choice(["safetensors", "pickle"]))))


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 200_000 + "]" * 200_000,  # nested past the parser's recursion limit
        '{"model_type": "llama", "num_hidden_layers": ' + "9" * 5000 + "}",  # past Python's integer digit limit
        '{"model_type": "llama", "vocab_size": 1e999}',  # Infinity
        '{"model_type": "llama", "hidden_size": NaN}',
        "\xff\xfe not UTF-8",
        "[]",
        '"a string"',
        "",
    ],
    ids=["deep", "huge-int", "infinity", "nan", "not-utf8", "list", "string", "empty"],
)
def test_configs_that_are_not_usable_json(raw, tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_bytes(raw.encode("latin-1"))
    (folder / "model.safetensors").write_bytes(write_header(TENSORS))
    data = through_cli(folder)
    assert data["error"]["type"] == "bad_config", data
    assert len(data["error"]["message"]) < 200


IMPOSSIBLE = [
    ({**LLAMA, "num_hidden_layers": 10**9}, "num_hidden_layers"),
    ({**LLAMA, "num_hidden_layers": 1e308}, "num_hidden_layers"),
    ({**LLAMA, "num_hidden_layers": -1}, "num_hidden_layers"),
    ({**LLAMA, "hidden_size": -64}, "hidden_size"),
    ({**LLAMA, "max_position_embeddings": -1}, "max_position_embeddings"),
    ({**LLAMA, "vocab_size": 10**30}, "vocab_size"),
    ({**GPT2, "n_layer": 10**9}, "n_layer"),  # named as the file spells it
    (llava({**LLAMA, "num_hidden_layers": 10**9}), "text_config.num_hidden_layers"),
    ({**LLAMA, "layer_types": ["full_attention"] * 10_001}, "layer_types"),
    ({**LLAMA, "quantization_config": {"quant_method": "gptq", "bits": 0.5}}, "quantization_config.bits"),
]


@pytest.mark.parametrize(
    "config, key, weights",
    [(config, key, weights) for config, key in IMPOSSIBLE for weights in ("safetensors", "pickle")]
    # the vision tower is read only to count parameters from the config
    + [({**llava(LLAMA), "vision_config": {**VISION, "patch_size": 0}}, "vision_config.patch_size", "pickle")],
)
def test_impossible_numbers_are_config_errors_at_once(config, key, weights, tmp_path):
    folder = write_model(tmp_path / "model", config, weights)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=rf"^config\.json {key} (is|has) .{{1,60}}: not a plausible ") as raised:
        inspect_model(str(folder))
    assert time.perf_counter() - start < 0.5
    assert raised.value.code == "bad_config" and len(str(raised.value)) < 150


def test_a_billion_layers_through_the_cli_is_a_quick_bad_config(tmp_path):
    folder = write_model(tmp_path / "model", {**LLAMA, "num_hidden_layers": 10**9}, "pickle")
    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["inspect", str(folder)])
    assert time.perf_counter() - start < 0.5
    assert result.exit_code == 2
    assert result.stderr == (
        "hfmem: error: config.json num_hidden_layers is 1000000000: not a plausible value (0 to 10,000)\n"
    )


@pytest.mark.parametrize("weights", ["safetensors", "pickle"])
def test_plausible_extremes_still_work(weights, tmp_path):
    """At the bounds the report is built, in bounded time, with exact arithmetic on the large numbers."""
    config = {**LLAMA, "num_hidden_layers": 10_000, "hidden_size": 10**7, "intermediate_size": 10**7,
              "vocab_size": 10**9, "max_position_embeddings": 10**9, "head_dim": None}  # fmt: skip
    start = time.perf_counter()
    data = to_dict(inspect_model(str(write_model(tmp_path, config, weights))))
    assert time.perf_counter() - start < 20
    assert_sound(data)
    assert data["architecture"]["num_hidden_layers"] == 10_000


STATE_FAMILIES = ["mamba-130m-hf", "mamba-codestral-7b-v0.1", "jamba-v0.1", "qwen3-next-80b-a3b-instruct",
                  "lfm2-1.2b", "falcon-h1-0.5b", "granite-4.0-h-1b", "zamba2-2.7b", "qwen2.5-vl-3b-instruct"]


@pytest.mark.parametrize("weights", ["safetensors", "pickle"])
@pytest.mark.parametrize("family", STATE_FAMILIES)
def test_state_space_hybrid_and_vision_configs_take_every_hostile_value(family, weights, tmp_path):
    """Every number of a real state-space, hybrid or vision-language config.json (fixtures/configs), and of its
    nested text or vision config, set to each hostile value: a sound report or a one-line error."""
    config = json.loads((Path(__file__).parents[1] / "fixtures" / "configs" / f"{family}.json").read_text())
    sections = [None] + [key for key in ("text_config", "vision_config") if isinstance(config.get(key), dict)]
    for section in sections:
        for key in numeric_keys(config[section] if section else config):
            for value in HOSTILE:
                assert_sound(through_api(write_model(tmp_path, mutated(config, key, value, section), weights)))
