"""Vision-language inputs: the image tokens --images adds to each sequence, and the vision tower's activations.

Each sequence holds text + images x tokens per image (hfmem.vision.image_grid); the KV cache and the language
model's activations see that whole sequence. The tower runs over batch x images x crops x patches tokens (crops:
LLaVA-NeXT's whole image and its crops, else 1), each of its layers a pre-norm transformer block, so its
per-token terms are a text layer's (activations.py) at the tower's width, heads and MLP:
- inference: one tower layer's working set over every patch. The tower runs before the prefill and is done when
  it starts, so the larger of the two is the peak, not their sum;
- full training (the tower trains, as in LLaVA's and Qwen2.5-VL's full fine-tuning): every tower layer's saved
  activations stay until backward reaches the tower, last, so they are there at the end of the language model's
  backward too (StepActivations.first_in); under gradient checkpointing only each layer's input
  (transformers checkpoints the tower's GradientCheckpointingLayer blocks too: modeling_clip.py:353,
  modeling_qwen2_5_vl.py:342);
- LoRA (the tower frozen, the default of LLaVA-style LoRA recipes): nothing in the tower needs a gradient, so it
  saves nothing, unless an adapter lands in it (PEFT matches q_proj, k_proj, ... in the tower too): then it
  saves as a frozen block, plus PEFT's fp32 input copies of the adapted linears, per patch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..untrusted import shortened
from ..vision import DEFAULT_IMAGE_SIZE, ImageGrid, VisionTower, image_grid, is_vision_tensor
from . import activations as act
from .facts import Dims, ModelFacts
from .results import Formula
from .settings import Recipe, Settings

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .lora import Adapter
    from .phases import StepActivations

ADAPTER_INPUT_BYTES = 4  # PEFT's fp32 copy of an adapted linear's input, and lora_A's output


@dataclass(frozen=True)
class ImageInputs:
    """What --images puts in each sequence."""

    images: int
    grid: ImageGrid
    tower: VisionTower

    @property
    def tokens(self) -> int:
        return self.images * self.grid.tokens

    def inputs(self, seq_len: int) -> dict[str, int | float | str]:
        """The explain inputs: how the sequence is made up, and what the tower sees."""
        return {
            "text_tokens": seq_len - self.tokens,
            "images": self.images,
            "tokens_per_image": self.grid.tokens,
            "sequence": seq_len,
            "image_size": f"{self.grid.height}x{self.grid.width}",
            "patches_per_image": self.grid.patches,
            **({"crops_per_image": self.grid.crops} if self.grid.crops > 1 else {}),
            "vision_layers": self.tower.num_hidden_layers,
            "vision_hidden": self.tower.hidden_size,
        }


def image_inputs(facts: ModelFacts, settings: Settings, warnings: list[str] | None = None) -> ImageInputs | None:
    """The images of one sequence, or None when there are none (or the model's are not modelled: a warning)."""
    if not settings.images:
        return None
    say = warnings.append if warnings is not None else (lambda _: None)
    tower = facts.spec.vision
    if tower is None or not tower.models_images:
        family = shortened(tower.family if tower else facts.model_type)
        say(f"--images: the image tokens of {family} models are not modelled: images ignored")
        return None
    if tower.dynamic and settings.image_size is None:
        say(f"--image-size not given: {DEFAULT_IMAGE_SIZE[0]}x{DEFAULT_IMAGE_SIZE[1]} images assumed")
    elif not tower.dynamic and settings.image_size is not None:
        say(f"--image-size ignored: {tower.family} resizes every image to {tower.image_size}x{tower.image_size}")
    size = settings.image_size
    assert not isinstance(size, str)  # Settings parses "HxW"
    grid = image_grid(tower, size if tower.dynamic else None)
    return ImageInputs(settings.images, grid, tower) if grid is not None else None


def image_tokens(facts: ModelFacts, settings: Settings, warnings: list[str] | None = None) -> int:
    """Tokens --images adds to each sequence (0 without images)."""
    inputs = image_inputs(facts, settings, warnings)
    return inputs.tokens if inputs else 0


def tower_dims(tower: VisionTower) -> Dims:
    """The tower as a stack of encoder layers (full multi-head attention, no cache, no logits)."""
    h, heads = tower.hidden_size, tower.num_attention_heads
    head_dim = h // heads
    return Dims(
        hidden=h, layers=tower.num_hidden_layers, decoder_layers=0, heads=heads, kv_heads=heads, head_dim=head_dim,
        intermediate=tower.intermediate_size, vocab=0, max_positions=None, gated=tower.gated, layer_kinds=(),
        window=None, mla=False, q_lora_rank=0, kv_lora_rank=0, qk_head_dim=head_dim, v_head_dim=head_dim,
        qk_rope_head_dim=0, moe_layers=0, experts=0, experts_per_token=1, expert_intermediate=0,
        shared_intermediate=0, encoder_decoder=False, encoder_only=True, has_lm_logits=False,
        activation=tower.hidden_act,
    )  # fmt: skip


def inference_activations(facts: ModelFacts, settings: Settings, c: int, seq_len: int) -> tuple[int, Formula | None]:
    """The tower's peak at inference: one layer's working set over b x images x patches (0 without images)."""
    inputs = image_inputs(facts, settings)
    if inputs is None:
        return 0, None
    patches = inputs.grid.patches
    eager = settings.attention == "eager"
    per_token = act.prefill_layer_peak(tower_dims(inputs.tower), c, kv_len=patches, padded=False, eager=eager)
    total = settings.batch_size * inputs.images * inputs.grid.crops * patches * per_token
    return total, Formula(
        "vision tower",
        "b x images x crops x patches x one tower layer's working set (as a text layer's, at the tower's width); "
        "sequence = text + images x tokens per image",
        {"batch_size": settings.batch_size, **inputs.inputs(seq_len), "compute_bytes": c},
        total,
        exact=False,
    )


def with_tower(
    steps: StepActivations,
    facts: ModelFacts,
    settings: Settings,
    *,
    c: int,
    residual: int,
    seq_len: int,
    trainable: bool,
    adapted: Sequence[Adapter] = (),
    rank: int = 0,
) -> StepActivations:
    """A training step's activations with the vision tower's saved activations added (see the module docstring):
    `trainable` for full training, else a frozen tower that saves only where `adapted` modules lie in it."""
    inputs = image_inputs(facts, settings)
    if inputs is None:
        return steps
    tower, patches = inputs.tower, inputs.grid.patches
    dims = tower_dims(tower)
    tokens = settings.batch_size * inputs.images * inputs.grid.crops * patches
    in_tower = [a for a in adapted if a.linear and is_vision_tensor(a.module)]
    adapter_bytes = ADAPTER_INPUT_BYTES * sum((a.in_features + rank) * a.count for a in in_tower)
    if not (trainable or in_tower):
        saved, expression = 0, "frozen tower without adapters: saves nothing for backward"
    elif settings.grad_checkpointing:
        saved = tokens * (dims.layers * c * dims.hidden + adapter_bytes)
        expression = "b x images x crops x patches x (tower layers x h x c (each layer's input) + adapter inputs)"
    else:
        layer = act.layer_saved(dims, c, residual, kv_len=patches, padded=False, trainable=trainable,
                                eager=settings.attention == "eager", autocast=settings.recipe is Recipe.MIXED)
        saved = tokens * (dims.layers * (layer.per_token() + layer.per_sequence) + adapter_bytes)
        expression = (
            "b x images x crops x patches x (tower layers x saved per token (as a text layer's"
            + (", trainable" if trainable else ", frozen")
            + ") + adapter inputs)"
        )
    formula = Formula(
        "vision tower",
        expression + "; sequence = text + images x tokens per image",
        {"batch_size": settings.batch_size, **inputs.inputs(seq_len), "adapted_in_tower": len(in_tower)},
        saved,
        exact=False,
    )
    formulas = (*steps.formulas, formula)
    return replace(steps, saved=steps.saved + saved, first_in=steps.first_in + saved, formulas=formulas)
