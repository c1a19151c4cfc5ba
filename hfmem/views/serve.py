"""The human serving plan: per-GPU memory, the KV pool per group, the verdict and the launch command (80 columns)."""

from __future__ import annotations

import textwrap
from collections import Counter

from ..engines import ENGINE_NAMES
from ..engines.plan import ServePlan
from .text import tabulate
from .units import label, size

COMPONENTS = {
    "weights": "weights (after the split)",
    "cuda_context": "CUDA context",
    "non_torch": "non-torch (NCCL, cuBLAS)",
    "activation_peak": "activation peak (profile run)",
    "cuda_graphs": "CUDA graphs",
    "kv_cache": "KV cache",
}
WIDTH = 80


def render_plan(plan: ServePlan, units: str = "gib") -> str:
    lay = plan.layout
    commit = f" ({plan.commit[:12]})" if plan.commit else ""
    head = [
        f"{plan.model}{commit} · {ENGINE_NAMES[plan.engine]} {plan.version} rules",
        f"GPU {plan.gpu.name} ({size(plan.gpu.memory_bytes, units)} {label(units)}) x {lay.gpus}: "
        f"TP {lay.tensor_parallel} · PP {lay.pipeline_parallel} · DP {lay.data_parallel}",
    ]
    head += textwrap.wrap(" · ".join(f"{k} {v}" for k, v in plan.settings.items() if v not in (None, False)), WIDTH)
    rows = [[COMPONENTS.get(name, name), size(value, units)] for name, value in plan.per_gpu.items()]
    rows.append(["total", size(plan.total_per_gpu, units)])
    table = tabulate(rows, headers=["per GPU", label(units)], colalign=("left", "right"), disable_numparse=True)
    kinds = Counter(g.kind for g in plan.kv_groups)
    groups = [
        [kind, count, g.layers, f"{g.page_bytes // 1024:,} KiB", f"{g.blocks:,} x {g.block_size}",
         f"{g.blocks_per_request:,}" if g.blocks_per_request else "—"]
        for kind, count in kinds.items()
        for g in [next(g for g in plan.kv_groups if g.kind == kind)]
    ]
    pool = tabulate(groups, headers=["KV group", "groups", "layers", "page/layer", "blocks x size", "per req"],
                    disable_numparse=True)
    capacity = (f"KV cache: {plan.kv_cache_tokens:,} tokens; max concurrency at "
                f"{_length(plan):,} tokens: {plan.max_concurrency:.2f}x")
    if plan.starts:
        verdict = f"verdict: starts (largest max_model_len that starts: {plan.max_model_len_that_starts:,})"
    else:
        largest = plan.max_model_len_that_starts
        verdict = "verdict: refuses to start" + (f" (largest max_model_len that starts: {largest:,})" if largest
                                                 else "")
        verdict += "\n" + textwrap.fill(plan.error or "", WIDTH, initial_indent="  ", subsequent_indent="  ")
    notes = [textwrap.fill(f"note: {w}", WIDTH, subsequent_indent="  ") for w in plan.warnings]
    return "\n".join([*head, "", table, "", pool, capacity, verdict, *notes, "", _shell_lines(plan.command)])


def _shell_lines(command: str) -> str:
    """The command folded at WIDTH between flags, with backslash continuations: still ready to paste."""
    first, *flags = command.split(" --")
    lines = [first]
    for flag in flags:
        if len(lines[-1]) + len(flag) + 5 > WIDTH:
            lines[-1] += " \\"
            lines.append("   ")
        lines[-1] += " --" + flag
    return "\n".join(lines)


def _length(plan: ServePlan) -> int:
    return plan.settings.get("max_model_len") or plan.settings["context_length"]
