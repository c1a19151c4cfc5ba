"""The command line: parse options into library values, call the library, render, exit. Nothing else."""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from enum import IntEnum
from typing import Any

import click

from .api import ModelReport, inspect_model, serve_model
from .audit import DEFAULT_JOBS, DEFAULT_TIMEOUT, FORMATS, AuditRow, iter_audit, read_models, write_rows
from .checks import MODES, Mode, check_model, render_check
from .engines import ENGINES, EngineSettings, engine_settings
from .engines.render import render_plan
from .engines.sglang import KV_CACHE_DTYPES as SGLANG_KV
from .engines.vllm import KV_CACHE_DTYPES as VLLM_KV
from .errors import HfmemError
from .gpus import Gpu, find_gpu
from .hub import HubOptions
from .memory import Optimizer, Recipe, Settings
from .report import error_dict, render_report, to_dict


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a check failed, the model does not fit, or an audit row has an error
    UNRESOLVED = 2  # the model could not be resolved (also click's usage errors)
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


def _choice(values) -> click.Choice:
    return click.Choice([v.value if hasattr(v, "value") else v for v in values], case_sensitive=False)


def memory_options(f: Callable) -> Callable:
    """The memory-model settings, shared by inspect, check and audit."""
    options = [
        click.option("--batch-size", "-b", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Sequences per batch."),
        click.option("--seq-len", "-s", type=click.IntRange(min=1), default=None,
                     help="Tokens per sequence.  [default: min(model context, 4096)]"),
        click.option("--dtype", type=_choice(["auto", "float32", "bfloat16", "float16", "int8", "int4"]),
                     default="auto", show_default=True, help="Load the weights in this dtype (auto: as stored)."),
        click.option("--kv-dtype", type=_choice(["auto", "float16", "bfloat16", "fp8"]), default="auto",
                     show_default=True, help="KV cache dtype (auto: the compute dtype)."),
        click.option("--attention", type=_choice(["sdpa", "eager"]), default="sdpa", show_default=True,
                     help="eager materialises the heads x seq^2 attention scores."),
        click.option("--optimizer", type=_choice(Optimizer), default=Optimizer.ADAMW.value, show_default=True,
                     help="Training optimizer."),
        click.option("--recipe", type=_choice(Recipe), default=Recipe.MIXED.value, show_default=True,
                     help="mixed: fp32 master weights + 16-bit compute; bf16: pure 16-bit; fp32."),
        click.option("--grad-checkpointing", is_flag=True, help="Recompute activations in the backward pass."),
        click.option("--lora-rank", type=click.IntRange(min=1), default=16, show_default=True, help="LoRA rank r."),
        click.option("--lora-targets", default=None, metavar="LIST|all-linear",
                     help="Comma-separated module names, as PEFT's target_modules.  [default: attention projections]"),
        click.option("--qlora", is_flag=True, help="4-bit NF4 base weights (QLoRA)."),
        click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True,
                     help="GPUs to shard over (see --zero)."),
        click.option("--zero", type=click.IntRange(0, 3), default=0, show_default=True,
                     help="ZeRO / FSDP stage for training over --gpus."),
        click.option("--gpu", "gpu_name", metavar="NAME", default=None,
                     help="A GPU to fit on, e.g. H100, A100-40GB, RTX-4090 (adds fits / GPUs needed)."),
        click.option("--gpu-memory", type=click.FloatRange(min=0, min_open=True), metavar="GiB", default=None,
                     help="GPU memory in GiB, instead of --gpu."),
        click.option("--revision", default=None, help="Branch, tag or commit (or write ORG/NAME@REVISION)."),
        click.option("--token", default=None, help="Hub token for this run (default: HF_TOKEN or `hf auth login`)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


units_option = click.option(
    "--units", type=_choice(["gib", "gb"]), default="gib", show_default=True,
    help="Human output in GiB (2^30) or GB (10^9); JSON is always bytes.",
)


def settings_from(opts: dict[str, Any]) -> Settings:
    targets = opts["lora_targets"]
    return Settings(
        batch_size=opts["batch_size"],
        seq_len=opts["seq_len"],
        dtype=opts["dtype"],
        kv_dtype=opts["kv_dtype"],
        attention=opts["attention"],
        optimizer=Optimizer(opts["optimizer"]),
        recipe=Recipe(opts["recipe"]),
        grad_checkpointing=opts["grad_checkpointing"],
        lora_rank=opts["lora_rank"],
        lora_targets=tuple(t.strip() for t in targets.split(",") if t.strip()) if targets else None,
        qlora=opts["qlora"],
        gpus=opts["gpus"],
        zero=opts["zero"],
    )


def gpu_from(opts: dict[str, Any]) -> Gpu | None:
    if opts["gpu_name"] and opts["gpu_memory"]:
        raise click.UsageError("give --gpu or --gpu-memory, not both")
    if opts["gpu_memory"]:
        return Gpu(f"{opts['gpu_memory']:g} GiB", int(opts["gpu_memory"] * 2**30))
    if opts["gpu_name"]:
        try:
            return find_gpu(opts["gpu_name"])
        except HfmemError as e:
            raise click.BadParameter(str(e), param_hint="--gpu") from None
    return None


def serving_from(engine: str | None, max_model_len: int | None, gpu: Gpu | None, gpus: int) -> EngineSettings | None:
    """check's and audit's --engine: that engine's defaults, TP over --gpus, at --max-model-len."""
    if engine is None:
        return None
    if gpu is None:
        raise click.UsageError("--engine needs --gpu or --gpu-memory")
    layout = {"vllm": ("tensor_parallel_size", "max_model_len"), "sglang": ("tp", "context_length")}[engine]
    return engine_settings(engine, **dict(zip(layout, (gpus, max_model_len))))


def hub_from(opts: dict[str, Any]) -> HubOptions:
    return HubOptions(token=opts["token"]) if opts["token"] else HubOptions()


def report_error(model: str, error: HfmemError, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(error_dict(model, error), indent=2))
    else:
        click.echo(f"hfmem: error: {error}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="hfmem", prog_name="hfmem")
def cli() -> None:
    """What a Hugging Face model is exactly, and whether it fits, before you download a single weight.

    hfmem reads only config.json and the safetensors headers (HTTP Range reads), counts parameters exactly,
    and estimates the GPU memory for inference, full training and LoRA/QLoRA.

    \b
      hfmem inspect meta-llama/Llama-3.1-8B --gpu H100
      hfmem check Qwen/Qwen2.5-7B --gpu RTX-4090 --mode lora
      hfmem audit models.txt --format csv --output report.csv

    What a model resolves to is cached per commit under $HF_HOME/hfmem: a rerun costs one small request per model,
    none for a pinned commit. With HF_HUB_OFFLINE=1, or when the Hub cannot answer, the answers come from that
    cache, else from the files huggingface_hub downloaded before. HF_ENDPOINT and HF_TOKEN work as in every Hub
    tool.
    """


@cli.command()
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@memory_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (one object, or an array for several).")
@click.option("--explain", is_flag=True, help="Every formula with its inputs, and common rules of thumb beside ours.")
@units_option
@click.option("--tables/--no-tables", default=True, show_default=True,
              help="Show the sequence x batch sweep and the what-if table.")
def inspect(models: tuple[str, ...], as_json: bool, explain: bool, units: str, tables: bool, **opts: Any) -> None:
    """Exact spec and memory needed for MODEL (ORG/NAME, ORG/NAME@REV or a local directory).

    Prints identity, architecture, exact parameters (per dtype, embedding, MoE active), weight bytes, and
    the memory for inference, full training and LoRA with a breakdown of each.

    Exit status: 0 when every model resolved, 2 when one could not be resolved.
    """
    settings, gpu, hub = settings_from(opts), gpu_from(opts), hub_from(opts)

    def run(model: str) -> ModelReport | HfmemError:
        try:
            return inspect_model(model, settings, gpu=gpu, revision=opts["revision"], hub=hub)
        except HfmemError as e:
            return e

    with ThreadPoolExecutor(max_workers=min(8, len(models))) as pool:
        results = list(pool.map(run, models))
    failed = False
    outputs = []
    for model, result in zip(models, results):
        if isinstance(result, HfmemError):
            failed = True
            if not as_json:
                report_error(model, result, as_json)
            outputs.append(error_dict(model, result))
        elif as_json:
            outputs.append(to_dict(result))
        else:
            click.echo(render_report(result, units, explain, tables))
            if len(models) > 1:
                click.echo()
    if as_json:
        click.echo(json.dumps(outputs[0] if len(outputs) == 1 else outputs, indent=2))
    if failed:
        raise click.exceptions.Exit(ExitCode.UNRESOLVED)


@cli.command()
@click.argument("model")
@click.option("--mode", type=_choice(MODES), default="inference", show_default=True,
              help="What the GPU fit is checked for.")
@memory_options
@click.option("--engine", type=_choice(ENGINES), default=None,
              help="Also check that this engine starts on --gpu (TP over --gpus), as `hfmem serve` plans it.")
@click.option("--max-model-len", type=click.IntRange(min=1), default=None,
              help="With --engine: the context length to serve.  [default: the model's]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@units_option
def check(model: str, mode: Mode, as_json: bool, units: str, engine: str | None, max_model_len: int | None,
          **opts: Any) -> None:
    """Pre-download sanity check of MODEL: one verdict (ok / warn / fail) per check.

    Download size by format, safetensors or pickle-only weights, gated, custom code, config consistency
    (fields, dtype, vocab_size, tied embeddings), and whether --mode fits --gpu / --gpu-memory.

    Exit status: 0 all good and it fits, 1 a check failed or it does not fit, 2 the model could not be resolved.
    """
    settings, gpu, hub = settings_from(opts), gpu_from(opts), hub_from(opts)
    serving = serving_from(engine, max_model_len, gpu, opts["gpus"])
    try:
        result = check_model(model, settings, mode=mode, gpu=gpu, revision=opts["revision"], hub=hub, units=units,
                             serving=serving)
    except HfmemError as e:
        report_error(model, e, as_json)
        raise click.exceptions.Exit(ExitCode.UNRESOLVED) from None
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else render_check(result))
    if not result.passed:
        raise click.exceptions.Exit(ExitCode.FAILED)


@cli.command()
@click.argument("source", type=click.File("r"), default="-", metavar="[FILE|-]")
@memory_options
@click.option("--format", "fmt", type=_choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, allow_dash=True), default="-",
              metavar="FILE", help="Write the rows here instead of stdout.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=DEFAULT_JOBS, show_default=True,
              help="Models resolved at once.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds one model may take, retries included.")
@click.option("--engine", type=_choice(ENGINES), default=None,
              help="With --gpu: add each model's KV tokens, maximum concurrency and start verdict for this engine.")
@click.option("--max-model-len", type=click.IntRange(min=1), default=None,
              help="With --engine: the context length to serve.  [default: each model's]")
@units_option
def audit(source: Any, fmt: str, output: str, jobs: int, timeout: float, units: str, engine: str | None,
          max_model_len: int | None, **opts: Any) -> None:
    """Audit a list of models: one row each (model, params, dtype, weights, inference, training, LoRA, fits, error).

    FILE (default: stdin) holds one reference per line (# comments and blank lines are skipped) or is a CSV with
    a `model` column. Every memory option applies to every row. A model that fails gives a row with its error and
    the rest go on; Ctrl-C stops and writes the rows already done.

    Exit status: 0 when every model resolved, 1 when any row has an error, 130 when interrupted.
    """
    settings, gpu, hub = settings_from(opts), gpu_from(opts), hub_from(opts)
    if source.isatty():
        raise click.UsageError("give a FILE of model references, or pipe them in (e.g. `hfmem audit - < models.txt`)")
    try:
        models = read_models(source.read())
    except HfmemError as e:
        raise click.BadParameter(str(e), param_hint="FILE") from None
    if not models:
        raise click.BadParameter("no model references in the input", param_hint="FILE")
    done: dict[int, AuditRow] = {}
    interrupted = False
    try:
        results = iter_audit(models, settings, gpu=gpu, revision=opts["revision"], hub=hub, jobs=jobs, timeout=timeout,
                             serving=serving_from(engine, max_model_len, gpu, opts["gpus"]))
        with closing(results), _progress(len(models)) as advance:
            for index, row in results:
                done[index] = row
                advance()
    except KeyboardInterrupt:
        interrupted = True
    rows = [done[i] for i in sorted(done)]
    with click.open_file(output, "w") as out:
        write_rows(rows, fmt, out, units)
    if interrupted:
        click.echo(f"hfmem: interrupted: {len(rows)} of {len(models)} models audited", err=True)
        raise click.exceptions.Exit(ExitCode.INTERRUPTED)
    if any(row.error for row in rows):
        raise click.exceptions.Exit(ExitCode.FAILED)


@contextmanager
def _progress(total: int) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    with click.progressbar(length=total, label="auditing", file=sys.stderr, show_pos=True) as bar:
        yield lambda: bar.update(1)


@cli.command()
@click.argument("model")
@click.option("--engine", type=_choice(ENGINES), default="vllm", show_default=True,
              help="Whose start-up rules: vLLM 0.33.0 or SGLang 0.5.23.")
@click.option("--tensor-parallel-size", "--tp", "tp", type=click.IntRange(min=1), default=None,
              help="TP size (vLLM --tensor-parallel-size, SGLang --tp).  [default: 1, or --gpus]")
@click.option("--pipeline-parallel-size", "pp", type=click.IntRange(min=1), default=1, show_default=True,
              help="vLLM pipeline stages.")
@click.option("--data-parallel-size", "dp", type=click.IntRange(min=1), default=1, show_default=True,
              help="vLLM engine replicas.")
@click.option("--max-model-len", "--context-length", "max_model_len", type=click.IntRange(min=1), default=None,
              help="Context length (SGLang --context-length).  [default: the model's]")
@click.option("--max-num-seqs", type=click.IntRange(min=1), default=None,
              help="vLLM requests per step.  [default: 1024 on >= 70 GiB GPUs, else 256]")
@click.option("--max-num-batched-tokens", type=click.IntRange(min=1), default=None,
              help="vLLM tokens per step.  [default: 8192 on >= 70 GiB GPUs, else 2048]")
@click.option("--gpu-memory-utilization", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="vLLM's share of the GPU.  [default: 0.92]")
@click.option("--mem-fraction-static", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="SGLang's static share.  [default: its reserve formula]")
@click.option("--chunked-prefill-size", type=click.IntRange(min=1), default=None,
              help="SGLang prefill chunk.  [default: by GPU memory]")
@click.option("--max-running-requests", type=click.IntRange(min=1), default=None, help="SGLang request cap.")
@click.option("--kv-cache-dtype", type=_choice(sorted({*VLLM_KV, *SGLANG_KV})), default="auto", show_default=True,
              help="KV cache dtype, as the engine spells it.")
@click.option("--block-size", "--page-size", "block_size", type=click.IntRange(min=1), default=None,
              help="Tokens per KV block (SGLang --page-size).  [default: 16, 64 for MLA; SGLang 1]")
@click.option("--enforce-eager", is_flag=True, help="vLLM without CUDA graphs.")
@click.option("--quantization", type=_choice(["fp8"]), default=None, help="Linear weights in FP8 on load.")
@click.option("--gpu", "gpu_name", metavar="NAME", default=None, help="The GPU, e.g. H100, RTX-3090 (or --gpu-memory).")
@click.option("--gpu-memory", type=click.FloatRange(min=0, min_open=True), metavar="GiB", default=None,
              help="GPU memory in GiB, instead of --gpu.")
@click.option("--gpus", type=click.IntRange(min=1), default=None,
              help="GPUs at hand: the TP size when none is given, the most --solve may use.  [default: 8 with --solve]")
@click.option("--solve", is_flag=True, help="Find the smallest layout (TP, then PP, then DP) that starts.")
@click.option("--concurrency", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="With --solve: full-length requests to serve at once.")
@click.option("--revision", default=None, help="Branch, tag or commit (or write ORG/NAME@REVISION).")
@click.option("--token", default=None, help="Hub token for this run (default: HF_TOKEN or `hf auth login`).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (CONTRACT.md's serve object).")
@units_option
def serve(model: str, engine: str, as_json: bool, units: str, solve: bool, concurrency: float, **opts: Any) -> None:
    """A serving plan: how vLLM or SGLang starts MODEL on --gpu, per GPU.

    Weights after the split, CUDA context and non-torch memory, the profiling run's activation peak, CUDA
    graphs, the KV pool in bytes and tokens per KV-cache group, the maximum concurrency, whether the engine
    starts (with its own error text) and the largest max_model_len that does, then a launch command.

    Exit status: 0 it starts (--solve: a layout was found), 1 it refuses (none found), 2 the model could not be
    resolved.
    """
    gpu = gpu_from(opts)
    if gpu is None:
        raise click.UsageError("give --gpu NAME or --gpu-memory GiB")
    if engine == "sglang" and opts["pp"] * opts["dp"] > 1:
        raise click.UsageError("SGLang plans take --tp only")
    tp = opts["tp"] or (opts["gpus"] if not solve else None) or 1
    if engine == "vllm":
        flags = {"tensor_parallel_size": tp, "pipeline_parallel_size": opts["pp"], "data_parallel_size": opts["dp"],
                 "max_model_len": opts["max_model_len"], "max_num_seqs": opts["max_num_seqs"],
                 "max_num_batched_tokens": opts["max_num_batched_tokens"],
                 "gpu_memory_utilization": opts["gpu_memory_utilization"], "kv_cache_dtype": opts["kv_cache_dtype"],
                 "block_size": opts["block_size"], "enforce_eager": opts["enforce_eager"],
                 "quantization": opts["quantization"]}
    else:
        flags = {"tp": tp, "context_length": opts["max_model_len"], "mem_fraction_static": opts["mem_fraction_static"],
                 "chunked_prefill_size": opts["chunked_prefill_size"],
                 "max_running_requests": opts["max_running_requests"], "kv_cache_dtype": opts["kv_cache_dtype"],
                 "page_size": opts["block_size"], "quantization": opts["quantization"]}
    try:
        settings = engine_settings(engine, **flags)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    try:
        plan = serve_model(model, gpu, settings, solve=solve, concurrency=concurrency, max_gpus=opts["gpus"] or 8,
                           revision=opts["revision"], hub=hub_from(opts))
    except HfmemError as e:
        report_error(model, e, as_json)
        raise click.exceptions.Exit(ExitCode.UNRESOLVED) from None
    if plan is None:
        message = f"no layout of at most {opts['gpus'] or 8} GPUs starts and serves {concurrency:g} requests at once"
        click.echo(json.dumps({"model": model, "error": {"type": "no_layout", "message": message}}, indent=2)
                   if as_json else f"hfmem: {message}", err=not as_json)
        raise click.exceptions.Exit(ExitCode.FAILED)
    click.echo(json.dumps(plan.to_dict(), indent=2) if as_json else render_plan(plan, units))
    if not plan.starts:
        raise click.exceptions.Exit(ExitCode.FAILED)


def main() -> None:
    """Console entry point: any unexpected exception becomes one line, never a traceback (unless HFMEM_DEBUG=1)."""
    # A large MoE checkpoint is ~45k tensor objects; the default thresholds make the cyclic GC rescan them
    # hundreds of times (half the CPU time of an audit). This short-lived process collects rarely instead.
    gc.set_threshold(100_000, 50, 100)
    try:
        cli(prog_name="hfmem")
    except Exception as e:  # click handles its own errors and exits; this is the last resort
        if os.environ.get("HFMEM_DEBUG"):
            raise
        click.echo(f"hfmem: internal error: {e.__class__.__name__}: {e} (rerun with HFMEM_DEBUG=1 for the traceback)",
                   err=True)
        sys.exit(ExitCode.UNRESOLVED)
