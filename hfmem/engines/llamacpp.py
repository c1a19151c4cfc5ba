"""llama.cpp (llama-server, llama-cli) running a GGUF model: what sits on the GPU and what stays in host RAM.

The rules are docs/engines.md §8 (LC = llama.cpp as vendored in llama-cpp-python 0.3.36, the sdist on PyPI); the
file:line references below are LC's. Exact: weights per device (from the GGUF headers), KV cells, bytes per KV
row at each cache type, placement under --n-gpu-layers. Modelled: the compute buffer (split's compute) and the
CUDA context (Settings.overhead_bytes).

The run modelled is `llama-server -m FILE -np B -c B*S -ngl N -ctk K -ctv V` with flash attention on (its `auto`
on CUDA) and one KV stream per sequence (--kv-unified off), where B is --batch-size and S --seq-len.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import UnsupportedModel
from ..gguf import GGML_TYPES, GgufRepo, layer_of
from ..memory.facts import ModelFacts
from ..memory.results import Estimate, Formula
from ..memory.settings import DEFAULT_SEQ_LEN, Settings

N_UBATCH = 512  # --ubatch-size default (common/common.h:454): the tokens of the graph llama.cpp reserves for
CELL_PAD = 256  # n_ctx and each stream's cells are padded to 256 (src/llama-context.cpp:290-296)
_TYPES = {name.lower(): (block, size) for name, block, size in GGML_TYPES.values()}


@dataclass(frozen=True)
class Split:
    """Bytes on the GPU(s) and in host RAM, per component."""

    gpu: dict[str, int]
    host: dict[str, int]
    formulas: tuple[Formula, ...]
    settings: dict[str, object]


def context_of(facts: ModelFacts, settings: Settings) -> int:
    """Tokens per sequence: --seq-len, else the model's training context, as llama.cpp's -c 0 (the default,
    common/common.h:452; src/llama-context.cpp:133)."""
    return settings.seq_len or facts.dims.max_positions or DEFAULT_SEQ_LEN


def gpu_slots(n_layer: int, n_gpu_layers: int | None) -> tuple[int, bool]:
    """(first repeating layer on the GPU, whether the output layer is) for --n-gpu-layers: llama.cpp counts
    n_layer + 1 slots, the output layer last, and offloads the last N of them (src/llama-model.cpp:1589-1614;
    N defaults to all, :2002-2005): N = 1 is the output layer alone, N = n_layer + 1 everything. The input
    layer (token embeddings) always stays on the CPU (:1603-1605)."""
    slots = n_layer + 1
    first = max(slots - (slots if n_gpu_layers is None else n_gpu_layers), 0)
    return first, first <= n_layer


def split(facts: ModelFacts, settings: Settings, warnings: list[str]) -> Split:
    """Weights, KV cache and compute buffer of a GGUF model under llama.cpp, on the GPU and on the host."""
    repo = facts.spec.gguf
    assert repo is not None
    if (settings.dtype, settings.kv_dtype, settings.attention) != ("auto", "auto", "sdpa"):
        warnings.append("--dtype, --kv-dtype and --attention do not apply to llama.cpp: weights as the GGUF stores "
                        "them, KV at --cache-type-k/-v, flash attention")  # fmt: skip
    arch = repo.architecture
    first_gpu, output_on_gpu = gpu_slots(arch.block_count, settings.n_gpu_layers)
    gpu = {"weights": 0, "kv_cache": 0, "compute_buffer": 0}
    host = dict(gpu)
    for t in repo.model.tensors:
        layer = layer_of(t.name)
        if layer is not None:
            (gpu if layer >= first_gpu else host)["weights"] += t.nbytes
        elif t.name.startswith("token_embd."):
            host["weights"] += t.nbytes
        else:
            (gpu if output_on_gpu else host)["weights"] += t.nbytes
    if output_on_gpu and facts.spec.architecture.tie_word_embeddings:  # the output layer's copy of token_embd
        gpu["weights"] += sum(t.nbytes for t in repo.model.tensors if t.name == "token_embd.weight")

    sequences, context = settings.batch_size, context_of(facts, settings)
    cells = _pad(_pad(sequences * context) // sequences)  # per stream (src/llama-context.cpp:290-304)
    kv_gpu, kv_host, row = _kv_bytes(repo, settings, cells, first_gpu, warnings)
    gpu["kv_cache"], host["kv_cache"] = kv_gpu, kv_host
    # Modelled, not derived: the graph llama.cpp reserves (min(n_ctx, n_ubatch) tokens, as many outputs) peaks at
    # its fp32 logits beside the normed hidden state they come from: 258.5 MiB for Llama-3.1-8B. Flash attention
    # keeps the attention scores out of it; an MLP wider than the vocabulary is not modelled.
    tokens = min(sequences * cells, N_UBATCH)
    compute = tokens * 4 * ((facts.dims.vocab or 0) + (arch.embedding_length or 0))
    (gpu if output_on_gpu else host)["compute_buffer"] = compute
    if settings.gpus > 1:  # layers split over the GPUs (--split-mode layer); the busiest holds about 1/gpus
        gpu = {name: size if name == "compute_buffer" else -(-size // settings.gpus) for name, size in gpu.items()}

    n_gpu = arch.block_count + 1 - first_gpu
    formulas = (
        Formula(
            "weights",
            "Σ GGUF tensor bytes of the offloaded layers and the output layer (token_embd stays on the CPU)",
            {"n_gpu_layers": n_gpu, "layers": arch.block_count, "host_bytes": host["weights"]},
            gpu["weights"],
            exact=True,
        ),
        Formula(
            "kv_cache",
            "sequences x Σ_layers cells x (K row + V row) at the cache types; a sliding layer keeps "
            "pad(min(cells, window + n_ubatch), 256) cells",
            {"cells": cells, "sequences": sequences, "bytes_per_cell": row, "host_bytes": host["kv_cache"]},
            gpu["kv_cache"],
            exact=True,
        ),
        Formula(
            "compute_buffer",
            "min(n_ctx, n_ubatch) x 4 B x (n_vocab + n_embd): the reserved graph's logits",
            {"n_ubatch": N_UBATCH, "tokens": tokens},
            compute,
            exact=False,
        ),
    )
    shown = {
        "engine": "llamacpp",
        "batch_size": sequences,
        "seq_len": context,
        "n_ctx": sequences * cells,
        "dtype": facts.spec.dtype,
        "kv_dtype": f"{settings.cache_type_k}/{settings.cache_type_v}",
        "cache_type_k": settings.cache_type_k,
        "cache_type_v": settings.cache_type_v,
        "n_gpu_layers": n_gpu,
        "gpus": settings.gpus,
        "host": dict(host),
    }
    return Split(gpu, host, formulas, shown)


def inference_estimate(facts: ModelFacts, settings: Settings, warnings: list[str]) -> Estimate:
    """The GPU side of llama.cpp's run (per GPU), with `settings.host` the bytes left in host RAM."""
    plan = split(facts, settings, warnings)
    overhead = settings.overhead_bytes if plan.settings["n_gpu_layers"] else 0
    formulas = (*plan.formulas, Formula("overhead", "CUDA context (setting)", {}, overhead, exact=False))
    return Estimate(plan.gpu | {"overhead": overhead}, plan.settings, formulas)


def cpu_estimate(facts: ModelFacts, settings: Settings) -> Estimate:
    """llama.cpp without a GPU (--n-gpu-layers 0): everything in host RAM."""
    plan = split(facts, replace(settings, n_gpu_layers=0, gpus=1), [])
    return Estimate(plan.host, {"dtype": facts.spec.dtype, "pickle_only": False, "engine": "llamacpp"}, plan.formulas)


def _kv_bytes(
    repo: GgufRepo, settings: Settings, cells: int, first_gpu: int, warnings: list[str]
) -> tuple[int, int, int]:
    """(GPU bytes, host bytes, bytes per cell over the layers): each layer's K and V rows of n_embd_k_gqa and
    n_embd_v_gqa elements per cell, in the layer's device (src/llama-kv-cache.cpp:209-234); MLA caches K only
    (:230-231). A sliding layer keeps pad(min(cells, n_swa + n_ubatch), 256) cells
    (src/llama-kv-cache-iswa.cpp:69-73)."""
    arch, metadata = repo.architecture, repo.model.metadata
    mla = f"{arch.architecture}.attention.key_length_mla" in metadata  # llama_hparams::is_mla
    key, value = arch.key_length or 0, arch.value_length or 0
    on_gpu = on_host = per_cell = 0
    for layer, kv_heads in enumerate(arch.head_count_kv):
        window = arch.sliding_window if arch.sliding_layers and arch.sliding_layers[layer] else None
        kept = _pad(min(cells, window + N_UBATCH)) if window else cells
        row = _row(settings.cache_type_k, key * kv_heads) + (0 if mla else _row(settings.cache_type_v, value * kv_heads))
        size = settings.batch_size * kept * row
        per_cell += row
        if layer >= first_gpu:
            on_gpu += size
        else:
            on_host += size
    if 0 in arch.head_count_kv:
        warnings.append("llama.cpp: layers without attention heads (recurrent state) are left out of the KV cache")
    return on_gpu, on_host, per_cell


def _row(cache_type: str, elements: int) -> int:
    """ggml_row_size: whole blocks of the cache type (ggml/src/ggml.c:1339)."""
    block, size = _TYPES[cache_type]
    if elements % block:
        raise UnsupportedModel(f"--cache-type {cache_type} needs K/V rows in blocks of {block}, not {elements}")
    return elements // block * size


def _pad(n: int) -> int:
    return -(-n // CELL_PAD) * CELL_PAD
