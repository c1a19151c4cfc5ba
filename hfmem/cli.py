"""The command line: parse options into library values, call the library, render, exit. Nothing else."""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import math
import os
import shutil
import signal
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from enum import IntEnum
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

# Only light modules here, so that `hfmem --help` and `--version` never load huggingface_hub: the library's
# resolving parts are imported by the commands that use them.
from .audit import DEFAULT_JOBS, DEFAULT_TIMEOUT, MAX_INPUT_BYTES, SORTS, AuditRow, read_models, resume_rows
from .diffusion import ImageSettings
from .engines import ENGINES, EngineSettings, engine_settings
from .engines.sglang import KV_CACHE_DTYPES as SGLANG_KV
from .engines.vllm import KV_CACHE_DTYPES as VLLM_KV
from .errors import HfmemError, Interrupted, error_fields
from .gpus import Gpu, aliases, find_gpu, known_gpus
from .memory import MODES, Mode, Optimizer, Recipe, Settings
from .memory.settings import CACHE_TYPES, INFERENCE_ENGINES, MAX_IMAGES, parse_image_size
from .untrusted import for_terminal, one_line, without_credentials
from .views import text
from .views.json import error_dict
from .views.rows import FORMATS, write_rows

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

    from .hub import HubOptions

T = TypeVar("T")
# The signals that stop a run (SIGHUP exists on POSIX only).
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a check failed, the model does not fit, or an audit row has an error
    UNRESOLVED = 2  # the model could not be resolved, or an internal error (also click's usage errors)
    # A signal: 128 + its number, as shells report it (130 Ctrl-C, 143 SIGTERM, 129 SIGHUP); see main().


def _choice(values) -> click.Choice:
    return click.Choice([v.value if hasattr(v, "value") else v for v in values], case_sensitive=False)


class _Positive(click.FloatRange):
    """A number above 0 and at most `max`: also refuses nan, which every bound lets through."""

    def __init__(self, max: float) -> None:
        super().__init__(min=0, min_open=True, max=max)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if math.isnan(number):
            self.fail(f"{value!r} is not a number.", param, ctx)
        return number


def _image_size(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    try:
        return None if value is None else parse_image_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def memory_options(f: Callable) -> Callable:
    """The memory-model settings, shared by inspect, check and audit."""
    options = [
        click.option("--batch-size", "-b", type=click.IntRange(min=1), default=1, show_default=True,
                     help="Sequences per batch."),
        click.option("--seq-len", "-s", type=click.IntRange(min=1), default=None,
                     help="Tokens per sequence.  [default: min(model context, 4096)]"),
        click.option("--images", type=click.IntRange(0, MAX_IMAGES), default=0, show_default=True,
                     help="Images per sequence (vision-language models): each adds its image tokens to the "
                          "sequence and runs the vision tower."),
        click.option("--image-size", metavar="HxW", default=None, callback=_image_size,
                     help="Image size in pixels, for dynamic-resolution models (Qwen2-VL, Qwen2.5-VL).  "
                          "[default: 1024x1024]"),
        click.option("--dtype", type=_choice(["auto", "float32", "bfloat16", "float16", "int8", "int4"]),
                     default="auto", show_default=True, help="Load the weights in this dtype (auto: as stored)."),
        click.option("--kv-dtype", type=_choice(["auto", "float16", "bfloat16", "fp8"]), default="auto",
                     show_default=True, help="KV cache dtype (auto: the compute dtype)."),
        click.option("--attention", type=_choice(["sdpa", "eager"]), default="sdpa", show_default=True,
                     help="eager materialises the heads x seq^2 attention scores."),
        click.option("--padding", type=_choice(["none", "padded"]), default="none", show_default=True,
                     help="padded: batches carry a padding mask (a batch x seq^2 mask, K/V repeated per head)."),
        click.option("--decoder-len", type=click.IntRange(min=1), default=None,
                     help="Encoder-decoder models: decoder tokens (--seq-len is the encoder's).  [default: "
                          "--seq-len]"),
        click.option("--optimizer", type=_choice(Optimizer), default=Optimizer.ADAMW.value, show_default=True,
                     help="Training optimizer."),
        click.option("--recipe", type=_choice(Recipe), default=Recipe.MIXED.value, show_default=True,
                     help="mixed: fp32 master weights + 16-bit compute; bf16: pure 16-bit; fp32."),
        click.option("--grad-checkpointing", is_flag=True, help="Recompute activations in the backward pass."),
        click.option("--lora-rank", type=click.IntRange(min=1), default=None,
                     help="LoRA rank r.  [default: an adapter repo's r, else 16]"),
        click.option("--lora-targets", default=None, metavar="LIST|all-linear",
                     help="Comma-separated module names, as PEFT's target_modules.  [default: an adapter repo's, "
                          "else attention projections]"),
        click.option("--qlora", is_flag=True, help="4-bit NF4 base weights (QLoRA)."),
        click.option("--gpus", type=click.IntRange(min=1), default=1, show_default=True,
                     help="GPUs to shard over (see --zero)."),
        click.option("--zero", type=click.IntRange(0, 3), default=0, show_default=True,
                     help="ZeRO / FSDP stage for training over --gpus."),
        click.option("--gpu", "gpu_name", metavar="NAME", default=None,
                     help="A GPU to fit on, e.g. H100, A100-40GB, RTX-4090 (adds fits / GPUs needed)."),
        click.option("--gpu-memory", type=_Positive(max=2**20), metavar="GiB", default=None,
                     help="GPU memory in GiB, instead of --gpu."),
        click.option("--revision", default=None, help="Branch, tag or commit (or write ORG/NAME@REVISION)."),
        click.option("--token", default=None, help="Hub token for this run (default: HF_TOKEN or `hf auth login`)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def gguf_options(f: Callable) -> Callable:
    """--file / --quant: which variant of a GGUF repo is read (inspect, check, and every GGUF repo of an audit)."""
    f = click.option("--quant", default=None, metavar="LABEL",
                     help="GGUF repos: the variant by its quant, e.g. Q4_K_M.  [default: the only one, else "
                          "Q4_K_M]")(f)
    return click.option("--file", "gguf_file", metavar="NAME.gguf", default=None,
                        help="GGUF repos: the variant file to read.")(f)


def pipeline_options(f: Callable) -> Callable:
    """--height / --width / --variant: a Diffusers pipeline's image and weight variant (inspect, check, audit)."""
    f = click.option("--variant", default=None, metavar="NAME",
                     help="Diffusers pipelines: the weight variant to load, e.g. fp16.  [default: the non-variant "
                          "files, as diffusers]")(f)
    f = click.option("--width", type=click.IntRange(min=8), default=None,
                     help="Diffusers pipelines: image width in pixels.  [default: the pipeline's]")(f)
    return click.option("--height", type=click.IntRange(min=8), default=None,
                        help="Diffusers pipelines: image height in pixels.  [default: the pipeline's]")(f)


def image_from(opts: dict[str, Any]) -> ImageSettings:
    return ImageSettings(opts["height"], opts["width"], opts["variant"])


units_option = click.option(
    "--units", type=_choice(["gib", "gb"]), default="gib", show_default=True,
    help="Human output in GiB (2^30) or GB (10^9); JSON is always bytes.",
)


def settings_from(opts: dict[str, Any], engine: str | None = None) -> Settings:
    """The memory settings; `engine` (default transformers) is whose KV rules the inference column follows."""
    return Settings(
        engine=engine or "transformers",
        batch_size=opts["batch_size"],
        seq_len=opts["seq_len"],
        images=opts["images"],
        image_size=opts["image_size"],
        dtype=opts["dtype"],
        kv_dtype=opts["kv_dtype"],
        attention=opts["attention"],
        padding=opts["padding"],
        decoder_len=opts["decoder_len"],
        optimizer=Optimizer(opts["optimizer"]),
        recipe=Recipe(opts["recipe"]),
        grad_checkpointing=opts["grad_checkpointing"],
        lora_rank=opts["lora_rank"],
        lora_targets=opts["lora_targets"] or None,
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
            raise click.BadParameter(text.hinted(str(e), e.hint), param_hint="--gpu") from None
    return None


def serving_from(engine: str | None, max_model_len: int | None, gpu: Gpu | None, gpus: int) -> EngineSettings | None:
    """check's and audit's --engine vllm|sglang: that engine's defaults, TP over --gpus, at --max-model-len."""
    if engine is None or engine not in ENGINES:
        return None
    if gpu is None:
        raise click.UsageError("--engine needs --gpu or --gpu-memory")
    layout = {"vllm": ("tensor_parallel_size", "max_model_len"), "sglang": ("tp", "context_length")}[engine]
    return engine_settings(engine, **dict(zip(layout, (gpus, max_model_len))))


def hub_from(opts: dict[str, Any]) -> HubOptions:
    """The token, and how long a model may wait for the Hub's rate limits; told on a terminal when it waits."""
    from .hub import HubOptions

    on_wait = _announce_wait if sys.stderr.isatty() else None
    return HubOptions(token=opts["token"], max_wait=opts.get("max_wait") or HubOptions.max_wait, on_wait=on_wait)


def _announce_wait(seconds: float, bucket: str) -> None:
    show(f"\nhfmem: the Hub's {bucket} rate limit is spent: every request waits {seconds:.0f} s for it to reset",
         err=True)


def show(words: str, err: bool = False) -> None:
    """Every line of human output goes out here: without the control characters (escape sequences, bells,
    bidirectional overrides) that a repo's files, an endpoint or an input list can put in the strings shown; only
    the colours hfmem itself paints survive."""
    click.echo(for_terminal(words, keep_colour=True), err=err)


def width() -> int:
    """The terminal's width (COLUMNS, else the terminal's own), never under 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = shutil.get_terminal_size((text.WIDTH, 24)).columns
    return max(text.WIDTH, columns)


def painter() -> text.Paint:
    """Colours for ok / warn / fail on a terminal; none when piped, under NO_COLOR or TERM=dumb."""
    if not sys.stdout.isatty() or "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return text.plain
    colours = {"ok": "green", "warn": "yellow", "fail": "red"}
    return lambda words, role: click.style(words, fg=colours.get(role), bold=role == "fail")


def show_warnings(model: str, warnings: Sequence[str]) -> None:
    """A report's warnings, first and on stderr, each wrapped to the width."""
    prefix = f"warning: {one_line(model)}: " if len(warnings) else ""
    for warning in warnings:
        show("\n".join(textwrap.wrap(prefix + one_line(warning), width(), subsequent_indent="  ")), err=True)


def show_interrupted(detail: str = "") -> None:
    """The one line a stop leaves on stderr (on a terminal, on a line of its own after the ^C it echoed)."""
    fresh_line = "\n" if sys.stderr.isatty() else ""
    show(f"{fresh_line}hfmem: interrupted{detail}", err=True)


def show_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))  # json.dumps escapes every control character


def show_error(error: Exception, as_json: bool = False) -> None:
    """A failure as one line on stderr (with --json, a model's failure is an error object on stdout instead); an
    internal one (a bug) also shows its traceback under HFMEM_DEBUG=1."""
    internal = not isinstance(error, HfmemError)
    if internal and os.environ.get("HFMEM_DEBUG"):
        traceback.print_exception(error)
    if not as_json:
        fields = error_fields(error)
        message = text.hinted(one_line(fields["message"]), fields.get("hint"))
        show(f"hfmem: error: {message}" + (" (rerun with HFMEM_DEBUG=1 for the traceback)" if internal else ""),
             err=True)


def for_each(work: Callable[[str], T], models: Sequence[str]) -> list[T | Exception]:
    """work(model) for each model in worker threads: its result, or the exception it raised. The main thread only
    waits, so that a signal stops the command at once; main() then ends the process without joining the threads."""

    def attempt(model: str) -> T | Exception:
        try:
            return work(model)
        except Exception as e:  # reported per model; the others keep their results
            return e

    pool = ThreadPoolExecutor(max_workers=min(8, len(models)), thread_name_prefix="hfmem")
    try:
        return list(pool.map(attempt, models))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def for_one(work: Callable[[str], T], model: str, as_json: bool) -> T:
    """work(model) in a worker thread (see for_each); its failure shown (an error object with --json), exit 2."""
    (outcome,) = for_each(work, [model])
    if isinstance(outcome, Exception):
        show_error(outcome, as_json)
        if as_json:
            show_json(error_dict(model, outcome))
        raise click.exceptions.Exit(ExitCode.UNRESOLVED)
    return outcome


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="hfmem", prog_name="hfmem")
def cli() -> None:
    """What a Hugging Face model is exactly, and whether it fits, before you download a single weight.

    hfmem reads only a repo's small config files (config.json; model_index.json, modules.json or
    adapter_config.json for pipelines, sentence-transformers and adapters) and the headers of its safetensors or
    GGUF files (HTTP Range reads), counts parameters exactly, and estimates the GPU memory for inference, full
    training and LoRA/QLoRA.

    \b
      hfmem inspect Qwen/Qwen2.5-7B --gpu H100
      hfmem check Qwen/Qwen2.5-7B --gpu RTX-4090 --mode lora
      hfmem serve Qwen/Qwen2.5-7B --gpu L4 --max-model-len 32768
      hfmem audit models.txt --format csv --output report.csv
      hfmem gpus

    What a model resolves to is cached per commit under $HF_HOME/hfmem: a rerun costs one small request per model,
    none for a pinned commit. With HF_HUB_OFFLINE=1, or when the Hub cannot answer, the answers come from that
    cache, else from the files huggingface_hub downloaded before. HF_ENDPOINT and HF_TOKEN work as in every Hub
    tool; gated models (Llama, Gemma, ...) need their terms accepted and a token (`hf auth login`, HF_TOKEN or
    --token) for more than their public metadata (size, formats, parameters per dtype).
    """


@cli.command()
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@memory_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (one object, or an array for several).")
@click.option("--explain", is_flag=True, help="Every formula with its inputs, and common rules of thumb beside ours.")
@units_option
@click.option("--tables", is_flag=True,
              help="Also the largest context and batch that fit, the sequence x batch sweep and the what-if table "
                   "(--json always has them).")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, writable=True), default=None, metavar="FILE",
              help="Also write a self-contained HTML report with charts.")
@click.option("--engine", type=_choice(INFERENCE_ENGINES), default="transformers", show_default=True,
              help="Whose KV cache rules the inference column follows (transformers 5.24.0, vLLM 0.33.0, SGLang "
                   "0.5.23); `hfmem serve` plans an engine's whole start-up.")
@gguf_options
@pipeline_options
@click.option("--cache-type-k", type=_choice(CACHE_TYPES), default="f16", show_default=True,
              help="GGUF models (llama.cpp): the K cache type.")
@click.option("--cache-type-v", type=_choice(CACHE_TYPES), default="f16", show_default=True,
              help="GGUF models (llama.cpp): the V cache type.")
@click.option("--n-gpu-layers", "-ngl", type=click.IntRange(min=0), default=None,
              help="GGUF models (llama.cpp): layers on the GPU, the output layer counted as one.  [default: all]")
def inspect(models: tuple[str, ...], as_json: bool, explain: bool, units: str, tables: bool, html_path: str | None,
            engine: str, **opts: Any) -> None:
    """Exact spec and memory needed for MODEL (ORG/NAME, ORG/NAME@REV or a local directory).

    Prints identity, architecture, exact parameters (per dtype, embedding, MoE active), weight bytes, the
    memory for inference, full training and LoRA with a breakdown of each, and the fit on --gpu.

    \b
    Examples:
      hfmem inspect Qwen/Qwen2.5-7B --gpu H100
      hfmem inspect Qwen/Qwen3-30B-A3B --seq-len 32768 --tables
      hfmem inspect google/gemma-3-27b-it --engine vllm --seq-len 32768
      hfmem inspect ./my-model --json
      hfmem inspect Qwen/Qwen2.5-7B@main --gpu RTX-4090 --qlora --html report.html
      hfmem inspect stabilityai/stable-diffusion-xl-base-1.0 --gpu L4

    Exit status: 0 when every model resolved, 2 when one could not be resolved.
    """
    from .api import inspect_model
    from .views.json import to_dict

    settings, gpu, hub = settings_from(opts, engine), gpu_from(opts), hub_from(opts)
    paint, columns = painter(), width()
    computed = tables or as_json or html_path is not None
    models = tuple(without_credentials(model) for model in models)  # errors name models as they may be shown
    settings = dataclasses.replace(settings, cache_type_k=opts["cache_type_k"], cache_type_v=opts["cache_type_v"],
                                   n_gpu_layers=opts["n_gpu_layers"])  # fmt: skip

    def run(model: str) -> Any:
        return inspect_model(model, settings, gpu=gpu, revision=opts["revision"], hub=hub, tables=computed,
                             explain=explain, file=opts["gguf_file"], quant=opts["quant"], image=image_from(opts))

    outputs, reports, failed = [], [], False
    for model, result in zip(models, for_each(run, models)):
        if isinstance(result, Exception):
            show_error(result, as_json)
            outputs.append(error_dict(model, result))
            failed = True
            continue
        reports.append(result)
        if as_json:
            outputs.append(to_dict(result))
        else:
            show_warnings(result.spec.model, result.warnings)
            shown = result if tables or not computed else dataclasses.replace(result, limits=None, sweep=(), what_if=())
            show(text.render_report(shown, units, width=columns, paint=paint) + "\n" * (len(models) > 1))
    if as_json:
        show_json(outputs[0] if len(outputs) == 1 else outputs)
    if html_path is not None:
        from .views.html import render_models

        write_page(html_path, render_models(reports))
    if failed:
        raise click.exceptions.Exit(ExitCode.UNRESOLVED)


def write_page(path: str, page: str) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write(page)
    show(f"hfmem: HTML report written to {path}", err=True)


@cli.command()
@click.argument("model")
@click.option("--mode", type=_choice(MODES), default="inference", show_default=True,
              help="What the GPU fit is checked for.")
@memory_options
@click.option("--engine", type=_choice(INFERENCE_ENGINES), default=None,
              help="The inference column under this engine's KV rules; vllm and sglang also check that the engine "
                   "starts on --gpu (TP over --gpus), as `hfmem serve` plans it.  [default: transformers]")
@click.option("--max-model-len", type=click.IntRange(min=1), default=None,
              help="With --engine: the context length to serve.  [default: the model's]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@gguf_options
@pipeline_options
@units_option
def check(model: str, mode: Mode, as_json: bool, units: str, engine: str | None, max_model_len: int | None,
          **opts: Any) -> None:
    """Pre-download sanity check of MODEL: one verdict (ok / warn / fail / skip) per check.

    Download size by format, safetensors or pickle-only weights, gated, custom code, config consistency
    (fields, dtype, vocab_size, tied embeddings), and whether --mode fits --gpu / --gpu-memory.

    \b
    Examples:
      hfmem check Qwen/Qwen2.5-7B --gpu RTX-4090 --mode lora
      hfmem check Qwen/Qwen2.5-7B --engine vllm --gpu L4 --max-model-len 32768
      hfmem check ./downloaded-model --json

    Exit status: 0 all good and it fits, 1 a check failed or it does not fit, 2 the model could not be resolved.
    """
    from .checks import check_model
    from .views.json import check_to_dict

    settings, gpu, hub = settings_from(opts, engine), gpu_from(opts), hub_from(opts)
    serving = serving_from(engine, max_model_len, gpu, opts["gpus"])
    paint, columns = painter(), width()
    model = without_credentials(model)

    def run(model: str) -> tuple[bool, dict[str, Any] | str]:
        result = check_model(model, settings, mode=mode, gpu=gpu, revision=opts["revision"], hub=hub, serving=serving,
                             file=opts["gguf_file"], quant=opts["quant"], image=image_from(opts))
        return result.passed, check_to_dict(result) if as_json else text.render_check(result, units, columns, paint)

    passed, output = for_one(run, model, as_json)
    if isinstance(output, str):
        show(output)
    else:
        show_json(output)
    if not passed:
        raise click.exceptions.Exit(ExitCode.FAILED)


@cli.command()
@click.argument("source", type=click.File("rb"), default="-", metavar="[FILE|-]")
@memory_options
@click.option("--format", "fmt", type=_choice(FORMATS), default="table", show_default=True, help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, allow_dash=True), default="-",
              metavar="FILE", help="Write the rows here instead of stdout.")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=DEFAULT_JOBS, show_default=True,
              help="Models resolved at once.")
@click.option("--timeout", type=_Positive(max=10**6), default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds one model may take (the Hub's rate-limit waits aside).")
@click.option("--max-wait", type=_Positive(max=10**6), default=600.0, show_default=True,
              help="Seconds one model may wait for the Hub's rate limits to reset (then it fails).")
@click.option("--engine", type=_choice(INFERENCE_ENGINES), default=None,
              help="The inference column under this engine's KV rules; vllm and sglang with --gpu also add each "
                   "model's KV tokens, maximum concurrency and start verdict.  [default: transformers]")
@click.option("--max-model-len", type=click.IntRange(min=1), default=None,
              help="With --engine: the context length to serve.  [default: each model's]")
@click.option("--author", default=None, metavar="ORG", help="Audit the models of this user or organisation.")
@click.option("--search", default=None, metavar="TEXT", help="Audit the models whose id contains TEXT.")
@click.option("--filter", "filter_", default=None, metavar="TAG", help="With --author/--search, or alone: only "
              "models with this tag (e.g. text-generation).")
@click.option("--sort", type=_choice(SORTS), default=None, help="Order of the listed models (most first).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many listed models.")
@click.option("--resume", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Continue the JSON-lines audit in FILE: models with a row there are skipped, new rows appended.")
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, writable=True), default=None, metavar="FILE",
              help="Also write a self-contained HTML page: a sortable table coloured by fit and a chart.")
@gguf_options
@pipeline_options
@units_option
def audit(source: Any, fmt: str, output: str, jobs: int, timeout: float, units: str, engine: str | None,
          max_model_len: int | None, as_json: bool, html_path: str | None, author: str | None, search: str | None,
          filter_: str | None, sort: str | None, limit: int | None, resume: str | None, **opts: Any) -> None:
    """Audit a list of models: one row each (model, params, dtype, weights, inference, training, LoRA, fits, error).

    FILE (default: stdin) holds one reference per line (# comments and blank lines are skipped) or is a CSV with
    a `model` column (comma, semicolon or tab separated). Every memory option applies to every row. A model that
    fails gives a row with its error and the rest go on; Ctrl-C (or SIGTERM, SIGHUP) stops and writes the rows
    already done.

    --author, --search and --filter audit the models of a Hub listing instead (the listing gives each model's
    commit and files, so only its config and headers are read; a model cached at that commit needs no request).

    \b
    Examples:
      hfmem audit models.txt --gpu H100
      hfmem audit models.csv --format csv --output report.csv --html report.html
      hfmem audit models.txt --gpu L40S --format markdown > report.md
      cat models.txt | hfmem audit - --format jsonl --jobs 32
      hfmem audit --author Qwen --sort downloads --limit 50 --gpu L4
      hfmem audit models.txt --resume rows.jsonl

    Exit status: 0 when every model resolved, 1 when any row has an error, 128 + the signal's number when
    stopped by one (130 for Ctrl-C).
    """
    from .audit import audit_models

    settings, gpu, hub = settings_from(opts, engine), gpu_from(opts), hub_from(opts)
    fmt = "json" if as_json else fmt
    ctx = click.get_current_context()
    if author or search or filter_:
        from .hub import list_models

        if ctx.get_parameter_source("source") is not click.core.ParameterSource.DEFAULT:
            raise click.UsageError("give a FILE or --author/--search/--filter, not both")
        models: Any = list_models(hub, author=author, search=search, filter=filter_, sort=sort and SORTS[sort],
                                  limit=limit)
    elif sort or limit:
        raise click.UsageError("--sort and --limit go with --author, --search or --filter")
    else:
        models = _read_input(source)
    if resume is not None:
        chosen = ctx.get_parameter_source("fmt") is not click.core.ParameterSource.DEFAULT
        if output != "-" or (chosen and fmt != "jsonl"):
            raise click.UsageError("--resume writes JSON lines to its FILE: leave out --output and --format")
        try:
            done = resume_rows(resume)
        except (OSError, ValueError) as e:
            raise click.BadParameter(str(e), param_hint="--resume") from None
        fmt, output = "jsonl", resume
        models = [m for m in models if m not in done] if isinstance(models, list) else (
            m for m in models if m.repo_id not in done)  # fmt: skip
    total = len(models) if isinstance(models, list) else limit
    stopped: BaseException | None = None
    rows = audit_models(models, settings, gpu=gpu, revision=opts["revision"], hub=hub,
                        jobs=jobs, timeout=timeout, serving=serving_from(engine, max_model_len, gpu, opts["gpus"]),
                        file=opts["gguf_file"], quant=opts["quant"], image=image_from(opts))
    errors, kept = 0, []  # the rows, for the HTML page (each a small summary)
    with closing(rows), click.open_file(output, "a" if resume else "w") as out, _Progress(total) as progress:

        def counted() -> Iterator[AuditRow]:
            nonlocal errors
            for row in rows:
                errors += row.error is not None
                progress.advance()
                if html_path is not None:
                    kept.append(row)
                yield row

        try:
            paint = painter() if output == "-" else text.plain  # a file gets no colour codes
            written = write_rows(counted(), fmt, out, units, width(), paint)
        except (KeyboardInterrupt, Interrupted) as e:
            stopped, written = e, progress.done
        except HfmemError as e:  # the listing failed: the rows before it are written
            show_error(e)
            raise click.exceptions.Exit(ExitCode.UNRESOLVED) from None
    if html_path is not None:
        from .views.html import render_audit

        write_page(html_path, render_audit(kept, gpu, settings))
    if stopped is not None:
        show_interrupted(f": {written} of {total} models audited" if total else f": {written} models audited")
        raise click.exceptions.Exit(stop_status(stopped))
    if output != "-":
        show(f"hfmem: {written} rows written to {output}" + (f", {errors} with an error" if errors else ""), err=True)
    if errors:
        raise click.exceptions.Exit(ExitCode.FAILED)


class _Progress:
    """Rows done, and a bar on stderr when it is a terminal that shows one (not TERM=dumb, not
    HF_HUB_DISABLE_PROGRESS_BARS)."""

    def __init__(self, total: int | None) -> None:
        self.done = 0
        disabled = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").upper() in {"1", "ON", "YES", "TRUE"}
        shown = sys.stderr.isatty() and os.environ.get("TERM") != "dumb" and not disabled and total is not None
        self._bar: ProgressBar[int] | None = None
        if shown:
            self._bar = click.progressbar(length=total, label="auditing", file=sys.stderr, show_pos=True)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def advance(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
            if self.done == self._bar.length:  # ends its line before the rows (a table comes only now)
                self._bar.render_finish()


@cli.command()
@click.argument("model")
@click.option("--engine", type=_choice(ENGINES), default="vllm", show_default=True,
              help="Whose start-up rules: vLLM 0.33.0 or SGLang 0.5.23.")
@click.option("--tensor-parallel-size", "--tp", "tp", type=click.IntRange(min=1), default=None,
              help="TP size (vLLM --tensor-parallel-size, SGLang --tp).  [default: 1, or --gpus]")
@click.option("--pipeline-parallel-size", "--pp-size", "pp", type=click.IntRange(min=1), default=1,
              show_default=True, help="Pipeline stages (SGLang --pp-size).")
@click.option("--data-parallel-size", "--dp-size", "dp", type=click.IntRange(min=1), default=1, show_default=True,
              help="Engine replicas (SGLang --dp-size, without DP attention).")
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
@click.option("--gpu-memory", type=_Positive(max=2**20), metavar="GiB", default=None,
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

    \b
    Examples:
      hfmem serve meta-llama/Llama-3.1-8B --gpu RTX-3090 --max-model-len 20000
      hfmem serve Qwen/Qwen3-30B-A3B --gpu H100 --tensor-parallel-size 2 --json
      hfmem serve deepseek-ai/DeepSeek-V3 --gpu H200 --solve --concurrency 4
      hfmem serve Qwen/Qwen2.5-7B --engine sglang --gpu L4

    Exit status: 0 it starts (--solve: a layout was found), 1 it refuses (none found), 2 the model could not be
    resolved.
    """
    gpu = gpu_from(opts)
    if gpu is None:
        raise click.UsageError("give --gpu NAME or --gpu-memory GiB")
    tp = opts["tp"] or (opts["gpus"] if not solve else None) or 1
    if engine == "vllm":
        flags = {"tensor_parallel_size": tp, "pipeline_parallel_size": opts["pp"], "data_parallel_size": opts["dp"],
                 "max_model_len": opts["max_model_len"], "max_num_seqs": opts["max_num_seqs"],
                 "max_num_batched_tokens": opts["max_num_batched_tokens"],
                 "gpu_memory_utilization": opts["gpu_memory_utilization"], "kv_cache_dtype": opts["kv_cache_dtype"],
                 "block_size": opts["block_size"], "enforce_eager": opts["enforce_eager"],
                 "quantization": opts["quantization"]}
    else:
        flags = {"tp": tp, "pp_size": opts["pp"], "dp_size": opts["dp"], "context_length": opts["max_model_len"],
                 "mem_fraction_static": opts["mem_fraction_static"],
                 "chunked_prefill_size": opts["chunked_prefill_size"],
                 "max_running_requests": opts["max_running_requests"], "kv_cache_dtype": opts["kv_cache_dtype"],
                 "page_size": opts["block_size"], "quantization": opts["quantization"]}
    try:
        settings = engine_settings(engine, **flags)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    from .api import serve_model
    from .views.serve import render_plan

    model = without_credentials(model)
    hub = hub_from(opts)

    def run(model: str) -> Any:
        return serve_model(model, gpu, settings, solve=solve, concurrency=concurrency, max_gpus=opts["gpus"] or 8,
                           revision=opts["revision"], hub=hub)

    plan = for_one(run, model, as_json)
    if plan is None:
        message = f"no layout of at most {opts['gpus'] or 8} GPUs starts and serves {concurrency:g} requests at once"
        if as_json:
            show_json({"model": model, "error": {"type": "no_layout", "message": message}})
        else:
            show(f"hfmem: {message}", err=True)
        raise click.exceptions.Exit(ExitCode.FAILED)
    if as_json:
        show_json(plan.to_dict())
    else:
        show(render_plan(plan, units))
    if not plan.starts:
        raise click.exceptions.Exit(ExitCode.FAILED)


@cli.command()
@units_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (sizes in bytes).")
def gpus(units: str, as_json: bool) -> None:
    """The GPUs --gpu knows, largest first, with the other spellings it accepts.

    \b
    Examples:
      hfmem gpus
      hfmem inspect Qwen/Qwen2.5-7B --gpu A100-40GB
      hfmem inspect Qwen/Qwen2.5-7B --gpu-memory 22  # another card: GiB
    """
    if as_json:
        show_json([{"name": gpu.name, "memory_bytes": gpu.memory_bytes, "aliases": list(aliases(gpu.name))}
                   for gpu in known_gpus()])  # fmt: skip
    else:
        show(text.render_gpus(known_gpus(), units))


def stop_status(stop: BaseException) -> int:
    """The exit status for a stop: 128 + the signal's number (KeyboardInterrupt is Ctrl-C: SIGINT)."""
    return 128 + (stop.signum if isinstance(stop, Interrupted) else signal.SIGINT)


@contextmanager
def _signals_stop() -> Iterator[None]:
    """While the command runs, SIGINT, SIGTERM and SIGHUP raise Interrupted in the main thread, so that it can write
    what is done (hfmem's threads only wait or work; none catches it). A second signal, or one once the command has
    ended, ends the process at once. A signal the parent ignores (SIGHUP under nohup) stays ignored."""
    caught = [sig for sig in STOP_SIGNALS if signal.getsignal(sig) is not signal.SIG_IGN]

    def at_once(signum: int, frame: object) -> None:
        os._exit(128 + signum)

    def first(signum: int, frame: object) -> None:
        for sig in caught:
            signal.signal(sig, at_once)
        raise Interrupted(signum)

    for sig in caught:
        signal.signal(sig, first)
    try:
        yield
    finally:
        for sig in caught:
            signal.signal(sig, at_once)


def main() -> NoReturn:
    """Console entry point, and the one place for signals: SIGINT, SIGTERM and SIGHUP stop the command (see
    `_signals_stop`), and the exit status is 128 + the signal's number.

    Never a traceback (unless HFMEM_DEBUG=1), and the process ends with its answer: a model's request can still hang
    in a worker thread (a timed-out audit row, a signal), so the output is flushed and the process exits without
    waiting for threads."""
    # A large MoE checkpoint is ~45k tensor objects; the default thresholds make the cyclic GC rescan them
    # hundreds of times (half the CPU time of an audit). This short-lived process collects rarely instead.
    gc.set_threshold(100_000, 50, 100)
    for stream in (sys.stdout, sys.stderr):  # a console that cannot show '·' or '…' gets '?', not a crash
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")
    try:
        with _signals_stop():
            cli.main(prog_name="hfmem")  # standalone mode: click ends with SystemExit
        status = ExitCode.OK
    except SystemExit as e:  # click's exit status (None: 0; a message: 1, as Python gives it)
        status = e.code if isinstance(e.code, int) else 1 if e.code else ExitCode.OK
    except Interrupted as e:
        show_interrupted()
        status = stop_status(e)
    except Exception as e:  # click handles its own errors, the commands each model's; this is the last resort
        show_error(e)
        status = ExitCode.UNRESOLVED
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader has gone (a closed pipe): status 1, as click gives it
            status = status or 1
    os._exit(status)


def _read_input(source: Any) -> list[str]:
    """audit's FILE: the model references it holds (at least one)."""
    if source.isatty():
        raise click.UsageError("give a FILE of model references, or pipe them in (e.g. `hfmem audit - < models.txt`)")
    data = source.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        message = f"over {MAX_INPUT_BYTES // 2**20} MiB: no list of models is so long"
        raise click.BadParameter(message, param_hint="FILE")
    try:
        models = read_models(data)
    except HfmemError as e:
        raise click.BadParameter(str(e), param_hint="FILE") from None
    if not models:
        raise click.BadParameter("no model references in the input", param_hint="FILE")
    return models
