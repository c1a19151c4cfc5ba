"""Memory to run a Diffusers pipeline (hfmem.diffusers): every component resident, or with model CPU offload.

Phases run one after another, so the peak is the weights plus the largest phase's activations: the text encoders
on the prompt, the denoiser at every step, the VAE's decoder once. With `enable_model_cpu_offload`
(pipelines/pipeline_utils.py:1195) one whole component is on the GPU at a time (the one before it goes back to the
CPU when the next one's forward starts), so the peak is the largest component's weights plus its activations.

What is modelled from the architecture (diffusers at 58eb52c) and what is a rule of thumb:
- Latents: height/f x width/f with f = 2^(len(vae.block_out_channels) - 1) (pipeline_stable_diffusion_xl.py:267).
  Classifier-free guidance runs the denoiser on twice the batch (pipeline_stable_diffusion_xl.py:1202,
  pipeline_stable_diffusion_3.py:1067); FLUX pipelines are guidance-distilled and do not (pipeline_flux.py:606).
- UNet (modelled): the skip connections the down path keeps for the up path (unet_2d_condition.py:1135-1157:
  conv_in's output, every resnet's and every downsampler's), held whole, plus the largest block's working set:
  an attention level's feed-forward (attention.py:1682, GEGLU x4: input and its norm 2C, projection 8C, gate 4C,
  product 4C: 18 C per token) or a resnet's (concatenated input and its norm, conv and shortcut outputs: 6 C).
- DiT / MMDiT (modelled): image tokens (latent / patch_size)^2, FLUX packing 2x2 (pipeline_flux.py:520), plus the
  text tokens (FLUX 512, pipeline_flux.py:628; SD3 77 CLIP + 256 T5, pipeline_stable_diffusion_3.py:463), each
  with 12 x hidden of working set (FLUX's single-stream block, transformer_flux.py:359-404: residual, norm,
  attention output, the 4x MLP projection and activation, their 5x concatenation; SD3's joint block needs 11).
- VAE decode (modelled): the decoder's largest resnet or upsampler working set as it grows back to full
  resolution, and the output image; SDXL pipelines upcast an fp16 VAE with force_upcast to fp32 first
  (pipeline_stable_diffusion_xl.py:1262), which holds its weights in fp32.
- Eager attention adds the scores and probabilities (2 x heads x tokens^2) of the largest attention; SDPA none.
- Text encoders (rule of thumb): one layer's working set, tokens x (2 x hidden + intermediate).
- Not modelled (0 bytes, with a warning): other denoisers (video transformers, priors), other VAEs (video ones
  decode frames), other components (ControlNets, image encoders); VAE slicing and tiling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import ceil
from typing import Any

from . import dtypes
from .diffusers import Component, Pipeline
from .header import Tensor

CFG_FREE = ("Flux",)  # pipeline class prefixes without classifier-free guidance by default
TEXT_TOKENS = {"Flux": 512, "StableDiffusion3": 77 + 256}  # the denoiser's text tokens, by pipeline class prefix
T5_TOKENS = {"Flux": 512, "StableDiffusion3": 256}  # max_sequence_length of the T5 encoder, by pipeline prefix
CLIP_TOKENS = 77
# LoRA on the denoiser unless --lora-targets says otherwise: diffusers' examples/dreambooth/
# train_dreambooth_lora_sdxl.py:1225 (the attention projections of every transformer block)
LORA_TARGETS = ("to_k", "to_q", "to_v", "to_out.0")
UNET_FF, UNET_RESNET, DIT_TOKEN = 18, 6, 12  # working set per token / pixel, in channels or hidden sizes
FLOAT = {"F64", "F32", "F16", "BF16"}


@dataclass(frozen=True)
class ImageSettings:
    """What a pipeline run is asked for beyond Settings: the image size (None: the pipeline's default) and the
    weight variant to load (None: diffusers' default, the non-variant files)."""

    height: int | None = None
    width: int | None = None
    variant: str | None = None

    def __post_init__(self) -> None:
        for value in (self.height, self.width):
            if value is not None and value < 8:
                raise ValueError("height and width must be at least 8 pixels")


@dataclass(frozen=True)
class ComponentMemory:
    name: str
    parameters: int
    weights_bytes: int  # at the load dtype
    activations_bytes: int  # its phase's peak beyond the weights
    modelled: bool  # False: a rule of thumb (text encoders), or not modelled at all (0 bytes)
    upcast_bytes: int = 0  # the VAE's fp32 copy of its weights during decode (force_upcast)


@dataclass(frozen=True)
class PipelineMemory:
    height: int
    width: int
    batch_size: int
    guidance_batch: int  # the denoiser's batch: x2 under classifier-free guidance
    dtype: str  # the compute dtype (torch name)
    latent: tuple[int, int]
    denoiser_tokens: int | None  # DiT: image + text tokens per sample; None for a UNet
    components: tuple[ComponentMemory, ...]
    overhead_bytes: int
    warnings: tuple[str, ...]

    @property
    def weights_bytes(self) -> int:
        return sum(c.weights_bytes for c in self.components)

    @property
    def activations_bytes(self) -> int:
        """The largest phase's activations (with the VAE's upcast copy during decode)."""
        return max((c.activations_bytes + c.upcast_bytes for c in self.components), default=0)

    @property
    def resident_bytes(self) -> int:
        return self.weights_bytes + self.activations_bytes + self.overhead_bytes

    @property
    def offload_bytes(self) -> int:
        """enable_model_cpu_offload: the largest component with its activations, one at a time."""
        one = max((c.weights_bytes + c.upcast_bytes + c.activations_bytes for c in self.components), default=0)
        return one + self.overhead_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "height": self.height, "width": self.width, "batch_size": self.batch_size,
            "guidance_batch": self.guidance_batch, "dtype": self.dtype, "latent": list(self.latent),
            "denoiser_tokens": self.denoiser_tokens, "resident_bytes": self.resident_bytes,
            "cpu_offload_bytes": self.offload_bytes, "overhead_bytes": self.overhead_bytes,
            "components": [{"name": c.name, "weights_bytes": c.weights_bytes, "activations_bytes": c.activations_bytes,
                            "upcast_bytes": c.upcast_bytes, "modelled": c.modelled} for c in self.components],
        }  # fmt: skip


def load_dtype(tensors: tuple[Tensor, ...], dtype: str) -> str:
    """The torch dtype the weights compute in: `dtype` when it names a float type, else the dominant stored one."""
    if dtype in ("float32", "float16", "bfloat16"):
        return dtype
    counts: dict[str, int] = {}
    for t in tensors:
        counts[t.dtype] = counts.get(t.dtype, 0) + t.numel * t.count
    stored = max(counts, key=counts.__getitem__, default="F32")
    return dtypes.SAFETENSORS_TO_TORCH.get(stored, "float32")


def weights_bytes(tensors: tuple[Tensor, ...], dtype: str) -> int:
    """Bytes once loaded with torch_dtype=`dtype` (float tensors converted; "auto": as stored)."""
    target = dtypes.TORCH_TO_SAFETENSORS.get(dtype) if dtype in ("float32", "float16", "bfloat16") else None
    return sum((dtypes.nbytes(target, t.numel) if target and t.dtype in FLOAT else t.nbytes) * t.count
               for t in tensors)  # fmt: skip


def pipeline_memory(
    pipeline: Pipeline,
    *,
    height: int | None,
    width: int | None,
    batch_size: int,
    dtype: str,
    attention: str,
    overhead_bytes: int,
) -> PipelineMemory:
    """The memory of one generation of `batch_size` images of height x width (None: the denoiser's default, its
    sample_size x the VAE's scale factor, as the pipelines default them)."""
    warnings: list[str] = []
    if dtype in ("int8", "int4"):
        warnings.append(f"dtype {dtype} is not applied to a Diffusers pipeline: its weights are counted as stored")
    vae = pipeline.component("vae")
    denoiser = pipeline.denoiser
    scale = 2 ** (len(_ints(vae.config.get("block_out_channels"))) - 1) if vae and _ints(
        vae.config.get("block_out_channels")) else 8  # fmt: skip
    sample = _int(denoiser.config.get("sample_size")) if denoiser else None
    height = height or (sample * scale if sample else 1024)
    width = width or (sample * scale if sample else 1024)
    latent = (height // scale, width // scale)
    prefix = pipeline.class_name
    guided = batch_size * (1 if prefix.startswith(CFG_FREE) else 2)
    all_tensors = tuple(t for c in pipeline.components for t in pipeline.tensors(c))
    compute = load_dtype(pipeline.tensors(denoiser) if denoiser else all_tensors, dtype)
    width_bytes = 4 if compute == "float32" else 2
    eager = attention == "eager"
    memories, tokens = [], None
    for c in pipeline.components:
        tensors = pipeline.tensors(c)
        loaded = weights_bytes(tensors, dtype)
        parameters = sum(t.numel * t.count for t in tensors)
        upcast, modelled = 0, True
        if c is denoiser:
            elements, tokens = _denoiser(c, latent, prefix, eager, warnings)
            activations = guided * width_bytes * elements
            modelled = elements > 0
        elif c.name == "vae" and c.class_name == "AutoencoderKL":  # an image VAE (video VAEs decode frames too)
            upcasts = (prefix.startswith("StableDiffusionXL") and compute == "float16"
                       and c.config.get("force_upcast", True) is True)  # fmt: skip
            upcast = 4 * parameters - loaded if upcasts and 4 * parameters > loaded else 0
            activations = batch_size * (4 if upcasts else width_bytes) * _decode(c, latent, height, width, eager)
        elif c.library == "transformers":
            activations = batch_size * width_bytes * _text_encoder(c, prefix)
            modelled = False
        else:
            activations, modelled = 0, False
            warnings.append(f"{c.name} ({c.class_name}): activations not modelled")
        memories.append(ComponentMemory(c.name, parameters, loaded, activations, modelled, upcast))
    if denoiser is None:
        warnings.append("no UNet or transformer component: the denoising step is not modelled")
    return PipelineMemory(height, width, batch_size, guided, compute, latent, tokens, tuple(memories),
                          overhead_bytes, tuple(warnings))  # fmt: skip


def _denoiser(c: Component, latent: tuple[int, int], prefix: str, eager: bool,
              warnings: list[str]) -> tuple[int, int | None]:  # fmt: skip
    """(elements of the activation peak per sample, tokens per sample for a DiT)."""
    config = c.config
    if c.class_name == "UNet2DConditionModel":
        return _unet(config, latent, eager), None
    heads, head_dim = _int(config.get("num_attention_heads")), _int(config.get("attention_head_dim"))
    if heads and head_dim and c.class_name.endswith("Transformer2DModel"):  # an image DiT (not a video one)
        patch = 2 if prefix.startswith("Flux") else (_int(config.get("patch_size")) or 1)  # FLUX packs 2x2 latents
        text = next((n for p, n in TEXT_TOKENS.items() if prefix.startswith(p)), 0)
        if not text:
            warnings.append(f"{prefix}: the denoiser's text tokens are not known: image tokens only")
        tokens = (latent[0] // patch) * (latent[1] // patch) + text
        scores = 2 * heads * tokens * tokens if eager else 0
        return tokens * DIT_TOKEN * heads * head_dim + scores, tokens
    warnings.append(f"{c.name} ({c.class_name}): activations not modelled")
    return 0, None


def _unet(config: Mapping[str, Any], latent: tuple[int, int], eager: bool) -> int:
    """Skip connections held plus the largest block's working set (elements per sample)."""
    channels = _ints(config.get("block_out_channels"))
    listed = config.get("down_block_types")
    kinds: list[Any] = listed if isinstance(listed, list) else []
    per_block = _per_block(config.get("layers_per_block", 2), len(channels))
    heads = _per_block(config.get("num_attention_heads") or config.get("attention_head_dim", 8), len(channels))
    pixels = [ceil(latent[0] / 2**i) * ceil(latent[1] / 2**i) for i in range(len(channels) + 1)]
    skips = channels[0] * pixels[0] if channels else 0  # conv_in's output
    transient = 0
    for i, c in enumerate(channels):
        skips += per_block[i] * c * pixels[i] + (c * pixels[i + 1] if i < len(channels) - 1 else 0)
        attends = i < len(kinds) and isinstance(kinds[i], str) and "Attn" in kinds[i]
        work = max(UNET_RESNET * c * pixels[i], UNET_FF * c * pixels[i] if attends else 0)
        if attends and eager:
            work += 2 * heads[i] * pixels[i] ** 2
        transient = max(transient, work)
    return skips + transient


def _decode(c: Component, latent: tuple[int, int], height: int, width: int, eager: bool) -> int:
    """The decoder's largest working set on the way back to full resolution, and the image (elements per image)."""
    channels = list(reversed(_ints(c.config.get("block_out_channels"))))
    if not channels:
        return 0
    pixels = [latent[0] * 2**j * latent[1] * 2**j for j in range(len(channels))]
    work = 2 * pixels[0] ** 2 if eager else 0  # the mid block's one-head attention over the latent
    for j, out in enumerate(channels):
        into = channels[j - 1] if j else channels[0]
        work = max(work, pixels[j] * (2 * into + 2 * out))  # a resnet: input and its norm, conv and shortcut
        if j < len(channels) - 1:
            work = max(work, pixels[j + 1] * 2 * out + pixels[j] * out)  # the upsampler: nearest x2, then conv
    return work + 3 * height * width


def _text_encoder(c: Component, prefix: str) -> int:
    """Rule of thumb: one layer's working set over the prompt's tokens."""
    config = c.config
    nested = config.get("text_config")
    text: Mapping[str, Any] = nested if isinstance(nested, dict) else config
    hidden = _int(text.get("hidden_size")) or _int(text.get("d_model")) or 0
    inner = _int(text.get("intermediate_size")) or _int(text.get("d_ff")) or 4 * hidden
    t5 = "T5" in c.class_name
    tokens = next((n for p, n in T5_TOKENS.items() if prefix.startswith(p)), 512) if t5 else CLIP_TOKENS
    return tokens * (2 * hidden + inner)


def spread_gpus(run: PipelineMemory, usable: int) -> int | None:
    """GPUs that hold every component whole (first fit, largest first): each GPU its components' weights, the
    largest of their activations and the overhead; None when one component alone does not fit."""
    items = sorted(((c.weights_bytes + c.upcast_bytes, c.activations_bytes) for c in run.components), reverse=True)
    gpus: list[tuple[int, int]] = []  # (weights, largest activations) per GPU
    for weights, activations in items:
        for i, (held, peak) in enumerate(gpus):
            if held + weights + max(peak, activations) + run.overhead_bytes <= usable:
                gpus[i] = (held + weights, max(peak, activations))
                break
        else:
            if weights + activations + run.overhead_bytes > usable:
                return None
            gpus.append((weights, activations))
    return max(len(gpus), 1)


def denoiser_only(pipeline: Pipeline) -> tuple[Tensor, ...]:
    """The tensors a fine-tune trains: the denoiser's (text encoders and VAE frozen, as diffusers' training
    examples keep them)."""
    denoiser = pipeline.denoiser
    return pipeline.tensors(denoiser) if denoiser else ()


def _int(value: object) -> int | None:
    return value if type(value) is int and value > 0 else None


def _ints(value: object) -> list[int]:
    return [v for v in value if type(v) is int and v > 0] if isinstance(value, list) else []


def _per_block(value: object, n: int) -> list[int]:
    """An int or per-block list (layers_per_block, heads) as one value per block."""
    if isinstance(value, list):
        values = _ints(value)
        return (values + values[-1:] * n)[:n] if values else [1] * n
    return [value if type(value) is int and value > 0 else 1] * n

