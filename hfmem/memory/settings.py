"""What the user chose: batch, sequence, dtypes, training recipe, optimizer, LoRA and sharding."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..gpus import Gpu


class Mode(str, Enum):
    """What memory is estimated for. Members equal their values, so "lora" works wherever a Mode does."""

    INFERENCE = "inference"
    TRAINING = "training"
    LORA = "lora"  # LoRA / QLoRA fine-tuning

    def __str__(self) -> str:
        return self.value


MODES: tuple[Mode, ...] = tuple(Mode)


class Optimizer(str, Enum):
    """Training optimizer (values as the CLI spells them)."""

    ADAMW = "adamw"  # torch.optim.AdamW, foreach implementation (torch's default on CUDA)
    ADAMW_8BIT = "adamw-8bit"  # bitsandbytes AdamW8bit (block-wise 8-bit states)
    SGD = "sgd"  # plain SGD: no state
    SGD_MOMENTUM = "sgd-momentum"  # one momentum buffer
    ADAFACTOR = "adafactor"  # transformers Adafactor: factored second moment, no first moment (beta1=None)


class Recipe(str, Enum):
    """Training precision recipe."""

    MIXED = "mixed"  # fp32 model (master weights) + bf16 autocast: 4 B weights, 4 B grads, fp32 states
    BF16 = "bf16"  # pure 16-bit weights, grads and optimizer states (torchtune, PEFT's full fine-tune)
    FP32 = "fp32"  # everything fp32


class Int4Scheme(str, Enum):
    """How --dtype int4 quantises linear weights (bitsandbytes)."""

    NF4_DQ = "nf4-dq"  # the QLoRA recipe: NF4, double quantisation, 16-bit compute -> 4.127 bits/weight
    BNB_DEFAULT = "bnb-default"  # load_in_4bit=True defaults: FP4, no double quantisation (4.5 bits), fp32 compute


DTYPES = ("auto", "float32", "bfloat16", "float16", "int8", "int4")
KV_DTYPES = ("auto", "float16", "bfloat16", "fp8")
ATTENTIONS = ("sdpa", "eager")
LOGITS = ("last", "all")
PADDINGS = ("none", "padded")
INFERENCE_ENGINES = ("transformers", "vllm", "sglang")  # whose KV rules the inference column follows
DEFAULT_SEQ_LEN = 4096  # used when the model states no context, and the cap of the default
DEFAULT_LORA_RANK = 16
# llama.cpp's --cache-type-k/-v choices (common/arg.cpp kv_cache_types), by their ggml names in lower case
CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
MAX_IMAGES = 10_000  # per sequence
MAX_IMAGE_SIDE = 2**16  # pixels
MAX_ASPECT = 200  # Qwen2-VL's smart_resize refuses a longer side over 200 x the shorter (the strictest processor)


@dataclass(frozen=True)
class Settings:
    batch_size: int = 1
    seq_len: int | None = None  # None -> min(model context, 4096)
    dtype: str = "auto"  # weights for inference: auto (as stored) | float32 | bfloat16 | float16 | int8 | int4
    kv_dtype: str = "auto"  # auto (the compute dtype) | float16 | bfloat16 | fp8
    attention: str = "sdpa"  # sdpa: memory-efficient kernels; eager: materialises heads x seq^2 scores
    optimizer: Optimizer = Optimizer.ADAMW
    recipe: Recipe = Recipe.MIXED
    grad_checkpointing: bool = False
    lora_rank: int | None = None  # None -> an adapter repo's r, else DEFAULT_LORA_RANK
    # None -> an adapter repo's targets, else the architecture's attention projections; as PEFT takes
    # target_modules: "q_proj,v_proj", a list of names, or "all-linear"
    lora_targets: tuple[str, ...] | str | None = None
    qlora: bool = False
    overhead_bytes: int = 512 * 2**20  # CUDA context + library workspaces (memory-model.md B §1.5: 0.25-0.45 GiB)
    gpus: int = 1  # GPUs to shard over (tensor-style split for inference, ZeRO/FSDP for training)
    zero: int = 0  # ZeRO stage 0-3 for training when gpus > 1
    usable_fraction: float = 0.9  # share of a GPU's memory the estimate may fill
    logits: str = "last"  # inference prefill logits: last position (generate) | all positions (plain forward)
    # none: every sequence of a batch is full (packed or equal lengths), so transformers passes no mask and SDPA
    # runs GQA natively; padded: a (batch, 1, seq, seq) mask and K/V repeated to every query head
    padding: str = "none"
    decoder_len: int | None = None  # encoder-decoder models: decoder tokens (None: seq_len); seq_len is the encoder's
    # the training loop keeps the model output through backward (outputs = model(...); loss = outputs.loss, as
    # PEFT's MetaMathQA loop), so its compute-dtype logits stay alive; False: loss = model(...).loss (the Trainer)
    keep_outputs: bool = False
    int4: Int4Scheme = Int4Scheme.NF4_DQ
    adapter_merged: bool = False  # an adapter repo's inference: merged into the base, or kept apart (PEFT's default)
    # GGUF models run under llama.cpp's rules (hfmem.engines.llamacpp): the KV cache's ggml types, and the
    # repeating layers offloaded to the GPU (None: all of them and the output layer, llama.cpp's default)
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    n_gpu_layers: int | None = None
    # Vision-language models: images per sequence (each adds the model's image tokens to the sequence and runs
    # the vision tower), and their size in pixels (height, width; or "HxW") for dynamic-resolution towers
    images: int = 0
    image_size: tuple[int, int] | str | None = None
    engine: str = "transformers"  # the inference column's KV rules (hfmem.engines); GGUF models: llama.cpp's

    def __post_init__(self) -> None:
        checks = [
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.seq_len is None or self.seq_len >= 1, "seq_len must be at least 1"),
            (self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}"),
            (self.kv_dtype in KV_DTYPES, f"kv_dtype must be one of {', '.join(KV_DTYPES)}"),
            (self.attention in ATTENTIONS, f"attention must be one of {', '.join(ATTENTIONS)}"),
            (self.logits in LOGITS, f"logits must be one of {', '.join(LOGITS)}"),
            (self.padding in PADDINGS, f"padding must be one of {', '.join(PADDINGS)}"),
            (self.decoder_len is None or self.decoder_len >= 1, "decoder_len must be at least 1"),
            (self.engine in INFERENCE_ENGINES, f"engine must be one of {', '.join(INFERENCE_ENGINES)}"),
            (self.lora_rank is None or self.lora_rank >= 1, "lora_rank must be at least 1"),
            (self.cache_type_k in CACHE_TYPES and self.cache_type_v in CACHE_TYPES,
             f"cache_type_k and cache_type_v must be one of {', '.join(CACHE_TYPES)}"),
            (self.n_gpu_layers is None or self.n_gpu_layers >= 0, "n_gpu_layers must not be negative"),
            (self.overhead_bytes >= 0, "overhead_bytes must not be negative"),
            (self.gpus >= 1, "gpus must be at least 1"),
            (self.zero in (0, 1, 2, 3), "zero must be 0, 1, 2 or 3"),
            (0 < self.usable_fraction <= 1, "usable_fraction must be in (0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if not 0 <= self.images <= MAX_IMAGES:
            raise ValueError(f"images must be 0 to {MAX_IMAGES:,}")
        if self.image_size is not None:
            object.__setattr__(self, "image_size", parse_image_size(self.image_size))
        # Accept the CLI's strings for the enums, and PEFT's spellings of target_modules.
        if self.lora_targets is not None:
            targets = self.lora_targets.split(",") if isinstance(self.lora_targets, str) else self.lora_targets
            names = tuple(t.strip() for t in targets if t.strip())
            if not names:
                raise ValueError("lora_targets names no module")
            object.__setattr__(self, "lora_targets", names)
        object.__setattr__(self, "optimizer", Optimizer(self.optimizer))
        object.__setattr__(self, "recipe", Recipe(self.recipe))
        object.__setattr__(self, "int4", Int4Scheme(self.int4))

    def decoder_tokens(self, seq_len: int, encoder_decoder: bool) -> int:
        """Tokens the decoder runs over and its self-attention caches: an encoder-decoder model's decoder_len
        (default seq_len, which is then the encoder's); any other model's seq_len."""
        return (self.decoder_len or seq_len) if encoder_decoder else seq_len


def parse_image_size(value: tuple[int, int] | str) -> tuple[int, int]:
    """(height, width) from a pair or "HxW" ("448" is square); ValueError for what no processor takes."""
    if isinstance(value, str):
        parts = value.lower().split("x")
        if len(parts) > 2 or not all(p.isascii() and p.strip().isdigit() for p in parts):
            raise ValueError(f"image_size {value!r} is not HxW (e.g. 448x448)")
        value = (int(parts[0]), int(parts[-1]))
    h, w = value
    if not (1 <= h <= MAX_IMAGE_SIDE and 1 <= w <= MAX_IMAGE_SIDE):
        raise ValueError(f"image_size sides must be 1 to {MAX_IMAGE_SIDE} pixels")
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise ValueError(f"image_size {h}x{w}: an aspect ratio above {MAX_ASPECT} is refused by the processors")
    return h, w


def usable_bytes(gpu: Gpu, settings: Settings) -> int:
    """The bytes of `gpu` an estimate may fill (the rest is left to fragmentation and what nvidia-smi hides)."""
    return int(gpu.memory_bytes * settings.usable_fraction)


def resolve_seq_len(settings: Settings, max_positions: int | None) -> int:
    """The sequence length in force: the user's, else min(model context, 4096)."""
    if settings.seq_len is not None:
        return settings.seq_len
    return min(max_positions or DEFAULT_SEQ_LEN, DEFAULT_SEQ_LEN)
