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
INFERENCE_ENGINES = ("transformers", "vllm", "sglang")  # whose KV rules the inference column follows
DEFAULT_SEQ_LEN = 4096  # used when the model states no context, and the cap of the default
DEFAULT_LORA_RANK = 16
# llama.cpp's --cache-type-k/-v choices (common/arg.cpp kv_cache_types), by their ggml names in lower case
CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")


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
    int4: Int4Scheme = Int4Scheme.NF4_DQ
    adapter_merged: bool = False  # an adapter repo's inference: merged into the base, or kept apart (PEFT's default)
    # GGUF models run under llama.cpp's rules (hfmem.engines.llamacpp): the KV cache's ggml types, and the
    # repeating layers offloaded to the GPU (None: all of them and the output layer, llama.cpp's default)
    cache_type_k: str = "f16"
    cache_type_v: str = "f16"
    n_gpu_layers: int | None = None
    engine: str = "transformers"  # the inference column's KV rules (hfmem.engines); GGUF models: llama.cpp's

    def __post_init__(self) -> None:
        checks = [
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.seq_len is None or self.seq_len >= 1, "seq_len must be at least 1"),
            (self.dtype in DTYPES, f"dtype must be one of {', '.join(DTYPES)}"),
            (self.kv_dtype in KV_DTYPES, f"kv_dtype must be one of {', '.join(KV_DTYPES)}"),
            (self.attention in ATTENTIONS, f"attention must be one of {', '.join(ATTENTIONS)}"),
            (self.logits in LOGITS, f"logits must be one of {', '.join(LOGITS)}"),
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


def usable_bytes(gpu: Gpu, settings: Settings) -> int:
    """The bytes of `gpu` an estimate may fill (the rest is left to fragmentation and what nvidia-smi hides)."""
    return int(gpu.memory_bytes * settings.usable_fraction)


def resolve_seq_len(settings: Settings, max_positions: int | None) -> int:
    """The sequence length in force: the user's, else min(model context, 4096)."""
    if settings.seq_len is not None:
        return settings.seq_len
    return min(max_positions or DEFAULT_SEQ_LEN, DEFAULT_SEQ_LEN)
