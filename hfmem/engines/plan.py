"""What both engines share: the serving plan, the weights one GPU holds after the split, the visible device
memory, and the search for the smallest layout that starts (docs/engines.md §1.7, §2).

Weights are exact from the safetensors headers. The device total, non-torch memory and the CUDA context are not
derivable from a checkpoint: they are constants calibrated on the logs in bench/engine_logs.json and the llm-d
measurements in memory-model.md B §1.4, each named below with its source.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..gpus import GIB, Gpu
from ..header import Tensor
from ..memory.facts import BLOCK, ModelFacts
from ..memory.kv import layer_bytes_per_token
from ..spec import is_embedding

# What cudaMemGetInfo reports as the device total, GiB: H100 79.18 (llm-d-planner, memory-model.md B §1.4),
# RTX-3090 23.58 (vllm#10517's profiling line), A100-80GB 79.25 (myoceane.fr: 0.65 x total = 51.5 GiB), L4 22.0
# (a "24 GB" card: 23,034 MiB in nvidia-smi; hardware probes in public code report 22.0-22.5 GiB), A10 21.99 (PyTorch's
# "GPU 1 has a total capacity of 21.99 GiB" in QwenLM/Qwen3#1387).
# Other GPUs: VISIBLE_FRACTION of the nominal size (ECC and firmware reserve: 0.983-0.991 for the H100, RTX-3090
# and A100-80GB).
VISIBLE_GIB = {"H100": 79.18, "H100-SXM": 79.18, "RTX-3090": 23.58, "A100-80GB": 79.25, "L4": 22.0, "A10": 21.99}
VISIBLE_FRACTION = 0.99
CUDA_CONTEXT = 512 * 2**20  # before any engine snapshot, so outside every budget (memory-model.md B §1.5)
# NCCL, cuBLAS and custom all-reduce buffers: 0.13 GiB alone, 0.55 GiB with TP 2 (llm-d, vLLM v0.11, H100).
NON_TORCH = int(0.13 * GIB)
NON_TORCH_PARALLEL = int(0.55 * GIB)
VOCAB_PADDING = 64  # vLLM DEFAULT_VOCAB_PADDING_SIZE (engines.md §1.7); SGLang pads the same way
# Replicated on every TP rank: MLA's down-projections (ReplicatedLinear) and MoE routers.
REPLICATED = {"q_a_proj", "kv_a_proj_with_mqa", "gate", "router"}
KV_PROJECTIONS = {"k_proj", "v_proj"}


@dataclass(frozen=True)
class Layout:
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    data_parallel: int = 1

    @property
    def gpus(self) -> int:
        return self.tensor_parallel * self.pipeline_parallel * self.data_parallel

    def to_dict(self) -> dict[str, int]:
        return {"tensor_parallel": self.tensor_parallel, "pipeline_parallel": self.pipeline_parallel,
                "data_parallel": self.data_parallel}


@dataclass(frozen=True)
class KvGroup:
    """One KV-cache group (vLLM) or pool (SGLang) on the binding GPU: layers of one kind sharing block tables."""

    kind: str  # "full_attention" | "sliding_attention"
    layers: int  # layer slots, padding included
    block_size: int  # tokens per block (SGLang: page_size)
    page_bytes: int  # one block of one layer
    blocks: int  # blocks in the pool this group draws from
    blocks_per_request: int  # blocks one request of max_model_len needs (vLLM); 0 for SGLang

    @property
    def tokens(self) -> int:
        return self.blocks * self.block_size

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "layers": self.layers, "block_size": self.block_size,
                "page_bytes": self.page_bytes, "blocks": self.blocks, "tokens": self.tokens,
                "blocks_per_request": self.blocks_per_request}


@dataclass(frozen=True)
class ServePlan:
    """One engine's start-up on one layout, per GPU (the binding rank: the one with the fewest KV blocks)."""

    model: str
    commit: str | None
    engine: str
    version: str
    gpu: Gpu
    layout: Layout
    settings: dict[str, Any]  # the engine's flags in force, by the engine's names
    per_gpu: dict[str, int]  # weights, cuda_context, non_torch, activation_peak, cuda_graphs, kv_cache
    kv_groups: tuple[KvGroup, ...]
    kv_cache_tokens: int  # what the engine logs ("GPU KV cache size" / "#tokens")
    max_concurrency: float  # requests of max_model_len at once (times data_parallel)
    starts: bool
    error: str | None  # the engine's own refusal text
    max_model_len_that_starts: int
    command: str
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_per_gpu(self) -> int:
        return sum(self.per_gpu.values())

    def to_dict(self) -> dict[str, Any]:
        """CONTRACT.md's `serve` object (sizes in bytes), plus kv_groups and warnings."""
        return {
            "model": self.model,
            "commit": self.commit,
            "engine": {"name": self.engine, "version": self.version},
            "gpu": {"name": self.gpu.name, "memory_bytes": self.gpu.memory_bytes, "count": self.layout.gpus},
            "layout": self.layout.to_dict(),
            "settings": dict(self.settings),
            "per_gpu": dict(self.per_gpu),
            "kv_cache_tokens": self.kv_cache_tokens,
            "max_concurrency": round(self.max_concurrency, 2),
            "starts": self.starts,
            "error": self.error,
            "max_model_len_that_starts": self.max_model_len_that_starts,
            "command": self.command,
            "kv_groups": [g.to_dict() for g in self.kv_groups],
            "warnings": list(self.warnings),
        }


def serve_plan(facts: ModelFacts, engine: str, version: str, gpu: Gpu, layout: Layout, **fields: Any) -> ServePlan:
    """A ServePlan for facts' model; `fields` are the rest of ServePlan's."""
    return ServePlan(model=facts.spec.model, commit=facts.spec.commit, engine=engine, version=version, gpu=gpu,
                     layout=layout, **fields)


def per_gpu(weights: int, non_torch: int, activation: int, graphs: int, kv_cache: int) -> dict[str, int]:
    """ServePlan.per_gpu in report order, with the CUDA context (outside every engine budget)."""
    return {"weights": weights, "cuda_context": CUDA_CONTEXT, "non_torch": non_torch, "activation_peak": activation,
            "cuda_graphs": graphs, "kv_cache": kv_cache}


def visible_bytes(gpu: Gpu) -> int:
    """The device total an engine sees (torch.cuda.mem_get_info), below the nominal size."""
    if gpu.name in VISIBLE_GIB:
        return int(VISIBLE_GIB[gpu.name] * GIB)
    return int(gpu.memory_bytes * VISIBLE_FRACTION)


def non_torch_bytes(layout: Layout) -> int:
    """Per GPU; a data-parallel replica of TP 1 has no collective of its own."""
    return NON_TORCH_PARALLEL if layout.tensor_parallel * layout.pipeline_parallel > 1 else NON_TORCH


def pp_partition(layers: int, pp: int) -> list[range]:
    """vLLM get_pp_indices (V33 vllm/distributed/utils.py:198-238): even split, the remainder to the stages
    before the last (-2, -3, ...)."""
    sizes = [layers // pp] * pp
    for i in range(2, layers % pp + 2):
        sizes[-i] += 1
    starts = [sum(sizes[:i]) for i in range(pp)]
    return [range(s, s + n) for s, n in zip(starts, sizes)]


def sglang_pp_partition(layers: int, pp: int) -> list[range]:
    """SGLang get_pp_indices (SG python/sglang/srt/distributed/utils.py:110-150): even split, the remainder to the
    last stages."""
    sizes = [layers // pp + (i >= pp - layers % pp) for i in range(pp)]
    starts = [sum(sizes[:i]) for i in range(pp)]
    return [range(s, s + n) for s, n in zip(starts, sizes)]


def stage_weights(facts: ModelFacts, tp: int, pp: int, fp8_linears: bool = False,
                  partition: Callable[[int, int], list[range]] = pp_partition) -> list[int]:
    """Bytes one GPU of each pipeline stage holds after the TP split (engines.md §1.7): vocab tables padded to
    64 rows and split; K/V projections split by head, one head replicated once tp > kv heads; MLA's
    down-projections, routers, norms and biases replicated; every other matrix split by tp. The input embedding
    sits on the first stage, lm_head (and a tied embedding) on the last, the final norm on the last. A float32
    model loads in 16-bit (dtype auto); `fp8_linears`: linear weights in 1 B per element (--quantization fp8)."""
    memo, key = facts.sums, ("stage_weights", tp, pp, fp8_linears, partition.__name__)
    if key in memo:
        return list(memo[key])
    layers = facts.spec.architecture.num_hidden_layers or 0
    stage_of = {i: s for s, r in enumerate(partition(layers, pp)) for i in r} if pp > 1 else {}
    linears = {lin.module + ".weight" for lin in facts.linears} if fp8_linears else set()
    tied = facts.spec.architecture.tie_word_embeddings
    halve = facts.spec.dtype == "float32"  # a float32 model runs in 16-bit; FP32 scales of a 16-bit one stay
    stages = [0] * pp
    for t in facts.tensors:
        share = _rank_bytes(t, tp, facts, t.name in linears, halve)
        match = BLOCK.search(t.name)
        if match:
            stages[stage_of.get(int(match.group(1)), 0)] += share
        elif is_embedding(t.name) and not any(n in t.name for n in ("lm_head", "embed_out")):
            stages[0] += share
            if tied and pp > 1:
                stages[-1] += share
        else:  # lm_head, final norm, other top-level tensors: the last stage
            stages[-1 if (is_embedding(t.name) or t.name.endswith("norm.weight")) else 0] += share
    memo[key] = tuple(stages)
    return stages


def _rank_bytes(t: Tensor, tp: int, facts: ModelFacts, fp8: bool, halve_f32: bool) -> int:
    nbytes = t.numel * t.count if fp8 else t.nbytes * t.count
    if halve_f32 and t.dtype == "F32" and not fp8:
        nbytes //= 2
    shape = t.shape
    if len(shape) == 2 and is_embedding(t.name):
        padded = -(-shape[0] // VOCAB_PADDING) * VOCAB_PADDING
        return -(-nbytes * padded // (shape[0] * tp))
    if tp == 1 or len(shape) <= 1:
        return nbytes
    leaf = t.name.rsplit(".", 2)[-2]
    if leaf in REPLICATED:
        return nbytes
    dims = facts.dims
    if leaf in KV_PROJECTIONS and not dims.mla and dims.kv_heads:
        return nbytes * max(1, dims.kv_heads // tp) // dims.kv_heads
    return -(-nbytes // tp)


def kv_layer_bytes(facts: ModelFacts, element_bytes: int, tp: int) -> int:
    """One token of one layer on one TP rank (MLA's latent on every rank; KV heads replicated past tp)."""
    return layer_bytes_per_token(facts.dims, element_bytes, tp)


def attention_kinds(facts: ModelFacts) -> list[str]:
    """Per decoder layer that caches K/V (a recurrent layer keeps a fixed state instead): sliding_attention where
    the model has a window, else full_attention."""
    dims = facts.dims
    kinds = [k for k in dims.layer_kinds[: dims.decoder_layers] if k != "recurrent"]
    return ["sliding_attention" if k == "sliding_attention" and dims.window else "full_attention" for k in kinds]


def plan_warnings(facts: ModelFacts) -> tuple[str, ...]:
    """What a plan leaves out for this model."""
    dims = facts.dims
    if not dims.decoder_layers:
        return ("no decoder layers: nothing to serve with a KV cache",)
    other = sorted(set(dims.layer_kinds[: dims.decoder_layers]) - {"full_attention", "sliding_attention"})
    if other:
        return (f"layer types {', '.join(other)} are planned as full attention (the engines' mamba and "
                "linear-attention state groups are not modelled)",)
    return ()


def command_line(program: str, model: str, flags: dict[str, Any]) -> str:
    """`program MODEL --flag value ...` (MODEL after `--model-path` when program ends with it); True is a bare
    flag, None and False are left out."""
    words = [program, shlex.quote(model)]
    for name, value in flags.items():
        if value is None or value is False:
            continue
        words.append(f"--{name}")
        if value is not True:
            words.append(shlex.quote(str(value)))
    return " ".join(words)


def layouts(max_gpus: int) -> Iterator[Layout]:
    """Layouts of at most max_gpus GPUs, fewest GPUs first; at equal count the most TP, then the most PP
    (TP and PP in powers of two, DP any count)."""
    powers = [p for p in (1 << i for i in range(max_gpus.bit_length())) if p <= max_gpus]
    found = [Layout(tp, pp, dp) for tp in powers for pp in powers for dp in range(1, max_gpus // (tp * pp) + 1)]
    yield from sorted(found, key=lambda lay: (lay.gpus, -lay.tensor_parallel, -lay.pipeline_parallel))


def solve(plan: Callable[[Layout], ServePlan | None], concurrency: float, max_gpus: int) -> ServePlan | None:
    """The first plan over `layouts(max_gpus)` that starts and serves `concurrency` requests of max_model_len at
    once; `plan` returns None for a layout the engine is not planned for."""
    for layout in layouts(max_gpus):
        result = plan(layout)
        if result is not None and result.starts and result.max_concurrency >= concurrency:
            return result
    return None
