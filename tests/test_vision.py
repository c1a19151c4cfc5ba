"""Vision-language models: the tower counted from the headers, image tokens per family as transformers' processors
make them, and what --images adds to the KV cache and the activations.

Hand derivations follow transformers 5.24: processing_llava.py:90-93 (tokens), image_processing_qwen2_vl.py:63-89
(smart_resize) and processing_qwen2_vl.py:83 (tokens = patches / merge^2), modeling_clip.py:338-383 and
modeling_qwen2_5_vl.py:85-96, 185-198, 259-269, 342-369 (the layers counted and run).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from hfmem import inspect_model
from hfmem.cli import cli
from hfmem.config import read_architecture
from hfmem.layouts import config_layout
from hfmem.memory import Settings
from hfmem.memory import activations as act
from hfmem.memory.settings import parse_image_size
from hfmem.memory.vision import tower_dims
from hfmem.errors import ConfigError
from hfmem.vision import image_grid, is_vision_tensor, read_vision_tower, select_best_resolution, smart_resize

from .dataset import config, needs_dataset

LLAVA, QWEN = "hfmem-test/tiny-llava", "hfmem-test/tiny-qwen2.5-vl"
# Both fixtures' language models: hidden 64, 2 layers, 2 KV heads of 16, gated MLP 128, vocab 1000 (BF16):
# K and V of 2 heads x 16 x 2 B in 2 layers.
TEXT_KV_PER_TOKEN = 2 * 2 * 2 * 16 * 2


def formula(report, mode: str, name: str):
    return next(f for f in report.explanation.formulas[mode] if f.name == name)


# --- which tensors are the tower's ---


@pytest.mark.parametrize(
    ("name", "vision"),
    [
        ("vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight", True),  # llava, gemma3 (save names)
        ("model.vision_tower.vision_model.embeddings.patch_embedding.weight", True),  # transformers >= 4.52
        ("multi_modal_projector.linear_1.weight", True),
        ("visual.blocks.0.attn.qkv.weight", True),  # Qwen2-VL / Qwen2.5-VL
        ("model.visual.merger.mlp.0.weight", True),
        ("vision_model.transformer.layers.0.mlp.fc1.weight", True),  # mllama
        ("model.mm_projector.0.weight", True),  # original LLaVA
        ("language_model.model.layers.0.self_attn.q_proj.weight", False),
        ("model.layers.0.mlp.gate_proj.weight", False),
        ("lm_head.weight", False),
    ],
)
def test_vision_tensor_names(name, vision):
    assert is_vision_tensor(name) is vision


# --- LLaVA: fixed tokens per image ---


def config_vision_parameters(cfg: dict) -> int:
    """The vision tensors of the config-derived layout: what a pickle-only repo's count holds of the tower."""
    layout = config_layout(read_architecture(cfg)[0], cfg)
    return sum(math.prod(shape) * count for name, shape, count in layout.entries() if is_vision_tensor(name))


def test_tiny_llava_tower_is_counted_from_the_headers(hub_repo):
    hub_repo(LLAVA)
    spec = inspect_model(LLAVA).spec
    h, inner, patch, positions = 32, 64, 14, (56 // 14) ** 2 + 1
    embeddings = h + h * 3 * patch * patch + positions * h + 2 * h  # class, patch conv, positions, pre-LN
    layer = 4 * (h * h + h) + 2 * 2 * h + (inner * h + inner) + (h * inner + h)  # q/k/v/out, 2 LayerNorms, fc1/fc2
    projector = (64 * h + 64) + (64 * 64 + 64)  # linear_1 (tower -> text hidden), linear_2
    tower = embeddings + 2 * layer + 2 * h  # + post-LN
    assert spec.parameters.vision == tower + projector == 42_880
    assert spec.files.vision_bytes == 2 * 42_880
    # The config-derived count (pickle-only repos) agrees with the headers.
    assert config_vision_parameters(inspect_model(LLAVA).snapshot.config) == 42_880
    assert spec.vision.tokens_per_image == 16  # 4 x 4 patches + class token - 1 ("default" drops the class token)
    assert spec.vision.hidden_act == "quick_gelu"  # CLIPVisionConfig's default (configuration_clip.py:105)


def test_llava_feature_strategy_full_keeps_the_class_token():
    cfg = {"model_type": "llava", "vision_config": {"image_size": 336, "patch_size": 14},
           "vision_feature_select_strategy": "full"}  # fmt: skip
    tower, _ = read_vision_tower(cfg)
    assert tower.tokens_per_image == 577
    assert image_grid(tower, (1000, 1000)).patches == 577  # resized to 336 x 336 whatever the input


def test_images_grow_the_sequence_kv_and_tower_activations(hub_repo):
    hub_repo(LLAVA)
    report = inspect_model(LLAVA, Settings(seq_len=100, images=2), explain=True)
    inference = report.memory.inference
    assert inference.settings["seq_len"] == 100 + 2 * 16
    assert (inference.settings["images"], inference.settings["image_tokens"]) == (2, 32)
    assert inference.components["kv_cache"] == 132 * TEXT_KV_PER_TOKEN
    # The same as 132 tokens of text, but for the tower (whose peak is below the language model's here).
    text = inspect_model(LLAVA, Settings(seq_len=132))
    assert inference.components["activations"] == text.memory.inference.components["activations"]
    # One CLIP layer's working set per patch (activations.prefill_layer_peak at the tower's width, c = 2):
    # residual + normed input 2 x 2 x 32, + the attention's q,k (+ rotated copies), v, out: 2 x (2x32+2x32+32+32).
    tower = formula(report, "inference", "vision tower")
    assert tower.result_bytes == 2 * 17 * (2 * 2 * 32 + 2 * (64 + 64 + 32 + 32)) == 17_408
    assert tower.inputs["text_tokens"] == 100 and tower.inputs["sequence"] == 132
    naive = next(r for r in report.explanation.rules if r.name.startswith("naive KV"))
    assert naive.rule_bytes == 1 * 132 * 64 * 2 * 2  # the rules of thumb see the whole sequence too


def test_training_saves_the_tower_and_lora_only_where_adapted(hub_repo):
    hub_repo(LLAVA)
    tokens = 1 * 2 * 17  # batch x images x patches
    # Full training (mixed: c = 2, fp32 residual): per CLIP layer and patch, activations.layer_saved:
    # 2 norms x (4 + 4 + 2) x 32, q/k/v/out 2 x 128 + logsumexp 4 x 2 heads + o_proj input 2 x 32,
    # and quick_gelu's chain x * sigmoid(1.702 x) (activations.activation_bytes): fc1's output, the sigmoid's
    # output and the product (fc2's input), 3 x 64 x 2.
    trainable = 2 * (4 + 4 + 2) * 32 + (2 * 128 + 8 + 64) + 3 * 64 * 2
    full = inspect_model(LLAVA, Settings(seq_len=100, images=2), explain=True)
    assert formula(full, "training", "vision tower").result_bytes == tokens * 2 * trainable == 91_936
    text = inspect_model(LLAVA, Settings(seq_len=132), explain=True)
    saved = formula(full, "training", "activations (saved)").result_bytes
    assert saved == formula(text, "training", "activations (saved)").result_bytes  # the same 132 tokens
    assert full.memory.training.settings["peak_phase"] == "loss backward"
    assert (full.memory.training.components["activations"]
            == text.memory.training.components["activations"] + 91_936)  # fmt: skip

    # LoRA on q_proj,v_proj: PEFT adapts the tower's too (2 layers x 2), so the frozen tower saves per patch
    # 2 fp32 norm inputs 4 x 32, q/k/v/out 2 x 128 + logsumexp 8, quick_gelu's fc1 output and sigmoid output
    # 2 x 64 x 2, and PEFT's fp32 input copies (32 in + r 16) x 4 B of each of the 4 adapted linears.
    frozen = 2 * 4 * 32 + (2 * 128 + 8) + 2 * 64 * 2
    lora = inspect_model(LLAVA, Settings(seq_len=100, images=2, lora_targets="q_proj,v_proj"), explain=True)
    tower = formula(lora, "lora", "vision tower")
    assert tower.inputs["adapted_in_tower"] == 4
    assert tower.result_bytes == tokens * (2 * frozen + 4 * (32 + 16) * 4) == 78_880
    # The text tokens' adapter copies leave the tower's adapters out: 2 layers x (q, v) x (64 + 16) x 4 B.
    assert formula(lora, "lora", "adapter activations").inputs["bytes_per_token"] == 2 * 2 * (64 + 16) * 4
    # Adapters only in the language model: the tower needs no gradient and saves nothing.
    mlp = inspect_model(LLAVA, Settings(seq_len=100, images=2, lora_targets="gate_proj,down_proj"), explain=True)
    assert formula(mlp, "lora", "vision tower").result_bytes == 0


def test_text_only_models_ignore_images_with_a_warning(hub_repo):
    hub_repo("hfmem-test/tiny-llama")
    report = inspect_model("hfmem-test/tiny-llama", Settings(seq_len=100, images=3))
    assert report.memory.inference.settings["seq_len"] == 100
    assert "images" not in report.memory.inference.settings
    assert any("--images" in w for w in report.warnings)
    assert report.spec.parameters.vision is None and report.spec.vision is None


# --- Qwen2.5-VL: tokens from the image size ---


@pytest.mark.parametrize(
    ("size", "resized"),
    [
        ((448, 300), (448, 308)),  # sides rounded to multiples of 28: 16 x 28, 11 x 28
        ((1024, 1024), (980, 980)),  # 1036^2 > 28 x 28 x 1280: scaled by sqrt(1024^2 / 1003520), floored: 35 x 28
        ((20, 20), (56, 56)),  # 28^2 < 56 x 56: scaled up by sqrt(3136 / 400) = 2.8, ceiled: 2 x 28
        ((1080, 1920), (728, 1316)),  # too large: 1080 / 1.3914 / 28 = 27.7 -> 26, 1920 / 1.3914 / 28 = 49.3 -> 47
    ],
)
def test_smart_resize_matches_the_qwen2_vl_processor(size, resized):
    assert smart_resize(*size, 28, 56 * 56, 28 * 28 * 1280) == resized


def test_tiny_qwen25_vl_tower_and_tokens(hub_repo):
    hub_repo(QWEN)
    report = inspect_model(QWEN, Settings(seq_len=100, images=2, image_size="448x300"), explain=True)
    spec = report.spec
    h, inner, out = 32, 48, 64
    patch_embed = h * 3 * 2 * 14 * 14  # Conv3d over 2 frames of 14 x 14, no bias
    block = 2 * h + (3 * h * h + 3 * h) + (h * h + h) + 2 * (inner * h + inner) + (h * inner + h)
    merger = h + (4 * h * 4 * h + 4 * h) + (4 * h * out + out)  # ln_q, mlp.0 over 2 x 2 patches, mlp.2
    assert spec.parameters.vision == patch_embed + 2 * block + merger == 80_480
    assert spec.vision.dynamic and spec.vision.gated and spec.vision.hidden_act == "silu"

    # 448 x 300 -> 448 x 308: 32 x 22 patches of 14 px, one token per 2 x 2 of them.
    inference = report.memory.inference
    assert inference.settings["image_tokens"] == 2 * 32 * 22 // 4 == 352
    assert inference.settings["seq_len"] == 452
    assert inference.components["kv_cache"] == 452 * TEXT_KV_PER_TOKEN
    # The tower's peak (2 x 704 patches, one gated-MLP layer: 2 x 2 x 32 + attention 2 x (2x32+2x32+32+32))
    # is above the language model's (452 tokens x (2 x 2 x 64 + MLP 2 x 128 x 3)): the larger one is the peak.
    tower = 2 * 704 * (2 * 2 * 32 + 2 * (64 + 64 + 32 + 32))
    assert formula(report, "inference", "vision tower").result_bytes == tower == 720_896
    assert tower > 452 * (2 * 2 * 64 + 2 * 128 * 3)
    assert inference.components["activations"] == tower


def test_dynamic_resolution_without_image_size_assumes_one(hub_repo):
    hub_repo(QWEN)
    report = inspect_model(QWEN, Settings(seq_len=10, images=1))
    assert report.memory.inference.settings["image_tokens"] == (980 // 28) ** 2 == 1225
    assert any("--image-size not given: 1024x1024" in w for w in report.warnings)


def test_cli_images_flags(hub_repo):
    hub_repo(QWEN)
    env = {"COLUMNS": "100", "NO_COLOR": "1"}
    result = CliRunner().invoke(cli, ["inspect", QWEN, "--images", "2", "--image-size", "448x300", "-s", "100",
                                      "--json"], env=env)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["parameters"]["vision"] == 80_480
    assert data["vision"]["dynamic_resolution"] is True
    assert data["memory"]["training"]["settings"]["image_tokens"] == 352
    human = CliRunner().invoke(cli, ["inspect", QWEN, "--images", "2", "--image-size", "448x300", "-s", "100"],
                               env=env)  # fmt: skip
    assert "seq 452 (100 text + 2 images x 176 tokens)" in human.stdout
    assert "vision 80,480" in human.stdout
    bad = CliRunner().invoke(cli, ["inspect", QWEN, "--image-size", "wide"], env=env)
    assert bad.exit_code == 2 and "not HxW" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize(("value", "parsed"), [("448x300", (448, 300)), ("512", (512, 512)), ((3, 4), (3, 4))])
def test_image_size_parses(value, parsed):
    assert parse_image_size(value) == parsed


@pytest.mark.parametrize("value", ["1x2x3", "0x5", "1x300", "-4x4", "x", "4.5x4"])
def test_image_size_refuses(value):
    with pytest.raises(ValueError):
        Settings(image_size=value)


# --- the dataset's LLaVA-1.5-7B ---


@needs_dataset
def test_llava_15_7b_from_the_dataset(hub_repo):
    """CLIP ViT-L/14-336 (303,507,456 with its position table) + the 2-layer projector 1024 -> 4096 -> 4096."""
    hub_repo("llava-hf/llava-1.5-7b-hf")
    report = inspect_model("llava-hf/llava-1.5-7b-hf", Settings(seq_len=1000, images=1), explain=True)
    projector = (1024 * 4096 + 4096) + (4096 * 4096 + 4096)
    assert report.spec.parameters.vision == 303_507_456 + projector == 324_487_168
    assert config_vision_parameters(config(_llava_folder())) == 324_487_168  # the pickle-only path agrees
    tower = report.spec.vision
    assert (tower.tokens_per_image, image_grid(tower, None).patches) == (576, 577)  # (336 / 14)^2, + class token
    inference = report.memory.inference
    # Llama-2-7B: 32 layers x K and V of 32 heads x 128 x 2 B per token, over 1000 + 576 tokens.
    assert inference.components["kv_cache"] == 1576 * 32 * 2 * 32 * 128 * 2
    # One CLIP-L layer per patch (fp16): residual + normed input 2 x 2 x 1024, + the MLP at quick_gelu's peak
    # (x * sigmoid(1.702 * x): fc1's output, the sigmoid and the product alive at once) 3 x 4096 x 2, wider than
    # the attention's 2 x (2x1024 + 2x1024 + 1024 + 1024).
    assert formula(report, "inference", "vision tower").result_bytes == 577 * (4 * 1024 + 3 * 4096 * 2)
    dims = tower_dims(tower)
    assert act.prefill_layer_peak(dims, 2, kv_len=577, padded=False, eager=False) == 4 * 1024 + 3 * 4096 * 2


def _llava_folder():
    from .dataset import DATASET

    return DATASET / "models" / "llava-hf__llava-1.5-7b-hf"


def test_the_default_sequence_holds_the_images(hub_repo):
    """Without --seq-len the sequence is min(context, 4096) long, images included; --seq-len counts text only."""
    hub_repo(LLAVA)
    default = inspect_model(LLAVA, Settings(images=3)).memory.inference.settings
    assert (default["seq_len"], default["image_tokens"]) == (2048, 48)  # the fixture's context: 2048
    assert inspect_model(LLAVA, Settings(seq_len=2048, images=3)).memory.inference.settings["seq_len"] == 2096


@pytest.mark.parametrize(
    ("cfg", "tower"),
    [
        ({"model_type": "llava_next", "vision_config": {"model_type": "clip_vision_model"},
          "vision_feature_select_strategy": "full"}, True),  # class tokens as the processor's own config says
        ({"model_type": "mllama", "vision_config": {"model_type": "mllama_vision_model"}}, False),  # cross-attention
        ({"model_type": "idefics3", "vision_config": {"model_type": "pixtral"}}, True),  # a Pixtral tower elsewhere
    ],
)
def test_other_multimodal_families_have_no_image_tokens(cfg, tower):
    read, warnings = read_vision_tower(cfg)
    assert (read is not None) is tower and warnings == []
    assert read is None or not read.models_images


def test_check_counts_the_images_against_the_context(hub_repo):
    hub_repo(QWEN)
    args = ["check", QWEN, "--images", "4", "--image-size", "1024x1024", "-s", "127000"]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "100", "NO_COLOR": "1"})
    assert result.exit_code == 1
    assert "seq_len 131,900 is beyond the model's context of 128,000" in result.stdout  # 127,000 + 4 x 1,225


def test_qwen2_vl_tower_is_embed_dim_wide():
    """Qwen2-VL's vision hidden_size is the language model's; its tower is embed_dim wide with an fc1/fc2 MLP of
    mlp_ratio x embed_dim (configuration_qwen2_vl.py:33-42's defaults, written out as a config.json does)."""
    cfg = {"model_type": "qwen2_vl", "vision_config": {"depth": 32, "embed_dim": 1280, "hidden_size": 3584,
           "mlp_ratio": 4, "num_heads": 16, "in_chans": 3, "patch_size": 14, "spatial_merge_size": 2,
           "temporal_patch_size": 2}}  # fmt: skip
    tower, _ = read_vision_tower(cfg)
    assert (tower.hidden_size, tower.intermediate_size, tower.gated) == (1280, 5120, False)
    assert image_grid(tower, (448, 448)).tokens == 16 * 16  # 448 / 28 per side


def test_gemma3_pools_its_siglip_patches_to_mm_tokens_per_image():
    """Gemma-3-4B's vision_config (SigLIP at 896 px, patch 14): 64 x 64 patches in the tower, average-pooled to
    mm_tokens_per_image (default 256, configuration_gemma3.py:207; processing_gemma3.py:135)."""
    cfg = {"model_type": "gemma3", "vision_config": {"hidden_size": 1152, "image_size": 896,
           "intermediate_size": 4304, "model_type": "siglip_vision_model", "num_attention_heads": 16,
           "num_hidden_layers": 27, "patch_size": 14, "vision_use_head": False}}  # fmt: skip
    tower, _ = read_vision_tower(cfg)
    grid = image_grid(tower, None)
    assert (grid.patches, grid.tokens, tower.class_token) == (4096, 256, False)
    assert read_vision_tower(cfg | {"mm_tokens_per_image": 64})[0].tokens_per_image == 64


def test_the_tower_is_still_saved_at_the_end_of_the_language_models_backward(hub_repo):
    """Backward runs the tower last: its saved activations are there beside the gradients at backward end."""
    hub_repo(LLAVA)

    def backward_end(settings: Settings) -> int:
        report = inspect_model(LLAVA, settings, explain=True)
        phases = formula(report, "training", "peak phase").expression
        return int(phases.split("backward end: ")[1].split(" |")[0].replace(",", ""))

    with_images = backward_end(Settings(seq_len=100, images=2))
    assert with_images == backward_end(Settings(seq_len=132)) + 91_936  # test_training_saves_the_tower...


def test_a_text_model_counted_from_its_config_has_no_vision_count():
    from hfmem.snapshot import Snapshot
    from hfmem.spec import build_spec

    cfg = json.loads((Path(__file__).parents[1] / "fixtures" / "configs" / "lfm2-1.2b.json").read_text())
    spec = build_spec(Snapshot("lfm2", "lfm2", None, None, "local", (), cfg, {}))
    assert spec.parameters.vision is None and spec.files.vision_bytes is None


# --- LLaVA-NeXT's anyres ---

LLAVA_NEXT = {"model_type": "llava_next", "vision_config": {"model_type": "clip_vision_model", "image_size": 336,
              "patch_size": 14}, "text_config": {"model_type": "llama"}}  # fmt: skip


@pytest.mark.parametrize(
    ("size", "best", "tokens", "crops"),
    [
        # 1024 x 1024: 672 x 672 keeps every pixel (the 336 x 672 grids keep 336 x 336); 48 x 48 crop patches, no
        # padding; 48 x 48 + 48 newlines + 24 x 24 for the whole image
        ((1024, 1024), (672, 672), 2928, 5),
        # 480 x 640: 672 x 672 keeps all 307,200 pixels; wider than the 48 x 48 grid: int(round(480 x 48 / 640))
        # = 36 rows, 6 rows of padding dropped above and below: 36 x 48 + 36 + 576
        ((480, 640), (672, 672), 2340, 5),
        # 300 x 1000: 336 x 1008 keeps every pixel (scale 1.008), 672 x 672 only 672 x 201; 24 x 72 patches,
        # int(round(300 x 72 / 1000)) = 21 rows, (24 - 21) // 2 = 1 row dropped above and below: 22 x 72 + 22 + 576
        ((300, 1000), (336, 1008), 2182, 4),
    ],
)
def test_llava_next_anyres_tokens(size, best, tokens, crops):
    """LLaVA-NeXT's tokens for an image, derived by hand from LlavaNextProcessor._get_number_of_features and
    select_best_resolution with LlavaNextConfig's default image_grid_pinpoints (the "default" strategy)."""
    tower, warnings = read_vision_tower(LLAVA_NEXT)
    assert warnings == [] and tower.dynamic and tower.grid_pinpoints[2] == (672, 672)
    assert select_best_resolution(*size, tower.grid_pinpoints) == best
    grid = image_grid(tower, size)
    assert (grid.height, grid.width, grid.tokens, grid.crops, grid.patches) == (*best, tokens, crops, 577)


def test_llava_next_grid_pinpoints_come_from_the_config():
    tower, _ = read_vision_tower(LLAVA_NEXT | {"image_grid_pinpoints": [[336, 336], [336, 672]]})
    assert tower.grid_pinpoints == ((336, 336), (336, 672))
    assert image_grid(tower, (1024, 1024)).tokens == 24 * 24 + 24 + 576  # fitted to 336 x 336: one crop
    for bad in ([], [[336]], [[336, -1]], [[336, 1.5]], "336x672", [[336, 10**9]], [[336, 100]]):  # 100 < a crop
        with pytest.raises(ConfigError, match="image_grid_pinpoints"):
            read_vision_tower(LLAVA_NEXT | {"image_grid_pinpoints": bad})
    with pytest.raises(ConfigError, match="image_size 10 is smaller than its patch_size 14"):
        read_vision_tower(LLAVA_NEXT | {"vision_config": {"model_type": "clip_vision_model", "image_size": 10,
                                                          "patch_size": 14}})  # fmt: skip


def test_llava_next_images_run_the_tower_over_every_crop(hub_repo):
    """The tiny LLaVA fixture as LLaVA-NeXT, with grids of its 56 px tower: a 100 x 100 image is fitted to 112 x
    112 (12,544 pixels keep all 10,000; 56 x 112 keeps 56 x 56), 2 x 2 crops of 4 x 4 patches: 8 x 8 + 8 newlines
    + 4 x 4 = 88 tokens, and the tower runs over the whole image and the 4 crops, 17 patches each."""
    repo = hub_repo(LLAVA)
    cfg = json.loads(repo.files["config.json"])
    cfg |= {"model_type": "llava_next", "image_grid_pinpoints": [[56, 112], [112, 56], [112, 112]]}
    repo.files["config.json"] = json.dumps(cfg).encode()
    report = inspect_model(LLAVA, Settings(seq_len=100, images=1, image_size=(100, 100)), explain=True)
    assert report.memory.inference.settings["image_tokens"] == 88
    assert report.memory.inference.components["kv_cache"] == 188 * TEXT_KV_PER_TOKEN
    tower = formula(report, "inference", "vision tower")
    assert tower.inputs["crops_per_image"] == 5 and tower.inputs["patches_per_image"] == 17
    # one CLIP layer's working set per patch, as in test_images_grow_the_sequence_kv_and_tower_activations
    assert tower.result_bytes == 5 * 17 * (2 * 2 * 32 + 2 * (64 + 64 + 32 + 32))
    human = CliRunner().invoke(cli, ["inspect", LLAVA, "--images", "1", "--image-size", "100x100"],
                               env={"COLUMNS": "80", "NO_COLOR": "1"}).stdout  # fmt: skip
    assert "any resolution: 56 px crops of the best of 3 grids" in human


@pytest.mark.parametrize(("image_size", "tokens"), [(None, 256), (448, 1024), (896, 4096)])
def test_paligemma_has_a_token_per_siglip_patch(image_size, tokens):
    """PaliGemma-3B's vision_config as its config.json writes it (image_size only for the 448 and 896 px models,
    else SiglipVisionConfig's 224): text_config.num_image_tokens = (image_size // 14)^2, no class token."""
    vision = {"hidden_size": 1152, "intermediate_size": 4304, "model_type": "siglip_vision_model",
              "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14, "projection_dim": 2048,
              "vision_use_head": False} | ({"image_size": image_size} if image_size else {})  # fmt: skip
    cfg = {"model_type": "paligemma", "text_config": {"model_type": "gemma"}, "vision_config": vision}
    tower, warnings = read_vision_tower(cfg)
    grid = image_grid(tower, None)
    assert warnings == [] and (grid.patches, grid.tokens, tower.class_token) == (tokens, tokens, False)


def test_paligemma_text_config_defaults_to_gemma():
    """PaliGemmaConfig builds a GemmaConfig for a text_config without model_type: GemmaConfig's hidden_size 3072."""
    assert read_architecture({"model_type": "paligemma", "text_config": {}})[0].hidden_size == 3072


def test_paligemma_without_vision_config_has_paligemmas_default_tower():
    tower, _ = read_vision_tower({"model_type": "paligemma"})
    assert (tower.hidden_size, tower.num_hidden_layers, tower.patch_size, tower.tokens_per_image) == (1152, 27, 14, 256)


# --- Pixtral ---

PIXTRAL_12B = {"model_type": "llava", "vision_feature_select_strategy": "full",
               "text_config": {"model_type": "mistral"},
               "vision_config": {"model_type": "pixtral", "hidden_size": 1024, "image_size": 1024, "patch_size": 16,
                                 "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24,
                                 "hidden_act": "silu"}}  # fmt: skip


@pytest.mark.parametrize(
    ("cfg", "size", "grid", "tokens", "patches"),
    [
        # Pixtral-12B: 16 px patches, no merge, longest edge 1024. 1024 x 1024 fits: 64 rows of 64 [IMG] + a break
        (PIXTRAL_12B, (1024, 1024), (1024, 1024), 64 * 65, 64 * 64),
        # 480 x 640 fits too: 30 x 40 patches, 30 x 41 tokens
        (PIXTRAL_12B, (480, 640), (480, 640), 30 * 41, 30 * 40),
        # 2000 x 1000 is scaled by 1/1.953125 to 1024 x 512: 64 x 32 patches, 64 x 33 tokens
        (PIXTRAL_12B, (2000, 1000), (1024, 512), 64 * 33, 64 * 32),
        # Mistral-Small-3.1 (mistral3, its default tower): 14 px patches merged 2 x 2, longest edge 1540. 1024 x 1024
        # fits, rounded up to 37 x 28 = 1036 px a side: 37 rows of 37 tokens + a break; the tower sees 74 x 74 patches
        ({"model_type": "mistral3"}, (1024, 1024), (1036, 1036), 37 * 38, 74 * 74),
        # 3080 x 1540 is halved to 1540 x 770: (1539 // 28 + 1) = 55 rows, (769 // 28 + 1) = 28 columns
        ({"model_type": "mistral3"}, (3080, 1540), (1540, 784), 55 * 29, 110 * 56),
    ],
)
def test_pixtral_tokens_per_image(cfg, size, grid, tokens, patches):
    """Derived by hand from PixtralProcessor.__call__ and get_resize_output_image_size (module docstring)."""
    tower, warnings = read_vision_tower(cfg)
    assert warnings == [] and tower.kind == "pixtral" and tower.gated and not tower.class_token
    image = image_grid(tower, size)
    assert ((image.height, image.width), image.tokens, image.patches) == (grid, tokens, patches)


def test_pixtral_towers_read_their_config():
    tower, _ = read_vision_tower(PIXTRAL_12B)
    assert (tower.hidden_size, tower.intermediate_size, tower.hidden_act, tower.spatial_merge_size) == (
        1024, 4096, "silu", 1)  # fmt: skip
    merged = read_vision_tower({"model_type": "mistral3", "spatial_merge_size": 4})[0]
    assert (merged.patch_size, merged.image_size, merged.spatial_merge_size) == (14, 1540, 4)
    assert read_architecture({"model_type": "mistral3", "text_config": {}})[0].hidden_size == 4096  # MistralConfig's


def test_mllama_cross_attention_layers_are_named_as_not_modelled():
    """Llama-3.2-11B-Vision's text_config: 8 of its 40 layers attend to the image tiles only (MllamaTextConfig's
    cross_attention_layers); hfmem says it counts them as self-attention layers."""
    cfg = {"model_type": "mllama", "vision_config": {"model_type": "mllama_vision_model"},
           "text_config": {"model_type": "mllama_text_model", "hidden_size": 4096, "num_hidden_layers": 40,
                           "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 128256,
                           "cross_attention_layers": [3, 8, 13, 18, 23, 28, 33, 38]}}  # fmt: skip
    warnings = read_architecture(cfg)[1]
    assert any(w.startswith("8 of the 40 layers attend to the images") for w in warnings)


PALIGEMMA = {"model_type": "paligemma", "text_config": {"model_type": "gemma"},
             "vision_config": {"model_type": "siglip_vision_model", "image_size": 448, "patch_size": 14}}
MISTRAL3 = {"model_type": "mistral3", "spatial_merge_size": 2,
            "vision_config": {"model_type": "pixtral", "image_size": 1540, "patch_size": 14}}


@pytest.mark.parametrize("cfg", [LLAVA_NEXT, PALIGEMMA, PIXTRAL_12B, MISTRAL3], ids=lambda c: c["model_type"])
def test_image_tokens_take_every_hostile_value(cfg):
    """Every number of these configs' vision parts set to each hostile value: a ConfigError, or a tower whose
    images have whole numbers of tokens and patches (never a traceback: a zero-sized crop or patch divides)."""
    from tests.test_hostile_config import HOSTILE

    numbers = [(None, "spatial_merge_size")] * ("spatial_merge_size" in cfg) + [
        ("vision_config", key) for key, value in cfg["vision_config"].items() if type(value) is int]
    for section, key in numbers:
        for value in HOSTILE:
            mutated = json.loads(json.dumps(cfg))
            (mutated[section] if section else mutated)[key] = value
            try:
                tower, _ = read_vision_tower(mutated)
            except ConfigError:
                continue
            for size in ((1024, 768), (1, 5000), None):
                grid = image_grid(tower, size) if tower.models_images else None
                assert grid is None or (grid.tokens >= 1 and grid.patches >= 1 and grid.crops >= 1), (key, value)
