"""vLLM v0.33.0 (V1 engine, `vllm serve`) at start-up: what one GPU holds, the KV pool, and whether it starts.

The rules are docs/engines.md §1 and §4 (V33 = vllm-project/vllm v0.33.0, commit 4ba787ec9); file:line references
below are V33's. Exact: weights per GPU, page sizes, KV groups, blocks, tokens, concurrency and the refusal.
Modelled and calibrated (not derivable from a checkpoint): the profiling run's activation peak (SAMPLER_COPIES,
FORWARD_WIDTHS), CUDA-graph memory (CUDA_GRAPHS), and non-torch memory and the visible device total (plan.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

from ..gpus import GIB, Gpu
from ..memory.facts import ModelFacts, facts_of
from ..memory.kv import kv_cache as kv_formula
from ..memory.results import Formula
from ..memory.settings import DEFAULT_SEQ_LEN, Settings
from ..spec import ModelSpec
from . import plan as common
from .plan import KvGroup, Layout, ServePlan

VERSION = "0.33.0"
DEFAULT_UTILIZATION = 0.92  # vllm/config/cache.py:215-224 (0.9 in v0.11.0 and before)
DEFAULT_BLOCK_SIZE = 16  # CacheConfig.DEFAULT_BLOCK_SIZE, cache.py:185
MLA_BLOCK_SIZE = 64  # FlashMLA, the MLA backend on Hopper (v1/attention/backends/mla/flashmla.py:57-58)
# kv_cache_dtype -> bytes; auto is the model dtype, and float32 checkpoints load as 16-bit (torch_utils.py:40-60).
KV_CACHE_DTYPES = {"auto": 2, "float16": 2, "bfloat16": 2, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
# The profiling run's transient peak is the larger of the sampler on min(batched, seqs) requests x padded vocab
# fp32 logits (engines.md §1.9) and the forward pass over max_num_batched_tokens. Calibrated: vLLM v0.11 on H100
# (llm-d, memory-model.md B §1.4) logged 4.76 / 5.56 / 5.64 / 7.38 GiB for Llama-3.1-8B, Qwen3-0.6B, Qwen3-32B
# and gpt-oss-20b at 1,024 requests: 9.59-9.73 logits-sized copies each (sort, softmax, top-k/top-p).
SAMPLER_COPIES = 9.67
# Forward: tokens x 2 B x (3 x MLP width / tp + 3 x hidden); vllm#10517's V0 profile of Llama-3.1-8B over 20,000
# and 29,000 tokens logged 2.07 and 2.99 GiB above the weights, this formula 2.06 and 2.99.
FORWARD_WIDTHS = 3
# CUDA-graph memory, estimated and subtracted before the KV pool since v0.21 (gpu_worker.py:707-724). Logged:
# 0.41 GiB (27B, V33's suggestion line), 0.44 GiB (gemma-3), 0.07-0.13 GiB with few graphs (engines.md §1.9).
CUDA_GRAPHS = int(0.4 * GIB)
DOCS = "https://docs.vllm.ai/en/latest/configuration/conserving_memory/"
# MXFP4 experts are allocated with padded sizes for the MoE kernel (fused_moe/oracle/mxfp4.py:837-917,
# create_weights in quantization/mxfp4.py): Marlin, the backend before Hopper and on consumer Blackwell, rounds the
# per-rank intermediate size up to 128 and hidden to 256; Hopper's Triton kernels round the intermediate to 64;
# B200's FlashInfer TRT-LLM kernels 128 and 256. (intermediate, hidden) alignment by GPU name prefix:
MXFP4_ALIGN = {"H100": (64, 1), "H200": (64, 1), "GH200": (64, 1), "B200": (128, 256)}
MXFP4_MARLIN_ALIGN = (128, 256)
# The inference column (no GPU named) takes the max_num_batched_tokens of an 80 GB-class GPU (batch_defaults);
# `hfmem serve` resolves it per GPU.
COLUMN_BATCHED_TOKENS = 8192


@dataclass(frozen=True)
class VllmSettings:
    """`vllm serve` flags, by their names; None takes vLLM's default for the model and GPU."""

    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    data_parallel_size: int = 1
    max_model_len: int | None = None  # the model's max_position_embeddings
    max_num_seqs: int | None = None  # by device memory (batch_defaults)
    max_num_batched_tokens: int | None = None  # by device memory (batch_defaults)
    gpu_memory_utilization: float = DEFAULT_UTILIZATION
    kv_cache_dtype: str = "auto"
    block_size: int | None = None  # 16; 64 for MLA
    enforce_eager: bool = False
    quantization: str | None = None  # "fp8": linear weights in 1 byte (online, or an FP8 checkpoint)

    def __post_init__(self) -> None:
        if min(self.tensor_parallel_size, self.pipeline_parallel_size, self.data_parallel_size) < 1:
            raise ValueError("parallel sizes must be at least 1")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError("gpu_memory_utilization must be in (0, 1]")
        if self.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise ValueError(f"kv_cache_dtype must be one of {', '.join(KV_CACHE_DTYPES)}")

    @property
    def layout(self) -> Layout:
        return Layout(self.tensor_parallel_size, self.pipeline_parallel_size, self.data_parallel_size)

    def with_layout(self, layout: Layout) -> VllmSettings:
        return replace(self, tensor_parallel_size=layout.tensor_parallel,
                       pipeline_parallel_size=layout.pipeline_parallel, data_parallel_size=layout.data_parallel)


def batch_defaults(gpu: Gpu, settings: VllmSettings) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) of `vllm serve` by device memory (engine/arg_utils.py:2940-3040):
    >= 160 GiB 1024 / 16384; >= 70 GiB and not an A100 1024 / 8192; otherwise 256 / 2048."""
    gib = common.visible_bytes(gpu) / GIB
    if gib >= 160:
        seqs, tokens = 1024, 16384
    elif gib >= 70 and "A100" not in gpu.name.upper():
        seqs, tokens = 1024, 8192
    else:
        seqs, tokens = 256, 2048
    return settings.max_num_seqs or seqs, settings.max_num_batched_tokens or tokens


def mxfp4_padding(facts: ModelFacts, gpu: Gpu, tp: int) -> int:
    """Bytes one GPU's MoE layers gain from the MXFP4 kernels' padding: per expert, gate_up [2I, H] and down [H, I]
    at 4 bits plus one E8M0 scale per 32 elements, and bf16 biases [2I] and [H] (quantization/mxfp4.py
    create_weights); 0 for other checkpoints."""
    quant, dims = facts.spec.quantization, facts.dims
    if quant is None or quant.method != "mxfp4" or not dims.experts:
        return 0
    align_i, align_h = next((a for name, a in MXFP4_ALIGN.items() if gpu.name.startswith(name)), MXFP4_MARLIN_ALIGN)
    inner, hidden = dims.expert_intermediate // tp, dims.hidden

    def expert(i: int, h: int) -> float:
        return 3 * i * h * (1 / 2 + 1 / 32) + (2 * i + h) * 2

    padded = expert(-(-inner // align_i) * align_i, -(-hidden // align_h) * align_h)
    return int(dims.moe_layers * dims.experts * (padded - expert(inner, hidden)))


def kv_cache(facts: ModelFacts, settings: Settings, seq_len: int, warnings: list[str]) -> tuple[int, Formula]:
    """The inference column under vLLM: the pool bytes `batch` requests of seq_len occupy on one GPU (TP over
    settings.gpus), as the engine plans them: per KV-cache group, blocks of `block` tokens
    (cdiv(seq_len, block); a sliding layer cdiv(min(window - 1 + max_num_batched_tokens, seq_len), block) + 1,
    kv_cache_interface.py:643-648, 920-956), padding slots of hybrid groups included (kv_cache_planning.py:416-556);
    MLA's latent on every rank."""
    dims = facts.dims
    block = MLA_BLOCK_SIZE if dims.mla else DEFAULT_BLOCK_SIZE
    tokens: list[int] = []  # per layer slot
    self_len = settings.decoder_tokens(seq_len, dims.encoder_decoder)  # cross-attention: memory.kv adds it
    for kind, slots in group_slots(common.attention_kinds(facts)):
        tokens += [_blocks_needed(kind, self_len, dims.window or 0, COLUMN_BATCHED_TOKENS, block) * block] * slots
    rule = (f"vLLM {VERSION}: blocks of {block} tokens per layer slot, sliding layers "
            "min(window - 1 + batched, seq) + 1 block, hybrid groups padded")
    return kv_formula(facts, settings, seq_len, warnings, element=1 if settings.kv_dtype == "fp8" else 2,
                      layer_tokens=tokens, rule=rule,
                      inputs={"block_size": block, "max_num_batched_tokens": COLUMN_BATCHED_TOKENS})


def _blocks_needed(kind: str, length: int, window: int, in_flight: int, block: int) -> int:
    """Blocks one request of `length` tokens needs in a layer of `kind` (kv_cache_interface.py:643-648, 920-956)."""
    if kind == "sliding_attention":
        return -(-min(window - 1 + in_flight, length) // block) + 1
    return -(-length // block)


def activation_peak(facts: ModelFacts, tp: int, tokens: int, seqs: int, last_stage: bool) -> int:
    """The profiling run's transient peak on one GPU (gpu_model_runner.py:6072-6145); the sampler runs on the
    last pipeline stage only, with the full vocabulary on every TP rank."""
    dims = facts.dims
    dense = dims.intermediate if dims.moe_layers < dims.layers else 0
    routed = dims.experts_per_token * dims.expert_intermediate + dims.shared_intermediate if dims.experts else 0
    forward = tokens * 2 * FORWARD_WIDTHS * (max(dense, routed) // tp + dims.hidden)
    if not last_stage:
        return forward
    vocab = -(-dims.vocab // common.VOCAB_PADDING) * common.VOCAB_PADDING
    return max(forward, int(SAMPLER_COPIES * min(tokens, seqs) * vocab * 4))


def group_slots(kinds: list[str]) -> list[tuple[str, int]]:
    """KV-cache groups as (kind, layer slots) (v1/core/kv_cache_planning.py:1113-1200, 416-556): one group when
    every layer is alike; otherwise groups of the smallest kind's count (the largest's when under 1.5x the
    smallest), the last group of a kind padded."""
    counts = Counter(kinds)
    if len(counts) <= 1:
        return list(counts.items())
    small, large = min(counts.values()), max(counts.values())
    size = large if large < 1.5 * small else small
    return [(kind, size) for kind, n in counts.items() for _ in range(-(-n // size))]


@dataclass(frozen=True)
class _Stage:
    """One pipeline stage's worker: its budget and KV groups."""

    weights: int
    activation: int
    available: int  # bytes left for the KV cache
    slots: list[tuple[str, int]]
    page: int  # bytes of one block of one layer
    need: Callable[[int, str], int]  # blocks one request of a length needs in a group of a kind

    @property
    def bytes_per_block(self) -> int:
        return max((n for _, n in self.slots), default=0) * self.page

    @property
    def blocks(self) -> int:
        return max(0, self.available) // self.bytes_per_block if self.bytes_per_block else 0

    def blocks_per_request(self, length: int) -> int:
        return sum(self.need(length, kind) for kind, _ in self.slots)

    def needed(self, length: int) -> int:
        """Σ_layers max_memory_usage_bytes, padding slots included (kv_cache_planning.py:1253-1285)."""
        return self.blocks_per_request(length) * self.bytes_per_block

    def fits(self, length: int) -> bool:
        """The fit check plans against one block less: the null block (kv_cache_planning.py:1533-1543)."""
        return self.needed(length) <= self.available - self.bytes_per_block


def plan(model: ModelSpec | ModelFacts, gpu: Gpu, settings: VllmSettings | None = None) -> ServePlan:
    """`vllm serve MODEL` with `settings` on GPUs like `gpu`, as v0.33.0 starts it (engines.md §4)."""
    settings = settings or VllmSettings()
    facts = facts_of(model)
    dims, arch = facts.dims, facts.spec.architecture
    layout = settings.layout
    tp, pp = layout.tensor_parallel, layout.pipeline_parallel
    context = arch.max_position_embeddings or DEFAULT_SEQ_LEN
    max_len = settings.max_model_len or context
    seqs, batched = batch_defaults(gpu, settings)
    block = settings.block_size or (MLA_BLOCK_SIZE if dims.mla else DEFAULT_BLOCK_SIZE)
    total = common.visible_bytes(gpu)
    requested = math.ceil(total * settings.gpu_memory_utilization)  # v1/worker/utils.py:724-726
    non_torch = common.non_torch_bytes(layout)
    graphs = 0 if settings.enforce_eager else CUDA_GRAPHS
    padding, layers = mxfp4_padding(facts, gpu, tp), arch.num_hidden_layers or 0  # padding: by each stage's layers
    weights = [w + padding * len(part) // max(1, layers)
               for w, part in zip(common.stage_weights(facts, tp, pp, settings.quantization == "fp8"),
                                  common.pp_partition(layers, pp))]  # fmt: skip
    page = block * common.kv_layer_bytes(facts, KV_CACHE_DTYPES[settings.kv_cache_dtype], tp)
    in_flight = pp * batched  # max_concurrent_batches x max_num_batched_tokens (config/vllm.py:601-609)

    def need(length: int, kind: str) -> int:
        return _blocks_needed(kind, length, dims.window or 0, in_flight, block)

    kinds = common.attention_kinds(facts)
    stages = []
    for s, span in enumerate(common.pp_partition(len(kinds), pp)):
        activation = activation_peak(facts, tp, batched, seqs, s == pp - 1)
        available = requested - weights[s] - non_torch - activation - graphs  # gpu_worker.py:753-757
        stages.append(_Stage(weights[s], activation, available, group_slots(kinds[span.start:span.stop]),
                             page, need))
    binding = min(stages, key=lambda st: st.blocks)
    error = _refusal(arch.num_attention_heads or 0, tp, len(kinds), pp)
    error = error or _free_memory_refusal(total, requested, settings.gpu_memory_utilization, non_torch)
    largest = 0 if error else _largest(lambda n: all(st.fits(n) for st in stages), max(max_len, context))
    if error is None:
        error = next((_kv_refusal(st, max_len, largest) for st in stages if not st.fits(max_len)), None)
    per_request = binding.blocks_per_request(max_len)
    concurrency = binding.blocks / per_request if per_request else 0.0
    flags = {
        "tensor-parallel-size": tp if tp > 1 else None,
        "pipeline-parallel-size": pp if pp > 1 else None,
        "data-parallel-size": layout.data_parallel if layout.data_parallel > 1 else None,
        "max-model-len": max_len if error is None or not largest else largest,
        "gpu-memory-utilization": settings.gpu_memory_utilization
        if settings.gpu_memory_utilization != DEFAULT_UTILIZATION else None,
        "kv-cache-dtype": settings.kv_cache_dtype if settings.kv_cache_dtype != "auto" else None,
        "block-size": settings.block_size,
        "max-num-seqs": settings.max_num_seqs,
        "max-num-batched-tokens": settings.max_num_batched_tokens,
        "enforce-eager": settings.enforce_eager,
        "quantization": settings.quantization,
    }
    return common.serve_plan(
        facts, "vllm", VERSION, gpu, layout,
        settings={
            "max_model_len": max_len,
            "gpu_memory_utilization": settings.gpu_memory_utilization,
            "kv_cache_dtype": settings.kv_cache_dtype,
            "block_size": block,
            "max_num_seqs": seqs,
            "max_num_batched_tokens": batched,
            "enforce_eager": settings.enforce_eager,
            "quantization": settings.quantization,
        },
        per_gpu=common.per_gpu(binding.weights, non_torch, binding.activation, graphs,
                               binding.blocks * binding.bytes_per_block),
        kv_groups=tuple(
            KvGroup(kind, slots, block, page, binding.blocks, binding.need(max_len, kind))
            for kind, slots in binding.slots
        ),
        kv_cache_tokens=int(concurrency * max_len),  # v1/core/kv_cache_utils.py:1061-1155
        max_concurrency=concurrency * layout.data_parallel,
        starts=error is None,
        error=error,
        max_model_len_that_starts=largest,
        command=common.command_line("vllm serve", facts.spec.model, flags),
        warnings=common.plan_warnings(facts),
    )


def _largest(fits: Callable[[int], bool], high: int) -> int:
    """The largest n in [0, high] with fits(n), fits being monotone (the engine's binary search, :97-148)."""
    low = 0
    while low < high:
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def _refusal(heads: int, tp: int, layers: int, pp: int) -> str | None:
    """Layouts the engine rejects before loading (config/model.py verify_with_parallel_config)."""
    if heads % tp:
        return f"Total number of attention heads ({heads}) must be divisible by tensor parallel size ({tp})."
    if pp > max(layers, 1):
        return f"Pipeline parallel size ({pp}) exceeds the number of hidden layers ({layers})."
    return None


def _free_memory_refusal(total: int, requested: int, utilization: float, non_torch: int) -> str | None:
    """The start-up snapshot, after the CUDA context and NCCL, must hold the requested budget (v1/worker/utils.py
    :761-770)."""
    free = total - common.CUDA_CONTEXT - non_torch
    if free >= requested:
        return None
    return (f"Free memory on device cuda:0 ({round(free / GIB, 2)}/{round(total / GIB, 2)} GiB) on startup is less "
            f"than desired GPU memory utilization ({utilization}, {round(requested / GIB, 2)} GiB). Decrease GPU "
            "memory utilization or reduce GPU memory used by other processes.")


def _kv_refusal(stage: _Stage, max_len: int, largest: int) -> str:
    """The text v0.33.0 raises (v1/core/kv_cache_planning.py:50-87), as logged in vllm#44376."""
    if stage.available <= 0:
        return ("No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
                "initializing the engine.")
    estimate = f" Based on the available memory, the estimated maximum model length is {largest}." if largest else ""
    return (f"To serve at least one request with the model's max seq len ({max_len}), "
            f"({stage.needed(max_len) / GIB:.2f} GiB KV cache is needed, which is larger than the available KV "
            f"cache memory ({stage.available / GIB:.2f} GiB).{estimate} Try increasing `gpu_memory_utilization` "
            "(which also controls CPU memory on the CPU backend) or decreasing `max_model_len` when initializing "
            f"the engine. See {DOCS} for more details.")

