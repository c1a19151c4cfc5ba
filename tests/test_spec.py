"""build_spec: exact counts from headers, checked against the dataset's ground truth and synthetic cases."""

import math
import re

import pytest

from hfmem.api import report_for
from hfmem.errors import ConfigError
from hfmem.header import Header, Tensor, parse_header, write_header
from hfmem.memory import Optimizer, Settings
from hfmem.snapshot import RepoFile, Snapshot
from hfmem.spec import build_spec, read_quantization
from tests import dataset
from tests.dataset import needs_dataset

GROUND_TRUTH = dataset.model_dirs(with_ground_truth=True)


def snapshot_of(config: dict, tensors: list[Tensor], files: tuple[RepoFile, ...] = ()) -> Snapshot:
    headers = {"model.safetensors": Header(tuple(tensors))} if tensors else {}
    return Snapshot("org/model", "org/model", None, "c" * 40, "hub", files, config, headers)


def dataset_tensors(model_dir) -> list[Tensor]:
    return [Tensor(name, t["dtype"], tuple(t["shape"])) for name, t in dataset.tensors(model_dir).items()]


@needs_dataset
@pytest.mark.parametrize("model_dir", GROUND_TRUTH, ids=[dataset.repo_id(d) for d in GROUND_TRUTH])
def test_counts_equal_ground_truth(model_dir):
    expected = dataset.expected(model_dir)
    spec = build_spec(snapshot_of(dataset.config(model_dir), dataset_tensors(model_dir)))
    params = expected["params"]
    assert spec.parameters.total == params["checkpoint_elements"]
    assert spec.parameters.by_dtype == params["checkpoint_elements_by_dtype"]
    assert spec.files.weights_bytes == params["checkpoint_bytes_at_listed_dtypes"]
    emb = params["embedding"]
    assert spec.parameters.embedding == (
        emb["input_embedding"] + emb["other_embedding_tables"] + emb["untied_output_projection"]
    )
    if params["active_per_token"] is None:
        assert spec.parameters.active is None
    else:
        # Persistent buffers saved in the checkpoint (DeepSeek's e_score_correction_bias) are always active.
        buffers = params["checkpoint_elements"] - params["total"]
        assert spec.parameters.active == params["active_per_token"] + buffers


def test_tied_weights_are_counted_once_as_stored():
    config = {"model_type": "llama", "hidden_size": 4, "vocab_size": 10, "tie_word_embeddings": True}
    tensors = [Tensor("model.embed_tokens.weight", "BF16", (10, 4)), Tensor("model.norm.weight", "BF16", (4,))]
    spec = build_spec(snapshot_of(config, tensors))
    assert spec.parameters.total == 44
    assert spec.parameters.embedding == 40
    assert spec.dtype == "bfloat16"


def test_dtype_from_headers_when_the_config_has_none():
    tensors = [Tensor("a.weight", "F16", (4, 4)), Tensor("b.weight", "F32", (2,))]
    spec = build_spec(snapshot_of({"model_type": "gpt2"}, tensors))
    assert spec.dtype == "float16"
    assert spec.parameters.by_dtype == {"F16": 16, "F32": 2}


def test_newer_dtype_key_wins_over_headers():
    spec = build_spec(snapshot_of({"model_type": "bert", "dtype": "float32"}, [Tensor("x.weight", "F16", (2,))]))
    assert spec.dtype == "float32"


def test_moe_active_counts_routed_experts_k_over_e():
    config = {"model_type": "mixtral", "num_local_experts": 4, "num_experts_per_tok": 1}
    tensors = [Tensor(f"model.layers.0.mlp.experts.{i}.w1.weight", "BF16", (10, 10)) for i in range(4)]
    tensors.append(Tensor("model.layers.0.mlp.gate.weight", "BF16", (4, 10)))
    spec = build_spec(snapshot_of(config, tensors))
    assert spec.parameters.total == 440
    assert spec.parameters.active == 40 + 100


def test_pickle_only_repo_derives_counts_from_config_and_warns():
    config = {
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "vocab_size": 100, "torch_dtype": "float16",
    }  # fmt: skip
    files = (RepoFile("config.json", 500), RepoFile("pytorch_model.bin", 123_456), RepoFile("training_args.bin", 9))
    spec = build_spec(snapshot_of(config, [], files))
    assert not spec.parameters.exact
    assert spec.parameters.total > 0
    assert spec.parameters.by_dtype == {"F16": spec.parameters.total}
    assert spec.files.weights_bytes == 123_456  # the pickle file, not training_args.bin
    assert spec.files.formats == ("pytorch",)
    assert any("pickle" in w for w in spec.warnings)


def test_unknown_dtype_is_a_warning_not_a_crash():
    spec = build_spec(snapshot_of({"model_type": "llama"}, [Tensor("x.weight", "F3_NEW", (8,), 3)]))
    assert spec.files.weights_bytes == 3
    assert any("F3_NEW" in w for w in spec.warnings)


@pytest.mark.parametrize(
    "config, method, bits",
    [
        ({"quantization_config": {"quant_method": "fp8", "fmt": "e4m3"}}, "fp8", 8.0),
        ({"quantization_config": {"quant_method": "gptq", "bits": 4}}, "gptq", 4.0),
        ({"quantization_config": {"load_in_4bit": True}}, "bitsandbytes", 4.0),
        ({"quantization_config": {"quant_method": "mxfp4"}}, "mxfp4", 4.0),
        ({"text_config": {"quantization_config": {"quant_method": "awq", "w_bit": 4}}}, "awq", 4.0),
    ],
)
def test_quantization_config(config, method, bits):
    q = read_quantization(config)
    assert (q.method, q.bits) == (method, bits)


@pytest.mark.parametrize("bits", [0.5, -4, 65, 10**30, float("inf"), float("nan")])
def test_impossible_bit_widths_are_config_errors(bits):
    with pytest.raises(ConfigError, match=r"^config\.json quantization_config\.bits is .*: not a plausible value"):
        read_quantization({"quantization_config": {"quant_method": "gptq", "bits": bits}})


@pytest.mark.parametrize("bits", ["4", [], {"x": 4}, True, 2.5])
def test_bit_widths_of_another_type_are_ignored_with_a_warning(bits):
    warnings: list[str] = []
    q = read_quantization({"quantization_config": {"quant_method": "gptq", "bits": bits}}, warnings)
    assert (q.method, q.bits) == ("gptq", None) and "quantization_config.bits" in warnings[0]


@pytest.mark.parametrize("method", [None, 7, [], {"a": 1}, ""])
def test_a_quant_method_that_is_no_name_is_unknown(method):
    assert read_quantization({"quantization_config": {"quant_method": method, "bits": 4}}).method == "unknown"


@pytest.mark.parametrize("text_config", [["a"], "text", 7, True])
def test_a_text_config_that_is_no_object_is_ignored(text_config):
    config = {"model_type": "llama", "torch_dtype": "float16", "text_config": text_config}
    spec = build_spec(snapshot_of(config, [Tensor("l.weight", "F16", (4, 4))]))
    assert (spec.dtype, spec.quantization) == ("float16", None)
    assert any("text_config is not an object" in w for w in spec.warnings)


def test_download_bytes_and_formats():
    files = (RepoFile("config.json", 10), RepoFile("model.safetensors", 100), RepoFile("pytorch_model.bin", 90))
    spec = build_spec(snapshot_of({"model_type": "gpt2"}, [Tensor("w.weight", "F32", (2,))], files))
    assert spec.files.download_bytes == 200
    assert spec.files.formats == ("pytorch", "safetensors")
    assert spec.files.count == 3


QUANTIZED = [
    (  # GPTQ 4-bit: eight values per int32; zero points, scales and the group index are no parameters
        {"quantization_config": {"quant_method": "gptq", "bits": 4}},
        [("l.qweight", "I32", (64, 256)), ("l.qzeros", "I32", (4, 32)), ("l.scales", "F16", (4, 256)),
         ("l.g_idx", "I32", (512,)), ("l.bias", "F16", (256,))],
        512 * 256 + 256,
    ),
    (  # gpt-oss MXFP4: two 4-bit values per byte in *_blocks, one scale byte per 32 values
        {"quantization_config": {"quant_method": "mxfp4"}},
        [("model.layers.0.mlp.experts.down_proj_blocks", "U8", (4, 8, 2, 16)),
         ("model.layers.0.mlp.experts.down_proj_scales", "U8", (4, 8, 2)),
         ("model.layers.0.mlp.experts.down_proj_bias", "BF16", (4, 8))],
        4 * 8 * 64 + 32,
    ),
    (  # bitsandbytes NF4 saved quantized: packed uint8 weight plus its quant state
        {"quantization_config": {"load_in_4bit": True}},
        [("l.weight", "U8", (2048, 1)), ("l.weight.absmax", "F32", (64,)), ("l.weight.quant_map", "F32", (16,)),
         ("l.weight.quant_state.bitsandbytes__nf4", "U8", (100,))],
        4096,
    ),
    (  # DeepSeek FP8: one byte per parameter, block scales are no parameters
        {"quantization_config": {"quant_method": "fp8"}},
        [("l.weight", "F8_E4M3", (256, 256)), ("l.weight_scale_inv", "F32", (2, 2))],
        256 * 256,
    ),
]  # fmt: skip


@pytest.mark.parametrize("config, tensors, logical", QUANTIZED, ids=["gptq", "mxfp4", "bnb-nf4", "fp8"])
def test_quantized_checkpoints_report_unpacked_parameters(config, tensors, logical):
    spec = build_spec(snapshot_of(config, [Tensor(n, d, s) for n, d, s in tensors]))
    assert spec.parameters.total == sum(math.prod(s) for _, _, s in tensors)  # the contract: elements as stored
    assert spec.parameters.logical == logical


def test_unquantized_checkpoints_have_no_separate_logical_count():
    spec = build_spec(snapshot_of({"model_type": "llama"}, [Tensor("l.weight", "BF16", (4, 4))]))
    assert spec.parameters.logical is None


DENSE = [d for d in GROUND_TRUTH if dataset.expected(d)["params"]["active_per_token"] is None]


@needs_dataset
@pytest.mark.parametrize("model_dir", DENSE, ids=[dataset.repo_id(d) for d in DENSE])
def test_pickle_only_counts_are_within_half_a_percent(model_dir):
    files = (RepoFile("config.json", 1_000), RepoFile("pytorch_model.bin", 10**9))
    spec = build_spec(snapshot_of(dataset.config(model_dir), [], files))
    truth = dataset.expected(model_dir)["params"]["total"]
    assert not spec.parameters.exact
    assert abs(spec.parameters.total - truth) <= 0.005 * truth


# MoE checkpoints that store each routed expert as its own tensors (gpt-oss stores them fused: nothing to group).
MOE = [d for d in GROUND_TRUTH if any(re.search(r"\.experts\.\d+\.", name) for name in dataset.tensors(d))]
GROUPING_SETTINGS = [
    Settings(),
    Settings(dtype="int4", optimizer=Optimizer.ADAMW_8BIT, lora_targets=("all-linear",)),
    Settings(dtype="int8", optimizer=Optimizer.ADAFACTOR, qlora=True, lora_targets=("down_proj", "q_proj")),
    Settings(dtype="float16", gpus=4, zero=3),
]


@needs_dataset
@pytest.mark.parametrize("model_dir", MOE, ids=[dataset.repo_id(d) for d in MOE])
def test_grouping_experts_changes_no_number(model_dir):
    tensors = dataset_tensors(model_dir)
    grouped = parse_header(write_header(tensors), "model.safetensors").tensors
    assert len(grouped) < len(tensors) and sum(t.count for t in grouped) == len(tensors)
    config = dataset.config(model_dir)
    for settings in GROUPING_SETTINGS:
        a, b = report_for(snapshot_of(config, tensors), settings), report_for(snapshot_of(config, grouped), settings)
        assert a.spec.parameters == b.spec.parameters and a.spec.files == b.spec.files
        assert a.memory == b.memory  # every estimate, component and formula input
