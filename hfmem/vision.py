"""Vision towers of vision-language models: which checkpoint tensors are theirs, and what an image costs in tokens
(pure; no I/O).

Image tokens follow each family's processor in transformers (5.24):
- a fixed count per image for LLaVA-1.5 (processing_llava.py:90-93) and Gemma-3 (processing_gemma3.py:135);
- PaliGemma: one token per SigLIP patch, (image_size // patch_size)^2 (configuration_paligemma.py,
  PaliGemmaConfig.__init__ sets text_config.num_image_tokens so);
- Qwen2-VL / Qwen2.5-VL's dynamic resolution: smart_resize to a multiple of patch x merge
  (image_processing_qwen2_vl.py:63-89), one token per merge x merge patches (processing_qwen2_vl.py:83);
- LLaVA-NeXT's "anyres" (processing_llava_next.py, LlavaNextProcessor._get_number_of_features and
  _get_unpadded_features): the image is fitted to the best of image_grid_pinpoints (image_processing_utils.py,
  select_best_resolution) and cut into crops of the tower's size, which the tower sees beside the whole image
  resized (image_processing_llava_next.py, get_image_patches); the language model sees the whole image's patches,
  then the crops' patches with the padding rows or columns removed and one newline token per row;
- Pixtral (Pixtral-12B as `llava`, Mistral-Small-3.1 as `mistral3`; processing_pixtral.py,
  PixtralProcessor.__call__; image_processing_pixtral.py, get_resize_output_image_size): the image is scaled down
  to fit the processor's longest edge, taken to be the tower's image_size, then up to whole patches of patch_size
  x spatial_merge_size; one [IMG] token per merged patch and one [IMG_BREAK] per row, the last one [IMG_END].
Other multimodal families have their tower counted but no image tokens (--images says so).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import checked_int
from .errors import ConfigError

# Tensors of a vision tower or of its projector into the language model, under the names save_pretrained writes
# (llava/gemma3/paligemma/mistral3 `vision_tower.` + `multi_modal_projector.`, Qwen2-VL `visual.`, mllama and
# idefics3 `vision_model.` + `connector.`, original LLaVA `mm_projector.`, Phi-3-vision `vision_embed_tokens.`),
# bare or under `model.` (transformers >= 4.52 layouts).
VISION_TENSOR = re.compile(
    r"^(?:model\.)?(?:vision_tower|visual|vision_model|multi_modal_projector|mm_projector|connector"
    r"|vision_embed_tokens)\."
)

# Image processor defaults (Qwen2VLImageProcessor, image_processing_qwen2_vl.py:96): size shortest_edge and
# longest_edge are min_pixels 56 x 56 and max_pixels 28 x 28 x 1280.
QWEN_MIN_PIXELS, QWEN_MAX_PIXELS = 56 * 56, 28 * 28 * 1280
# A dynamic-resolution model needs an image size; without --image-size, this one is assumed (and said).
DEFAULT_IMAGE_SIZE = (1024, 1024)


def is_vision_tensor(name: str) -> bool:
    return VISION_TENSOR.match(name) is not None


@dataclass(frozen=True)
class VisionTower:
    """What the memory model needs of a vision encoder (a ViT): its width and depth, and how images become
    patches (its sequence) and the language model's image tokens."""

    family: str  # the multimodal model_type: "llava", "gemma3", "qwen2_5_vl", ...
    kind: str  # the tower's: "clip_vision_model", "siglip_vision_model", "qwen2_5_vl", ...
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    gated: bool  # gate/up/down MLP (Qwen2.5-VL) rather than fc1/fc2
    hidden_act: str  # the MLP's activation (CLIP's quick_gelu is a chain of Python ops, as GPT-2's gelu_new)
    patch_size: int
    image_size: int | None  # fixed square input (CLIP/SigLIP); None: dynamic resolution
    class_token: bool  # CLIP prepends a class embedding to the patches
    tokens_per_image: int | None  # fixed LM tokens per image; None: from the image size, or not modelled
    spatial_merge_size: int = 1  # Qwen2-VL: merge x merge patches become one LM token
    dynamic: bool = False  # the image size decides the tokens: Qwen2-VL's smart_resize, LLaVA-NeXT's anyres
    grid_pinpoints: tuple[tuple[int, int], ...] = ()  # LLaVA-NeXT: the (height, width) an image may be fitted to

    @property
    def models_images(self) -> bool:
        """Whether hfmem knows how many tokens an image adds to the sequence."""
        return self.dynamic or self.tokens_per_image is not None

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "model_type": self.kind, "hidden_size": self.hidden_size,
                "num_hidden_layers": self.num_hidden_layers, "num_attention_heads": self.num_attention_heads,
                "intermediate_size": self.intermediate_size, "hidden_act": self.hidden_act,
                "patch_size": self.patch_size,
                "image_size": self.image_size, "tokens_per_image": self.tokens_per_image,
                "spatial_merge_size": self.spatial_merge_size, "dynamic_resolution": self.dynamic,
                "grid_pinpoints": [list(p) for p in self.grid_pinpoints] or None}  # fmt: skip


@dataclass(frozen=True)
class ImageGrid:
    """One image as the model sees it: pixels after the processor, ViT patches, and LM tokens."""

    height: int
    width: int
    patches: int  # the vision encoder's sequence (class token included)
    tokens: int  # placeholder tokens in the language model's sequence
    crops: int = 1  # sequences of `patches` the encoder runs per image (LLaVA-NeXT: the whole image + its crops)


# Class defaults of the towers (transformers configuration_clip.py:97-104, configuration_siglip.py:93-99) for keys
# a config.json leaves out; config.config_parameters counts a pickle-only repo's tower from them too.
_CLIP = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
         "image_size": 224, "patch_size": 32, "num_channels": 3}  # fmt: skip
TOWER_DEFAULTS = {"clip_vision_model": _CLIP, "siglip_vision_model": {**_CLIP, "patch_size": 16}}
_ACTIVATIONS = {"clip_vision_model": "quick_gelu", "siglip_vision_model": "gelu_pytorch_tanh"}
# LlavaConfig's tower when vision_config is absent: CLIP ViT-L/14 at 336 px (LlavaNextConfig's too).
LLAVA_TOWER = {"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
               "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 336, "patch_size": 14}  # fmt: skip
# PaliGemmaConfig's tower when vision_config is absent: SigLIP So400m/14 at 224 px (configuration_paligemma.py).
PALIGEMMA_TOWER = {"model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4096,
                   "num_hidden_layers": 27, "num_attention_heads": 16, "image_size": 224, "patch_size": 14}  # fmt: skip
# LlavaNextConfig's image_grid_pinpoints when config.json leaves them out (configuration_llava_next.py).
LLAVA_NEXT_PINPOINTS = ((336, 672), (672, 336), (672, 672), (1008, 336), (336, 1008))
# PixtralVisionConfig's defaults (configuration_pixtral.py) for keys a config.json leaves out, and Mistral3Config's
# tower when vision_config is absent (configuration_mistral3.py).
_PIXTRAL = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "num_attention_heads": 16,
            "image_size": 1024, "patch_size": 16}  # fmt: skip
MISTRAL3_TOWER = {"model_type": "pixtral", "image_size": 1540, "patch_size": 14}
MAX_PINPOINTS = 64  # resolutions one config may list (LLaVA-NeXT's have 5 to 10)
MAX_PINPOINT = 16_384  # pixels a side of one may have


def read_vision_tower(config: Mapping[str, Any]) -> tuple[VisionTower | None, list[str]]:
    """The vision tower a multimodal config.json describes, and warnings; (None, []) for a text-only model.
    Raises ConfigError for a number no tower can have."""
    warnings: list[str] = []
    family = config.get("model_type")
    family = family if isinstance(family, str) else ""
    vision = config.get("vision_config")
    if vision is None:
        vision = {"llava": LLAVA_TOWER, "llava_next": LLAVA_TOWER, "paligemma": PALIGEMMA_TOWER,
                  "mistral3": MISTRAL3_TOWER}.get(family)  # fmt: skip
    if not isinstance(vision, Mapping):
        return None, warnings
    if family in ("qwen2_vl", "qwen2_5_vl"):
        return _qwen_tower(family, vision, warnings), warnings
    kind = vision.get("model_type")
    if kind == "pixtral" or family == "mistral3":  # Mistral3Config's tower is Pixtral's whatever it names
        return _pixtral_tower(family, config, vision, warnings), warnings
    defaults = TOWER_DEFAULTS.get(kind if isinstance(kind, str) else "clip_vision_model")
    if defaults is None:  # counted from the headers all the same; --images says it is not modelled
        return None, warnings
    v = {key: _int(vision, key, default, warnings) for key, default in defaults.items()}
    kind = kind if isinstance(kind, str) else "clip_vision_model"
    clip = kind == "clip_vision_model"
    patches = (v["image_size"] // v["patch_size"]) ** 2
    tokens: int | None = None
    pinpoints: tuple[tuple[int, int], ...] = ()
    strategy = config.get("vision_feature_select_strategy", "default")
    if family == "llava":  # processing_llava.py:90-93: + the class token, - 1 for the "default" strategy
        tokens = patches + clip - (strategy == "default")
    elif family == "gemma3":  # the tower's patches average-pooled to mm_tokens_per_image (modeling_gemma3.py:647)
        tokens = _int(config, "mm_tokens_per_image", 256, warnings, prefix="")
    elif family == "paligemma":  # every SigLIP patch is a token (SigLIP has no class token)
        tokens = patches
    elif family == "llava_next" and strategy == "default":  # "full" keeps class tokens whose count the processor's
        pinpoints = _pinpoints(config.get("image_grid_pinpoints", LLAVA_NEXT_PINPOINTS), v)  # own config decides
    return VisionTower(
        family=family,
        kind=kind,
        hidden_size=v["hidden_size"],
        num_hidden_layers=v["num_hidden_layers"],
        num_attention_heads=v["num_attention_heads"],
        intermediate_size=v["intermediate_size"],
        gated=False,
        hidden_act=_activation(vision, _ACTIVATIONS[kind]),
        patch_size=v["patch_size"],
        image_size=v["image_size"],
        class_token=clip,
        tokens_per_image=tokens,
        dynamic=bool(pinpoints),
        grid_pinpoints=pinpoints,
    ), warnings  # fmt: skip


def _qwen_tower(family: str, vision: Mapping[str, Any], warnings: list[str]) -> VisionTower:
    """Qwen2-VL (configuration_qwen2_vl.py:33-42: embed_dim wide, fc1/fc2 of mlp_ratio x embed_dim, quick_gelu;
    its hidden_size is the language model's) and Qwen2.5-VL (configuration_qwen2_5_vl.py:53-65: hidden_size wide,
    a gated SiLU MLP of intermediate_size)."""
    qwen25 = family == "qwen2_5_vl"
    if qwen25:
        width, inner = _int(vision, "hidden_size", 3584, warnings), _int(vision, "intermediate_size", 3420, warnings)
    else:
        width = _int(vision, "embed_dim", 1280, warnings)
        inner = width * _int(vision, "mlp_ratio", 4, warnings)
    return VisionTower(
        family=family,
        kind=family,
        hidden_size=width,
        num_hidden_layers=_int(vision, "depth", 32, warnings),
        num_attention_heads=_int(vision, "num_heads", 16, warnings),
        intermediate_size=inner,
        gated=qwen25,
        hidden_act=_activation(vision, "silu" if qwen25 else "quick_gelu"),
        patch_size=_int(vision, "patch_size", 14, warnings),
        image_size=None,
        class_token=False,
        tokens_per_image=None,
        spatial_merge_size=_int(vision, "spatial_merge_size", 2, warnings),
        dynamic=True,
    )


def _pixtral_tower(family: str, config: Mapping[str, Any], vision: Mapping[str, Any], warnings: list[str]
                   ) -> VisionTower:  # fmt: skip
    """Pixtral's tower: RMS-normed layers with a gated MLP (modeling_pixtral.py, PixtralMLP), no class token. Its
    images' tokens are modelled for `llava` (no merge) and `mistral3` (spatial_merge_size x spatial_merge_size
    patches to a token, Mistral3Config's default 2)."""
    v = {key: _int(vision, key, default, warnings) for key, default in _PIXTRAL.items()}
    modelled = family in ("llava", "mistral3")
    merge = _int(config, "spatial_merge_size", 2, warnings, prefix="") if family == "mistral3" else 1
    return VisionTower(
        family=family,
        kind="pixtral",
        hidden_size=v["hidden_size"],
        num_hidden_layers=v["num_hidden_layers"],
        num_attention_heads=v["num_attention_heads"],
        intermediate_size=v["intermediate_size"],
        gated=True,
        hidden_act=_activation(vision, "gelu"),
        patch_size=v["patch_size"],
        image_size=v["image_size"],
        class_token=False,
        tokens_per_image=None,
        spatial_merge_size=merge,
        dynamic=modelled,
    )


def _pinpoints(value: Any, tower: Mapping[str, int]) -> tuple[tuple[int, int], ...]:
    """image_grid_pinpoints: a list of [height, width] pairs of whole pixels, each side at least one crop (the
    tower's image_size, itself at least one patch)."""
    side = tower["image_size"]
    if side < tower["patch_size"]:
        raise ConfigError(f"vision_config image_size {side} is smaller than its patch_size {tower['patch_size']}")
    pairs = value if isinstance(value, (list, tuple)) and 0 < len(value) <= MAX_PINPOINTS else None
    if pairs is None or not all(
        isinstance(p, (list, tuple)) and len(p) == 2 and all(type(x) is int and side <= x <= MAX_PINPOINT for x in p)
        for p in pairs
    ):
        raise ConfigError(f"image_grid_pinpoints is not a list of 1 to {MAX_PINPOINTS} [height, width] pairs of "
                          f"{side} to {MAX_PINPOINT:,} pixels")  # fmt: skip
    return tuple((h, w) for h, w in pairs)


def _activation(vision: Mapping[str, Any], default: str) -> str:
    value = vision.get("hidden_act")
    return value if isinstance(value, str) and value.isidentifier() and len(value) <= 40 else default


def _int(cfg: Mapping[str, Any], key: str, default: int, warnings: list[str], prefix: str = "vision_config.") -> int:
    value = checked_int(key, prefix + key, cfg.get(key), warnings)
    return default if value is None else value


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen2-VL's resize (image_processing_qwen2_vl.py:63-89): each side rounded to a multiple of `factor`, then
    scaled, keeping the aspect ratio, into [min_pixels, max_pixels]. Its refusal of an aspect ratio above 200
    is Settings' (settings.MAX_ASPECT)."""
    h_bar, w_bar = round(height / factor) * factor, round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def select_best_resolution(height: int, width: int, pinpoints: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """The (height, width) of `pinpoints` an image is fitted to: the most of its pixels kept once scaled to fit,
    then the fewest wasted (image_processing_utils.py, select_best_resolution)."""
    best, kept_most, wasted_least = pinpoints[0], 0, math.inf
    for h, w in pinpoints:
        scale = min(w / width, h / height)
        kept = min(int(width * scale) * int(height * scale), width * height)
        wasted = w * h - kept
        if kept > kept_most or (kept == kept_most and wasted < wasted_least):
            best, kept_most, wasted_least = (h, w), kept, wasted
    return best


def _anyres_grid(tower: VisionTower, side: int, height: int, width: int) -> ImageGrid:
    """LLaVA-NeXT's tokens for an image of height x width, cut into crops of side x side (see the module
    docstring)."""
    best_h, best_w = select_best_resolution(height, width, tower.grid_pinpoints)
    per_side = side // tower.patch_size
    rows, columns = per_side * (best_h // side), per_side * (best_w // side)
    if width / height > columns / rows:  # wider than the crops: rows of padding above and below are dropped
        rows -= (rows - int(round(height * (columns / width), 7))) // 2 * 2
    else:
        columns -= (columns - int(round(width * (rows / height), 7))) // 2 * 2
    tokens = rows * columns + rows + per_side**2  # crops unpadded, a newline per row, the whole image
    crops = 1 + (best_h // side) * (best_w // side)
    return ImageGrid(best_h, best_w, per_side**2 + tower.class_token, tokens, crops)


def _pixtral_grid(tower: VisionTower, longest: int, height: int, width: int) -> ImageGrid:
    """Pixtral's tokens for an image of height x width (see the module docstring)."""
    merged = tower.patch_size * tower.spatial_merge_size
    ratio = max(height / longest, width / longest)
    if ratio > 1:  # floored, not rounded, so that no side exceeds the longest edge (and at least a pixel left)
        height, width = max(1, math.floor(height / ratio)), max(1, math.floor(width / ratio))
    rows, columns = (height - 1) // merged + 1, (width - 1) // merged + 1
    patches = rows * columns * tower.spatial_merge_size**2
    return ImageGrid(rows * merged, columns * merged, patches, rows * (columns + 1))


def image_grid(tower: VisionTower, image_size: tuple[int, int] | None) -> ImageGrid | None:
    """One image's patches and tokens; None when the family's image tokens are not modelled. A fixed-resolution
    processor resizes every image to the tower's size, so `image_size` matters only for dynamic ones (None: the
    default size)."""
    if tower.grid_pinpoints and tower.image_size:
        return _anyres_grid(tower, tower.image_size, *(image_size or DEFAULT_IMAGE_SIZE))
    if tower.kind == "pixtral" and tower.dynamic and tower.image_size:
        return _pixtral_grid(tower, tower.image_size, *(image_size or DEFAULT_IMAGE_SIZE))
    if tower.dynamic:
        merge = tower.spatial_merge_size
        h, w = smart_resize(*(image_size or DEFAULT_IMAGE_SIZE), tower.patch_size * merge, QWEN_MIN_PIXELS,
                            QWEN_MAX_PIXELS)  # fmt: skip
        patches = (h // tower.patch_size) * (w // tower.patch_size)  # grid_t = 1 for an image
        return ImageGrid(h, w, patches, patches // merge**2)
    if tower.tokens_per_image is None or tower.image_size is None:
        return None
    side = tower.image_size
    patches = (side // tower.patch_size) ** 2 + tower.class_token
    return ImageGrid(side, side, patches, tower.tokens_per_image)
