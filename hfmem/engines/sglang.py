"""SGLang v0.5.23 (`python -m sglang.launch_server`) at start-up: the static budget, the token pool, and whether
it starts.

The rules are docs/engines.md §2 (SG = sgl-project/sglang v0.5.23); file:line references below are SG's, under
python/sglang/. SGLang sizes the pool from `mem_fraction_static` of the memory free before the weights; the
activations and CUDA graphs live in the rest, as its own reserve formula sizes them, and are shown as that
reserve. It refuses to start only when the weights leave nothing; a pool smaller than the context length only
warns (srt/managers/tp_worker.py:558-568). Non-torch memory and the device total are plan.py's constants.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from ..gpus import GIB, Gpu
from ..memory.facts import ModelFacts, facts_of
from ..memory.kv import kv_cache as kv_formula
from ..memory.results import Formula
from ..memory.settings import DEFAULT_SEQ_LEN, Settings
from ..spec import ModelSpec
from . import plan as common
from .plan import KvGroup, Layout, ServePlan

VERSION = "0.5.23"
KV_CACHE_DTYPES = {"auto": 2, "bf16": 2, "bfloat16": 2, "fp8_e4m3": 1, "fp8_e5m2": 1}
SWA_FULL_TOKENS_RATIO = 0.8  # --swa-full-tokens-ratio: SWA pool / full pool (MiMo-V2 in sglang#18039: 0.8)
MIB = 2**20
# GPU memory (GiB, below) -> (chunked_prefill_size, decode CUDA-graph max_bs at tp < 4, at tp >= 4)
# (srt/arg_groups/memory_hook.py:89-179).
GPU_DEFAULTS = ((20, 2048, 8, 8), (35, 4096, 48, 160), (60, 4096, 32, 160), (160, 8192, 256, 512))
LARGE_GPU_DEFAULTS = (16384, 512, 512)
COLUMN_CHUNK = 8192  # the inference column (no GPU named): chunked_prefill_size of an 80 GB-class GPU


@dataclass(frozen=True)
class SglangSettings:
    """launch_server flags, by their names; None takes SGLang's default for the model and GPU."""

    tp: int = 1
    pp_size: int = 1  # --pp-size: pipeline stages, layers split as get_pp_indices does
    dp_size: int = 1  # --dp-size: data-parallel replicas of the whole model (no DP attention)
    mem_fraction_static: float | None = None  # the reserve formula (default_mem_fraction_static)
    context_length: int | None = None  # the model's max_position_embeddings
    chunked_prefill_size: int | None = None  # by GPU memory
    max_running_requests: int | None = None  # from the pool size
    kv_cache_dtype: str = "auto"
    page_size: int = 1  # 1 on CUDA (srt/arg_groups/overrides.py:1341-1365)
    quantization: str | None = None  # "fp8": linear weights in 1 byte (online, or an FP8 checkpoint)

    def __post_init__(self) -> None:
        if min(self.tp, self.pp_size, self.dp_size, self.page_size) < 1:
            raise ValueError("tp, pp_size, dp_size and page_size must be at least 1")
        if self.mem_fraction_static is not None and not 0 < self.mem_fraction_static < 1:
            raise ValueError("mem_fraction_static must be in (0, 1)")
        if self.kv_cache_dtype not in KV_CACHE_DTYPES:
            raise ValueError(f"kv_cache_dtype must be one of {', '.join(KV_CACHE_DTYPES)}")

    @property
    def layout(self) -> Layout:
        return Layout(self.tp, self.pp_size, self.dp_size)

    def with_layout(self, layout: Layout) -> SglangSettings:
        return replace(self, tp=layout.tensor_parallel, pp_size=layout.pipeline_parallel,
                       dp_size=layout.data_parallel)


def kv_cache(facts: ModelFacts, settings: Settings, seq_len: int, warnings: list[str]) -> tuple[int, Formula]:
    """The inference column under SGLang: the pool bytes `batch` requests of seq_len occupy on one GPU (TP over
    settings.gpus), page size 1. A sliding layer holds at most window + chunked_prefill_size tokens: before each
    allocation the scheduler frees a request's SWA slots older than the window (mem_cache/allocation.py:384-385,
    managers/schedule_batch.py:4068-4130, mem_cache/common.py:75-130). MLA's latent on every rank."""
    window = facts.dims.window or 0
    kinds = common.attention_kinds(facts)
    self_len = settings.decoder_tokens(seq_len, facts.dims.encoder_decoder)
    tokens = [min(self_len, window + COLUMN_CHUNK) if kind == "sliding_attention" else self_len for kind in kinds]
    rule = f"SGLang {VERSION}: sliding layers keep min(seq, window + chunked_prefill_size)"
    return kv_formula(facts, settings, seq_len, warnings, element=1 if settings.kv_dtype == "fp8" else 2,
                      layer_tokens=tokens, rule=rule, inputs={"chunked_prefill_size": COLUMN_CHUNK})


def gpu_defaults(gpu: Gpu, tp: int) -> tuple[int, int]:
    """(chunked_prefill_size, decode CUDA-graph max_bs) by GPU memory."""
    gib = common.visible_bytes(gpu) / GIB
    for below, chunk, small_tp, large_tp in GPU_DEFAULTS:
        if gib < below:
            return chunk, small_tp if tp < 4 else large_tp
    return LARGE_GPU_DEFAULTS[0], LARGE_GPU_DEFAULTS[1]


def prefill_graph_sizes(max_bs: int) -> list[int]:
    """generate_prefill_cuda_graph_batch_sizes (memory_hook.py)."""
    sizes = (list(range(4, 33, 4)) + list(range(48, 257, 16)) + list(range(288, 513, 32))
             + list(range(576, 1025, 64)) + list(range(1280, 4097, 256)) + list(range(4608, max_bs + 1, 512)))
    return [s for s in sizes if s <= max_bs]


def reserve_mib(gpu: Gpu, tp: int, chunk: int, max_bs: int, mla: bool, pp: int = 1) -> tuple[float, float, float]:
    """(total, activation, CUDA graphs) MiB that the default mem_fraction_static leaves out
    (memory_hook.py:309-325, reserve_for_graph_mb :357-395)."""
    activation = 1.5 * max(chunk, 2048)
    graphs = 2 * max_bs + (1536 if mla else 8 * len(prefill_graph_sizes(chunk)))
    total = 512 + activation + 1024 * tp * pp / 8 + graphs
    if common.visible_bytes(gpu) > 60 * GIB:
        total = max(total, 10 * 1024)
    return total, activation, graphs


def plan(model: ModelSpec | ModelFacts, gpu: Gpu, settings: SglangSettings | None = None) -> ServePlan:
    """`python -m sglang.launch_server` with `settings` on GPUs like `gpu`, as v0.5.23 starts it."""
    settings = settings or SglangSettings()
    facts = facts_of(model)
    dims, arch = facts.dims, facts.spec.architecture
    tp, pp = settings.tp, settings.pp_size
    context = settings.context_length or arch.max_position_embeddings or DEFAULT_SEQ_LEN
    chunk, max_bs = gpu_defaults(gpu, tp)
    chunk = settings.chunked_prefill_size or chunk
    total = common.visible_bytes(gpu)
    reserve, activation, graphs = reserve_mib(gpu, tp, chunk, max_bs, dims.mla, pp)
    fraction = settings.mem_fraction_static or round((total / MIB - reserve) / (total / MIB), 3)
    non_torch = common.non_torch_bytes(settings.layout)
    pre = total - common.CUDA_CONTEXT - non_torch  # free before the weights (srt/distributed/bootstrap.py:193-223)
    stage_weights = common.stage_weights(facts, tp, pp, settings.quantization == "fp8", common.sglang_pp_partition)
    per_layer = common.kv_layer_bytes(facts, KV_CACHE_DTYPES[settings.kv_cache_dtype], tp)
    kinds = common.attention_kinds(facts)
    page = settings.page_size
    ratio = SWA_FULL_TOKENS_RATIO if "sliding_attention" in kinds else 0.0
    stages = []  # per pipeline stage: (tokens, rest, weights, full layers, sliding layers)
    for part, weights in zip(common.sglang_pp_partition(len(kinds), pp), stage_weights):
        rest = int(pre * fraction) - weights  # now - pre x (1 - fraction) (kv_cache_configurator.py:3007, :3038)
        counts = Counter(kinds[part.start:part.stop])
        full, swa = counts["full_attention"], counts["sliding_attention"]
        cell = per_layer * (full + ratio * swa)  # HybridSWAPoolConfigurator (pool_configurator.py:656-916)
        stages.append((int(max(0, rest) // cell) // page * page if cell else 0, rest, weights, full, swa))
    # PP ranks take the smallest pool (kv_cache_configurator.py:3108-3116); the binding stage is the one shown
    tokens, rest, weights, full, swa = min(stages, key=lambda stage: (stage[0], stage[1]))
    cell = per_layer * (full + ratio * swa)
    swa_tokens = int(tokens * ratio) // page * page
    error = _refusal(rest, pre, weights, fraction, tokens if cell else 1)  # no KV layers: no pool to size
    running = settings.max_running_requests or min(max(2048, min(4096, tokens * 512 // context)), tokens // 2)
    warnings = common.plan_warnings(facts)
    if error is None and cell and tokens < context:
        warnings += (f"KV pool holds {tokens} tokens, fewer than --context-length {context}. One full-length "
                    "request cannot fit (SGLang starts and rejects longer inputs at request time)",)
    groups = [KvGroup("full_attention", full, page, page * per_layer, tokens // page, 0)]
    if swa:
        groups.append(KvGroup("sliding_attention", swa, page, page * per_layer, swa_tokens // page, 0))
    flags = {
        "tp": tp if tp > 1 else None,
        "pp-size": pp if pp > 1 else None,
        "dp-size": settings.dp_size if settings.dp_size > 1 else None,
        "context-length": settings.context_length,
        "mem-fraction-static": settings.mem_fraction_static,
        "chunked-prefill-size": settings.chunked_prefill_size,
        "max-running-requests": settings.max_running_requests,
        "kv-cache-dtype": settings.kv_cache_dtype if settings.kv_cache_dtype != "auto" else None,
        "page-size": page if page > 1 else None,
        "quantization": settings.quantization,
    }
    return common.serve_plan(
        facts, "sglang", VERSION, gpu, settings.layout,
        settings={
            "context_length": context,
            "mem_fraction_static": fraction,
            "kv_cache_dtype": settings.kv_cache_dtype,
            "page_size": page,
            "chunked_prefill_size": chunk,
            "max_running_requests": running,
            "quantization": settings.quantization,
        },
        per_gpu=common.per_gpu(weights, non_torch, int(activation * MIB), int(graphs * MIB),
                               tokens * per_layer * full + swa_tokens * per_layer * swa),
        kv_groups=tuple(groups),
        kv_cache_tokens=tokens,
        max_concurrency=tokens / context * settings.dp_size,
        starts=error is None,
        error=error,
        max_model_len_that_starts=0 if error else context,
        command=common.command_line("python -m sglang.launch_server --model-path", facts.spec.model, flags),
        warnings=warnings,
    )


def _refusal(rest: int, pre: int, weights: int, fraction: float, tokens: int) -> str | None:
    """The texts v0.5.23 raises (kv_cache_configurator.py:3041-3058; pool_configurator.py:94-99)."""
    if rest <= 0:
        minimum = weights / pre  # 1 - available / pre, available = pre - weights
        return (f"Loaded weights leave no GPU memory for the KV cache under --mem-fraction-static={fraction}. "
                f"Raise --mem-fraction-static above {-(-minimum * 1000 // 1) / 1000:.3f} (minimum viable = "
                f"1 - available/pre = {minimum:.4f}). If using speculative decoding, draft weights are now counted.")
    if tokens <= 0:
        return "Not enough memory. Please try to increase --mem-fraction-static."
    return None
