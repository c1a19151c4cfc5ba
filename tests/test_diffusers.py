"""Diffusers pipelines on the fake Hub and on disk: every component counted exactly from its safetensors headers
(the variant diffusers loads), no weight byte read, and the memory of a run (hfmem.diffusion) derived by hand from
the real SDXL and FLUX.1-dev component configs in fixtures/diffusers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hfmem.api import inspect_model
from hfmem.checks import check_model
from hfmem.cli import cli
from hfmem.diffusers import weight_files
from hfmem.diffusion import ImageSettings
from hfmem.errors import ConfigError, NoUsableFiles
from hfmem.gpus import Gpu
from hfmem.header import Tensor
from hfmem.hub import HubOptions
from hfmem.memory import Settings
from tests.fakehub import FakeHub, FakeRepo, LazyFile, pipeline_files
from tests.test_hub import assert_headers_only, round_trips

LAYOUTS = Path(__file__).parent.parent / "fixtures" / "diffusers"
SDXL, FLUX = "org/tiny-sdxl", "org/tiny-flux"
MiB = 2**20


def _tensors(dtype: str, specs: list[tuple[str, tuple[int, ...]]]) -> list[Tensor]:
    return [Tensor(name, dtype, shape) for name, shape in specs]


# A few of each component's real tensors (names and shapes as SDXL's checkpoints hold them).
UNET = [("conv_in.weight", (320, 4, 3, 3)), ("conv_in.bias", (320,)), ("time_embedding.linear_1.weight", (1280, 320)),
        ("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight", (640, 640)),
        ("conv_out.weight", (4, 320, 3, 3)), ("conv_out.bias", (4,))]  # fmt: skip
CLIP_L = [("text_model.embeddings.token_embedding.weight", (49408, 768)),
          ("text_model.embeddings.position_embedding.weight", (77, 768)), ("text_model.final_layer_norm.weight", (768,))]
CLIP_G = [("text_model.embeddings.token_embedding.weight", (49408, 1280)), ("text_projection.weight", (1280, 1280))]
VAE = [("encoder.conv_in.weight", (128, 3, 3, 3)), ("decoder.conv_out.weight", (3, 128, 3, 3)),
       ("decoder.conv_out.bias", (3,))]  # fmt: skip


def _count(specs: list[tuple[str, tuple[int, ...]]]) -> int:
    total = 0
    for _, shape in specs:
        n = 1
        for d in shape:
            n *= d
        total += n
    return total


UNET_P, CLIP_L_P, CLIP_G_P, VAE_P = _count(UNET), _count(CLIP_L), _count(CLIP_G), _count(VAE)
# By hand: 320*4*9 + 320 + 1280*320 + 640*640 + 4*320*9 + 4 = 11,520 + 320 + 409,600 + 409,600 + 11,520 + 4
assert UNET_P == 842_564


@pytest.fixture
def sdxl(fake_hub: FakeHub) -> FakeRepo:
    """SDXL base's layout: fp32 non-variant files and an fp16 variant of every component; a .bin copy beside."""
    weights = {
        "unet": {None: [_tensors("F32", UNET)], "fp16": [_tensors("F16", UNET)]},
        "text_encoder": {None: [_tensors("F32", CLIP_L)], "fp16": [_tensors("F16", CLIP_L)]},
        "text_encoder_2": {None: [_tensors("F32", CLIP_G)], "fp16": [_tensors("F16", CLIP_G)]},
        "vae": {None: [_tensors("F32", VAE)], "fp16": [_tensors("F16", VAE)]},
    }
    files = pipeline_files(LAYOUTS / "sdxl", weights)
    files["unet/diffusion_pytorch_model.bin"] = LazyFile(b"", 4 * UNET_P)
    return fake_hub.add_repo(FakeRepo(SDXL, files))


FLUX_T1 = [("x_embedder.weight", (3072, 64)), ("x_embedder.bias", (3072,)),
           ("transformer_blocks.0.attn.to_q.weight", (3072, 3072))]  # fmt: skip
FLUX_T2 = [("single_transformer_blocks.0.proj_mlp.weight", (12288, 3072)), ("proj_out.weight", (64, 3072))]
T5_1, T5_2 = [("shared.weight", (32128, 4096))], [("encoder.final_layer_norm.weight", (4096,))]


@pytest.fixture
def flux(fake_hub: FakeHub) -> FakeRepo:
    """FLUX.1-dev's layout: bf16 only, the transformer and the T5 encoder sharded with their indexes."""
    weights = {
        "transformer": {None: [_tensors("BF16", FLUX_T1), _tensors("BF16", FLUX_T2)]},
        "text_encoder": {None: [_tensors("BF16", CLIP_L)]},
        "text_encoder_2": {None: [_tensors("BF16", T5_1), _tensors("BF16", T5_2)]},
        "vae": {None: [_tensors("BF16", VAE)]},
    }
    return fake_hub.add_repo(FakeRepo(FLUX, pipeline_files(LAYOUTS / "flux", weights)))


def _inspect(fake_hub: FakeHub, model: str, settings: Settings | None = None, **image):
    return inspect_model(model, settings or Settings(), hub=HubOptions(endpoint=fake_hub.url, token=False),
                         image=ImageSettings(**image))  # fmt: skip


def test_weight_files_grouped_as_diffusers_groups_them():
    """variant_compatible_siblings' names: plain, .VARIANT, sharded, sharded variant and the legacy sharded form."""
    names = ["unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors",
             "unet/diffusion_pytorch_model.non_ema.safetensors", "unet/diffusion_pytorch_model.bin",
             "t/model-00001-of-00002.safetensors", "t/model-00002-of-00002.safetensors",
             "t/model.fp16-00001-of-00002.safetensors", "t/model-00002-of-00002.fp16.safetensors",
             "t/model.safetensors.index.json", "unet/other.safetensors", "unet/sub/model.safetensors"]  # fmt: skip
    assert weight_files(names, "unet") == {
        None: ("unet/diffusion_pytorch_model.safetensors",), "fp16": ("unet/diffusion_pytorch_model.fp16.safetensors",),
        "non_ema": ("unet/diffusion_pytorch_model.non_ema.safetensors",)}  # fmt: skip
    assert weight_files(names, "t") == {
        None: ("t/model-00001-of-00002.safetensors", "t/model-00002-of-00002.safetensors"),
        "fp16": ("t/model-00002-of-00002.fp16.safetensors", "t/model.fp16-00001-of-00002.safetensors")}  # fmt: skip


def test_sdxl_components_exact(fake_hub: FakeHub, sdxl: FakeRepo):
    """Without a variant diffusers loads the non-variant (fp32) files; every component is counted, no weight byte
    read, the .bin never touched; configs and headers in one round trip after model_index.json."""
    fake_hub.latency = 0.2  # long enough that concurrent requests overlap even on a busy machine
    report = _inspect(fake_hub, SDXL)
    spec, data = report.spec, report.to_dict()
    total = UNET_P + CLIP_L_P + CLIP_G_P + VAE_P
    assert (spec.parameters.total, spec.parameters.by_dtype) == (total, {"F32": total})
    assert spec.files.weights_bytes == 4 * total
    d = data["diffusers"]
    assert (d["pipeline"], d["variant"], d["variants"], d["denoiser"]) == (
        "StableDiffusionXLPipeline", None, ["fp16"], "unet")
    assert [(c["name"], c["class"], c["parameters"], c["weights_bytes"], c["files"]) for c in data["components"]] == [
        ("text_encoder", "CLIPTextModel", CLIP_L_P, 4 * CLIP_L_P, ["text_encoder/model.safetensors"]),
        ("text_encoder_2", "CLIPTextModelWithProjection", CLIP_G_P, 4 * CLIP_G_P, ["text_encoder_2/model.safetensors"]),
        ("unet", "UNet2DConditionModel", UNET_P, 4 * UNET_P, ["unet/diffusion_pytorch_model.safetensors"]),
        ("vae", "AutoencoderKL", VAE_P, 4 * VAE_P, ["vae/diffusion_pytorch_model.safetensors"])]  # fmt: skip
    assert d["without_weights"] == ["scheduler", "tokenizer", "tokenizer_2"]
    assert_headers_only(fake_hub, SDXL)
    assert round_trips(fake_hub) == 3  # model_info; model_index.json; every config.json and header at once
    # The download is what from_pretrained fetches: the non-variant weights and the small files, not the .bin.
    small = sum(len(v) for k, v in sdxl.files.items() if isinstance(v, bytes))
    assert spec.files.download_bytes == small + sum(sdxl.files[f].size for c in data["components"] for f in c["files"])
    assert sum(c["parameters"] for c in data["components"]) == data["parameters"]["total"]  # CONTRACT.md


def test_sdxl_memory_by_hand(fake_hub: FakeHub, sdxl: FakeRepo):
    """SDXL's real configs at 1024x1024, batch 1, fp16 variant, loaded in float16 (hfmem.diffusion's model):
    - latent 128x128 (vae scale 2^(4-1) = 8); guidance doubles the UNet's batch.
    - UNet skips: conv_in 320x128^2 + block 0: 2x320x128^2 + 320x64^2 + block 1: 2x640x64^2 + 640x32^2
      + block 2: 2x1280x32^2 = 25,559,040; largest block: the attention level at 64x64, 18 x 640 x 4,096
      = 47,185,920 (over the resnet level 6 x 320 x 16,384 = 31,457,280). x 2 (guidance) x 2 B.
    - VAE decode in fp32 (force_upcast, fp16): channels back up 512, 512, 256, 128; the full-resolution resnet
      1024^2 x (2 x 256 + 2 x 128) = 805,306,368 elements, plus the image 3 x 1024^2; and the VAE's weights held
      in fp32 (2 more bytes per parameter).
    """
    report = _inspect(fake_hub, SDXL, Settings(dtype="float16"), variant="fp16")
    run = report.pipeline
    assert run is not None and (run.height, run.width, run.latent, run.guidance_batch) == (1024, 1024, (128, 128), 2)
    by_name = {c.name: c for c in run.components}
    assert by_name["unet"].activations_bytes == 2 * 2 * (25_559_040 + 47_185_920)
    assert by_name["vae"].activations_bytes == 4 * (805_306_368 + 3 * 1024 * 1024)
    assert by_name["vae"].upcast_bytes == 2 * VAE_P
    assert by_name["text_encoder"].activations_bytes == 2 * 77 * (2 * 768 + 3072)  # rule of thumb: one layer
    assert not by_name["text_encoder"].modelled and by_name["unet"].modelled
    weights = 2 * (UNET_P + CLIP_L_P + CLIP_G_P + VAE_P)
    assert run.weights_bytes == weights
    decode = 4 * (805_306_368 + 3 * 1024 * 1024) + 2 * VAE_P
    overhead = Settings().overhead_bytes
    inference = report.memory.inference
    assert inference.components == {"weights": weights, "activations": decode, "overhead": overhead}
    largest = max(2 * CLIP_L_P + by_name["text_encoder"].activations_bytes,
                  2 * CLIP_G_P + by_name["text_encoder_2"].activations_bytes,
                  2 * UNET_P + by_name["unet"].activations_bytes, 4 * VAE_P + 4 * (805_306_368 + 3 * 1024 * 1024))
    assert run.offload_bytes == largest + overhead
    data = report.to_dict()
    d = data["diffusers"]
    assert d["variant"] == "fp16" and data["components"][2]["files"] == ["unet/diffusion_pytorch_model.fp16.safetensors"]
    assert d["memory"]["resident_bytes"] == inference.total_bytes and d["memory"]["cpu_offload_bytes"] == largest + overhead
    # bfloat16 is not upcast (the pipeline checks for float16), and eager attention adds the UNet's scores:
    # 2 x 10 heads x 4,096^2 at the 64x64 level (heads: attention_head_dim [5, 10, 20], diffusers' naming).
    eager = _inspect(fake_hub, SDXL, Settings(dtype="bfloat16", attention="eager")).pipeline
    assert eager is not None
    unet = {c.name: c for c in eager.components}["unet"]
    assert unet.activations_bytes == 2 * 2 * (25_559_040 + 47_185_920 + 2 * 10 * 4096**2)
    assert {c.name: c for c in eager.components}["vae"].upcast_bytes == 0
    # LoRA adapts the denoiser's attention projections (train_dreambooth_lora_sdxl.py:1225): here to_q, 640 x 640
    # at r=16 is 16 x 640 + 640 x 16; the text encoders and the VAE are frozen.
    assert report.memory.lora.trainable_parameters == 2 * 16 * 640
    assert report.memory.lora.target_modules == ("to_k", "to_q", "to_v", "to_out.0")
    int8 = _inspect(fake_hub, SDXL, Settings(dtype="int8"))
    assert int8.pipeline is not None and int8.pipeline.weights_bytes == 4 * (UNET_P + CLIP_L_P + CLIP_G_P + VAE_P)
    assert "dtype int8 is not applied to a Diffusers pipeline: its weights are counted as stored" in int8.warnings


def test_flux_sharded_and_tokens(fake_hub: FakeHub, flux: FakeRepo):
    """FLUX.1-dev: sharded components summed; no guidance doubling; 2x2 packed latents: (1024/8/2)^2 = 4,096 image
    tokens + 512 text tokens, 12 x 3,072 (24 heads x 128) each, bf16. At 768x1360: latent 96x170, 48x85 = 4,080."""
    report = _inspect(fake_hub, FLUX)
    total = sum(_count(s) for s in (FLUX_T1, FLUX_T2, CLIP_L, T5_1, T5_2, VAE))
    assert report.spec.parameters.by_dtype == {"BF16": total}
    run = report.pipeline
    assert run is not None and run.guidance_batch == 1 and run.denoiser_tokens == 4096 + 512
    by_name = {c.name: c for c in run.components}
    assert by_name["transformer"].activations_bytes == 2 * (4096 + 512) * 12 * 3072
    assert by_name["text_encoder_2"].activations_bytes == 2 * 512 * (2 * 4096 + 10240)
    assert by_name["vae"].upcast_bytes == 0  # only SDXL pipelines upcast
    wide = _inspect(fake_hub, FLUX, Settings(batch_size=2), height=768, width=1360).pipeline
    assert wide is not None and wide.latent == (96, 170) and wide.denoiser_tokens == 48 * 85 + 512
    assert {c.name: c for c in wide.components}["transformer"].activations_bytes == 2 * 2 * (4080 + 512) * 12 * 3072


def test_unknown_variant_is_refused(fake_hub: FakeHub, sdxl: FakeRepo):
    with pytest.raises(NoUsableFiles, match=r"no component has the weight variant 'bf16' \(variants: fp16\)"):
        _inspect(fake_hub, SDXL, variant="bf16")


def test_cli_inspect_check_audit(fake_hub: FakeHub, sdxl: FakeRepo, flux: FakeRepo):
    runner = CliRunner()
    result = runner.invoke(cli, ["inspect", SDXL, "--dtype", "float16", "--variant", "fp16", "--gpu", "L4"],
                           catch_exceptions=False, env={"COLUMNS": "80"})  # fmt: skip
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Architecture  StableDiffusionXLPipeline (Diffusers pipeline)\n" in out
    assert "denoiser unet (UNet2DConditionModel)\n" in out
    assert "unet 842.56K (1.61 MiB, fp16)" in out and "variants: fp16" in out
    assert "1024x1024 image · batch 1 (denoiser x2: guidance)" in out
    assert "vae                  0.00           3.01  modelled" in out  # (805,306,368 + 3 x 2^20) x 4 B + upcast
    assert "model CPU offload" in out and "device_map" in out and max(map(len, out.splitlines())) <= 80
    assert "LoRA r=16 on to_k,to_q,to_v,to_out.0" in out
    checked = runner.invoke(cli, ["check", SDXL, "--json"], catch_exceptions=False)
    codes = [(c["code"], c["level"]) for c in json.loads(checked.stdout)["checks"]]
    assert codes == [("download", "warn"), ("weights", "ok"), ("gated", "ok"), ("custom_code", "ok"),
                     ("config", "ok"), ("fit", "skip")]  # the .bin copy is not needed; no GPU given
    data = json.loads(runner.invoke(cli, ["inspect", FLUX, "--json", "--height", "512", "--width", "512"]).stdout)
    assert data["diffusers"]["memory"]["latent"] == [64, 64] and data["diffusers"]["memory"]["denoiser_tokens"] == 1536
    assert data["memory"]["inference"]["total_bytes"] == data["diffusers"]["memory"]["resident_bytes"]
    check = check_model(SDXL, Settings(dtype="float16"), gpu=Gpu("tiny", 2 * 2**30),
                        hub=HubOptions(endpoint=fake_hub.url, token=False), image=ImageSettings(variant="fp16"))
    fit = next(f for f in check.findings if f.code == "fit")
    assert fit.level.value == "fail"  # the fp32 decode at 1024^2 alone is over 3 GiB
    audit = runner.invoke(cli, ["audit", "-", "--format", "jsonl", "--variant", "fp16", "--dtype", "float16"],
                          input=f"{SDXL}\n{FLUX}\n", catch_exceptions=False)  # fmt: skip
    rows = [json.loads(line) for line in audit.stdout.splitlines()]
    assert audit.exit_code == 1  # FLUX has no fp16 variant: its row says so, the SDXL row is whole
    assert rows[0]["error"] is None and rows[0]["params"] == UNET_P + CLIP_L_P + CLIP_G_P + VAE_P
    assert "no component has the weight variant 'fp16'" in rows[1]["error"]["message"]


def test_local_pipeline(tmp_path: Path, sdxl: FakeRepo):
    for name, content in sdxl.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.head + bytes(content.size - len(content.head)) if isinstance(content, LazyFile)
                         else content)  # fmt: skip
    report = inspect_model(str(tmp_path), Settings(dtype="float16"), image=ImageSettings(512, 512, "fp16"))
    assert report.spec.parameters.total == UNET_P + CLIP_L_P + CLIP_G_P + VAE_P
    assert report.pipeline is not None and report.pipeline.latent == (64, 64)


def test_component_with_only_a_variant_and_pickles(fake_hub: FakeHub):
    """A component with only fp16 files is read from them, with a warning (diffusers loads it only with that
    variant); a component with only a .bin is listed without weights and said to be uncounted."""
    weights = {"unet": {"fp16": [_tensors("F16", UNET)]}, "text_encoder": {None: [_tensors("F32", CLIP_L)]},
               "vae": {None: [_tensors("F32", VAE)]}}  # fmt: skip
    files = pipeline_files(LAYOUTS / "sdxl", weights)
    files["text_encoder_2/pytorch_model.bin"] = LazyFile(b"", 4 * CLIP_G_P)
    fake_hub.add_repo(FakeRepo(SDXL, files))
    report = _inspect(fake_hub, SDXL)
    assert report.spec.parameters.by_dtype == {"F16": UNET_P, "F32": CLIP_L_P + VAE_P}
    assert report.to_dict()["diffusers"]["without_weights"] == ["scheduler", "text_encoder_2", "tokenizer",
                                                                "tokenizer_2"]  # fmt: skip
    assert "unet has no non-variant weights: read its fp16 variant (diffusers loads it only with variant='fp16')" in (
        report.warnings)
    assert "text_encoder_2 has only pickled weights: not counted" in report.warnings


def test_sd3_mmdit_tokens_by_hand():
    """SD3.5 Large's transformer config (patch_size 2, 38 heads x 64): at 1024x1024 the 128x128 latent gives 64x64
    = 4,096 image tokens plus 77 CLIP + 256 T5 text tokens (pipeline_stable_diffusion_3.py:463), under guidance
    (x2), 12 x 2,432 each, in bf16."""
    from hfmem.diffusers import Component, Pipeline
    from hfmem.diffusion import pipeline_memory

    transformer = Component("transformer", "diffusers", "SD3Transformer2DModel", {
        "attention_head_dim": 64, "num_attention_heads": 38, "num_layers": 38, "patch_size": 2, "sample_size": 128,
        "in_channels": 16, "joint_attention_dim": 4096, "caption_projection_dim": 2432}, {None: ("t.safetensors",)},
        {None: (Tensor("transformer.proj_out.weight", "BF16", (64, 2432)),)})  # fmt: skip
    vae = Component("vae", "diffusers", "AutoencoderKL", {"block_out_channels": [128, 256, 512, 512]},
                    {None: ("v.safetensors",)}, {None: (Tensor("vae.decoder.conv_out.bias", "BF16", (3,)),)})
    run = pipeline_memory(Pipeline("StableDiffusion3Pipeline", (transformer, vae)), height=None, width=None,
                          batch_size=1, dtype="auto", attention="sdpa", overhead_bytes=0)  # fmt: skip
    assert (run.height, run.latent, run.guidance_batch, run.denoiser_tokens) == (1024, (128, 128), 2, 4096 + 333)
    assert run.components[0].activations_bytes == 2 * 2 * 4429 * 12 * 2432
    assert run.offload_bytes == max(c.weights_bytes + c.activations_bytes for c in run.components)


def test_serving_engines_refuse_a_pipeline(fake_hub: FakeHub, flux: FakeRepo):
    """vLLM and SGLang serve language models: `serve` says so (exit 2); `audit --engine` gives no verdict."""
    result = CliRunner().invoke(cli, ["serve", FLUX, "--gpu", "H100"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "hfmem: error: org/tiny-flux is a Diffusers pipeline: vLLM and SGLang serve " \
                                    "language models"
    audit = CliRunner().invoke(cli, ["audit", "-", "--format", "jsonl", "--engine", "vllm", "--gpu", "H100"],
                               input=f"{FLUX}\n", catch_exceptions=False)  # fmt: skip
    row = json.loads(audit.stdout)
    assert audit.exit_code == 0 and row["error"] is None and row["kv_cache_tokens"] is None


def test_notebook_api_takes_the_image(fake_hub: FakeHub, flux: FakeRepo, monkeypatch: pytest.MonkeyPatch):
    import hfmem

    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    report = hfmem.inspect(FLUX, height=512, width=768, variant=None, batch_size=2)
    assert report.pipeline is not None and (report.pipeline.latent, report.pipeline.batch_size) == ((64, 96), 2)


def test_video_components_are_not_modelled():
    """A video VAE and a 3D transformer (Wan's classes) are counted, but their activations are left out, said so."""
    from hfmem.diffusers import Component, Pipeline
    from hfmem.diffusion import pipeline_memory

    weights = {None: (Tensor("x.weight", "BF16", (4, 4)),)}
    transformer = Component("transformer", "diffusers", "WanTransformer3DModel", {
        "num_attention_heads": 40, "attention_head_dim": 128, "patch_size": [1, 2, 2]}, {None: ("t",)}, weights)
    vae = Component("vae", "diffusers", "AutoencoderKLWan", {"base_dim": 96}, {None: ("v",)}, weights)
    run = pipeline_memory(Pipeline("WanPipeline", (transformer, vae)), height=480, width=832, batch_size=1,
                          dtype="auto", attention="sdpa", overhead_bytes=0)  # fmt: skip
    assert [(c.activations_bytes, c.modelled) for c in run.components] == [(0, False), (0, False)]
    assert run.warnings == ("transformer (WanTransformer3DModel): activations not modelled",
                            "vae (AutoencoderKLWan): activations not modelled")


def test_gpus_needed_places_whole_components(fake_hub: FakeHub, sdxl: FakeRepo):
    """On 4 GiB GPUs (3.6 usable) the resident SDXL run (3.70 GiB: the fp32 decode's 3.01 GiB of activations) does
    not fit, but two do: the text encoders and the UNet on one, the VAE and its decode on the other; on 2 GiB GPUs
    the decode alone is too big for any number of them."""
    hub, image = HubOptions(endpoint=fake_hub.url, token=False), ImageSettings(variant="fp16")
    small = inspect_model(SDXL, Settings(dtype="float16"), gpu=Gpu("4G", 4 * 2**30), hub=hub, image=image).gpu
    assert small is not None and (small.fits["inference"], small.gpus_needed["inference"]) == (False, 2)
    tiny = inspect_model(SDXL, Settings(dtype="float16"), gpu=Gpu("2G", 2 * 2**30), hub=hub, image=image).gpu
    assert tiny is not None and tiny.gpus_needed["inference"] is None


def test_html_report_names_the_pipeline_and_its_components(fake_hub: FakeHub, sdxl: FakeRepo, tmp_path: Path):
    page = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["inspect", SDXL, "--html", str(page), "--variant", "fp16", "--gpu", "L4"],
                                catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert "StableDiffusionXLPipeline (Diffusers pipeline) · denoiser unet (UNet2DConditionModel)" in html
    assert "1024x1024 image · batch 1 · latent 128x128" in html and "None" not in html
    assert all(f'<th scope="row">{name}</th>' in html for name in ("text_encoder", "unet", "vae", "model CPU offload"))


@pytest.mark.parametrize(
    ("index", "error"),
    [
        (b"[1, 2]", "is not a JSON object"),
        (b'{"_class_name": "P", "unet": ["diffusers", "UNet2DConditionModel"], "nested": ' + b"[" * 100_000
         + b"]" * 100_000 + b"}", "nested too deeply"),
        (json.dumps({"_class_name": "P", **{f"c{i}": ["diffusers", "X"] for i in range(33)}}).encode(),
         "names no pipeline class or no components"),
        (b'{"_class_name": ["not", "a", "name"], "unet": ["diffusers", "UNet2DConditionModel"]}',
         "names no pipeline class or no components"),
    ],
)
def test_a_hostile_model_index_is_a_config_error(fake_hub: FakeHub, sdxl: FakeRepo, index: bytes, error: str):
    sdxl.files["model_index.json"] = index
    with pytest.raises(ConfigError, match=error):
        _inspect(fake_hub, SDXL)


def test_a_component_named_outside_the_repo_reads_nothing_there(fake_hub: FakeHub, sdxl: FakeRepo):
    """A component is read only from files the repo lists under its folder: `../unet` names none."""
    index = json.loads(sdxl.files["model_index.json"])
    index["../unet"] = index.pop("unet")
    sdxl.files["model_index.json"] = json.dumps(index).encode()
    report = _inspect(fake_hub, SDXL)
    assert "../unet" not in {c.name for c in report.spec.pipeline.components}
    assert report.spec.parameters.total == CLIP_L_P + CLIP_G_P + VAE_P
    assert not any(".." in r.path for r in fake_hub.log)


def test_a_rerun_takes_the_components_from_the_metadata_cache(fake_hub: FakeHub, sdxl: FakeRepo, monkeypatch):
    """Kept like any checkpoint, every variant's tensors with it: a warm rerun is one request on model_index.json's
    commit (config.json is absent: the Hub's 404 names the commit all the same), and --variant needs no other."""
    hub = HubOptions(endpoint=fake_hub.url, token=False)
    first = inspect_model(SDXL, Settings(), hub=hub).to_dict()
    fake_hub.reset_log()
    warm = inspect_model(SDXL, Settings(), hub=hub).to_dict()
    assert len(fake_hub.log) == 1 and fake_hub.log[0].route == "resolve"
    assert warm["components"] == first["components"] and warm["memory"] == first["memory"]
    fp16 = inspect_model(SDXL, Settings(), hub=hub, image=ImageSettings(variant="fp16")).to_dict()
    assert len(fake_hub.log) == 2 and fp16["parameters"]["by_dtype"] == {"F16": first["parameters"]["total"]}
