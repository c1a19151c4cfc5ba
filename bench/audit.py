"""Benchmark `hfmem audit` on the fake Hub with injected latency, and hf-mem beside it.

Serves the dataset models (../shared/hub-dataset, with ground truth) plus the fixture repos, padded with renamed
copies to --models repos, from the fake Hub in this process with --latency seconds per response. Then runs, each as
a fresh process: `hfmem audit` with a cold metadata cache, again warm, again warm with every reference pinned to its
commit, and hf-mem (PyPI) over the same list. From the fake Hub's own log: requests and bytes per model, the longest
chain of sequential round trips any model needed, and the largest response on a weights file.

    pip install --target bench/.venv/hf-mem hf-mem==0.5.6        # once, for the side-by-side (optional)
    python bench/audit.py [--latency 0.05] [--models 50] [--jobs N] [--write bench/RESULTS.md]

Three more modes, each printed as its own Markdown section (and appended to --write):

    --scale 50,500,3000   that many distinct repos (renamed copies of the dataset models under one organisation):
                          peak RSS of the `hfmem audit` process and rows/s, from a list and from `--author`
    --quota 200           that many models with the fake Hub enforcing Quota(--quota-limit, --quota-window) on its
                          api bucket: error rows, and wall time against what the quota allows
    --cpu-against TREE    CPU seconds of a cold audit of 54 repos (the dataset models, padded with renamed copies),
                          this checkout against another one (e.g. a `git worktree` of an older commit), alternated
                          --repeat times; the medians and their ratio

Run it with the Python of a fresh virtual environment holding hfmem and its requirements only, as a user's
install would be: start-up time counts, and unrelated packages in site-packages (httpcore imports trio when it
is there) add to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from huggingface_hub import constants

from hfmem.api import open_snapshot
from hfmem.audit import DEFAULT_JOBS
from hfmem.memory import Settings, estimate
from hfmem.spec import build_spec
from tests.fakehub import FakeHub, FakeRepo, LoggedRequest, Quota, dataset_repos, fixture_repos

HF_MEM = ROOT / "bench" / ".venv" / "hf-mem"  # where `pip install --target` put hf-mem (git-ignored)
FIRST_READ = 100_001  # huggingface_hub's speculative first ranged read of a safetensors file


@dataclass(frozen=True)
class Run:
    name: str
    wall_s: float
    models: int
    failed: int
    requests: int
    round_trips: int  # the most sequential round trips any one model needed
    bytes_sent: int
    largest_weights_response: int  # bytes of the largest response on a .safetensors file (0: none)
    weights_limit_ok: bool  # every such response within max(100,001, that file's header)

    def row(self) -> list[str]:
        per_model = self.models or 1
        return [
            self.name,
            f"{self.wall_s:.2f}",
            f"{self.requests / per_model:.2f}",
            str(self.round_trips),
            f"{self.bytes_sent / per_model / 1000:,.1f}",
            f"{self.largest_weights_response:,}",
            "yes" if self.weights_limit_ok else "NO",
            f"{self.failed}/{self.models}",
        ]


HEADERS = ["run", "wall s", "requests/model", "max round trips", "kB/model", "largest weights response (B)",
           "within limit", "failed"]  # fmt: skip


@dataclass(frozen=True)
class Child:
    """One `hfmem` process: what it wrote, and what it cost (from wait4, so only this process is counted)."""

    stdout: str
    stderr: str
    status: int
    wall_s: float
    cpu_s: float  # user + system
    peak_rss: int  # bytes

    @property
    def rows(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout.splitlines() if line.startswith("{")]


# Runs a command as its child and writes what it cost (wall s, CPU s, peak RSS in KiB) to the file named first. The
# command is forked from this small process, not from the bench: a forked child's peak RSS counts the pages of its
# parent until it execs, and the bench's fake Hub holds hundreds of MB.
LAUNCHER = """import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{time.perf_counter() - start} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def child(command: list[str], stdin: str, env: dict[str, str], cwd: Path = ROOT) -> Child:
    with tempfile.TemporaryDirectory() as folder:
        cost = Path(folder) / "cost"
        done = subprocess.run([sys.executable, "-c", LAUNCHER, str(cost), *command], input=stdin, capture_output=True,
                              text=True, env=env, cwd=cwd, check=False)  # fmt: skip
        wall, cpu, peak_kib = cost.read_text().split()
    return Child(done.stdout, done.stderr, done.returncode, float(wall), float(cpu), int(peak_kib) * 1024)


def serve(models: int, latency: float) -> tuple[FakeHub, list[str]]:
    repos: list[FakeRepo] = fixture_repos() + dataset_repos()
    if not repos[len(fixture_repos()):]:
        sys.exit("../shared/hub-dataset is not present: nothing to benchmark")
    originals = list(repos)
    while len(repos) < models:  # renamed copies: distinct repos, so nothing is shared between them
        source = originals[len(repos) % len(originals)]
        repos.append(dataclasses.replace(source, repo_id=f"bench-copy-{len(repos)}/{source.repo_id.split('/')[1]}",
                                         sha=""))  # fmt: skip
    hub = FakeHub(latency=latency)
    for repo in repos[:models]:
        hub.add_repo(repo)
    return hub.start(), [repo.repo_id for repo in repos[:models]]


def round_trips(requests: list[LoggedRequest]) -> int:
    """Sequential round trips: a request's depth is 1 + the deepest request answered before it arrived."""
    ordered = sorted(requests, key=lambda r: r.received)
    depth: list[int] = []
    for i, request in enumerate(ordered):
        depth.append(1 + max((depth[j] for j in range(i) if ordered[j].answered <= request.received), default=0))
    return max(depth, default=0)


def measure(name: str, hub: FakeHub, command: list[str], models: list[str], env: dict[str, str]) -> Run:
    hub.reset_log()
    done = child(command, "\n".join(models) + "\n", env)
    wall, rows = done.wall_s, done.rows
    if len(rows) != len(models):
        sys.exit(f"{name}: expected {len(models)} rows, got {len(rows)} (exit {done.status}):\n{done.stderr}")
    by_repo: dict[str | None, list[LoggedRequest]] = defaultdict(list)
    for request in hub.log:
        by_repo[request.repo_id].append(request)
    weights = [r for r in hub.log if r.route == "resolve" and (r.file or "").endswith(".safetensors")]
    limit_ok = all(r.bytes_sent <= max(FIRST_READ, _header_end(hub, r)) for r in weights)
    return Run(
        name=name,
        wall_s=wall,
        models=len(models),
        failed=sum(row["error"] is not None for row in rows),
        requests=len(hub.log),
        round_trips=max((round_trips(requests) for requests in by_repo.values()), default=0),
        bytes_sent=sum(r.bytes_sent for r in hub.log),
        largest_weights_response=max((r.bytes_sent for r in weights), default=0),
        weights_limit_ok=limit_ok,
    )


def _header_end(hub: FakeHub, request: LoggedRequest) -> int:
    content = hub.repos[request.repo_id or ""].files[request.file or ""]
    head = getattr(content, "head", b"")
    return 8 + int.from_bytes(head[:8], "little") if len(head) >= 8 else 0


def stages(models: list[str], home: Path) -> tuple[dict[str, float], list[tuple[float, str, int]]]:
    """CPU seconds per stage over every model, one at a time in this process, from the warm cache (offline), and
    the per-model totals (seconds, model, tensors), largest first."""
    constants.HF_HOME, constants.HF_HUB_OFFLINE = str(home), True
    gc.freeze()  # this process's own heap (the fake Hub's files) is not hfmem's garbage to collect
    totals = {"cache load": 0.0, "spec": 0.0, "memory estimate": 0.0}
    per_model = []
    for model in models:
        t0 = time.process_time()
        snapshot = open_snapshot(model)
        t1 = time.process_time()
        spec = build_spec(snapshot)
        t2 = time.process_time()
        estimate(spec, Settings())
        t3 = time.process_time()
        for stage, seconds in zip(totals, (t1 - t0, t2 - t1, t3 - t2)):
            totals[stage] += seconds
        per_model.append((t3 - t0, model, spec.tensor_count))
    return totals, sorted(per_model, reverse=True)


def table(runs: list[Run]) -> str:
    return markdown(HEADERS, [run.row() for run in runs])


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def copies(count: int, org: str) -> list[FakeRepo]:
    """`count` distinct repos under `org`: the dataset and fixture models renamed, round robin."""
    originals = fixture_repos() + dataset_repos()
    return [dataclasses.replace(repo, repo_id=f"{org}/{i:05d}-{repo.repo_id.split('/')[1]}", sha="")
            for i, repo in ((i, originals[i % len(originals)]) for i in range(count))]  # fmt: skip


def environment(hub: FakeHub, home: Path, root: Path = ROOT) -> dict[str, str]:
    # Byte-code caching on, as in a user's install (some sandboxes turn it off, making every start-up compile).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE", "PYTHONDONTWRITEBYTECODE"))}
    return env | {"HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1",
                  "PYTHONPATH": str(root)}  # fmt: skip


def audit_command(jobs: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "hfmem", "audit", "--format", "jsonl", "--jobs", str(jobs), *args]


def scale(sizes: list[int], latency: float, jobs: int) -> str:
    """Peak RSS and rows/s of cold audits of `sizes` distinct repos, from a list and from the Hub's listing."""
    rows = []
    for size in sizes:
        hub = FakeHub(latency=latency)
        for repo in copies(size, "scale"):
            hub.add_repo(repo)
        hub.start()
        models = list(hub.repos)
        for source, args, stdin in (("list", ["-"], "\n".join(models) + "\n"), ("--author", ["--author", "scale"], "")):
            home = Path(tempfile.mkdtemp(prefix="hfmem-bench-"))
            hub.reset_log()
            done = child(audit_command(jobs, *args), stdin, environment(hub, home))
            shutil.rmtree(home)
            good = sum(row["error"] is None for row in done.rows)
            if len(done.rows) != size:
                sys.exit(f"scale {size} ({source}): {len(done.rows)} rows (exit {done.status}):\n{done.stderr}")
            rows.append([f"{size:,}", source, f"{done.wall_s:.1f}", f"{size / done.wall_s:,.0f}",
                         f"{done.peak_rss / 2**20:,.0f}", f"{done.cpu_s:.1f}", f"{len(hub.log) / size:.2f}",
                         f"{size - good}"])  # fmt: skip
            print(rows[-1], file=sys.stderr)
        hub.stop()
    return markdown(["repos", "from", "wall s", "rows/s", "peak RSS (MiB)", "CPU s", "requests/model", "error rows"],
                    rows)  # fmt: skip


def quota(count: int, limit: int, window: float, latency: float, jobs: int) -> tuple[str, list[str]]:
    """A cold audit of `count` repos with the api bucket limited to `limit` requests per `window` seconds."""
    hub = FakeHub(latency=latency)
    for repo in copies(count, "quota"):
        hub.add_repo(repo)
    hub.quotas["api"] = Quota(limit=limit, window=window)
    hub.start()
    home = Path(tempfile.mkdtemp(prefix="hfmem-bench-"))
    done = child(audit_command(jobs, "-"), "\n".join(hub.repos) + "\n", environment(hub, home))
    shutil.rmtree(home)
    hub.stop()
    api = [r for r in hub.log if r.route != "resolve"]
    answered = sum(r.status == 200 for r in api)
    refused = sum(r.status == 429 for r in api)
    errors = sum(row["error"] is not None for row in done.rows)
    allowed = (math.ceil(answered / limit) - 1) * window  # the windows that must reset before the last request
    row = [f"{count}", f"{limit} per {window:g} s", f"{len(done.rows)}", f"{errors}", f"{answered}", f"{refused}",
           f"{allowed:.0f}", f"{done.wall_s:.1f}"]  # fmt: skip
    headers = ["models", "api quota", "rows", "error rows", "api requests", "429s", "quota allows (s)", "wall s"]
    return markdown(headers, [row]), row


def cpu_against(other: Path, repeat: int, jobs: int) -> tuple[str, float]:
    """Median CPU seconds of a cold audit of 54 repos by this checkout and by `other`, alternated."""
    hub, models = serve(54, 0.0)
    seconds: dict[Path, list[float]] = {ROOT: [], other: []}
    startup: dict[Path, list[float]] = {ROOT: [], other: []}
    for _ in range(repeat):
        for tree in (other, ROOT):
            home = Path(tempfile.mkdtemp(prefix="hfmem-bench-"))
            env = environment(hub, home, tree)
            done = child(audit_command(jobs, "-"), "\n".join(models) + "\n", env, tree)
            started = child([sys.executable, "-m", "hfmem", "--help"], "", env, tree)
            if started.status != 0:
                sys.exit(f"{tree}: `hfmem --help` failed (exit {started.status}):\n{started.stderr}")
            startup[tree].append(started.cpu_s)
            shutil.rmtree(home)
            if len(done.rows) != len(models):
                sys.exit(f"{tree}: {len(done.rows)} rows (exit {done.status}):\n{done.stderr}")
            seconds[tree].append(done.cpu_s)
    hub.stop()
    before, after = statistics.median(seconds[other]), statistics.median(seconds[ROOT])
    start = statistics.median(startup[other] + startup[ROOT])
    runs = ", ".join(f"{s:.2f}" for s in seconds[other]), ", ".join(f"{s:.2f}" for s in seconds[ROOT])
    return (f"CPU seconds (user + system) of a cold `hfmem audit` of 54 repos (fake Hub without latency, "
            f"--jobs {jobs}), {repeat} runs each, alternated: {other.name} median {before:.2f} s ({runs[0]}), this "
            f"checkout median {after:.2f} s ({runs[1]}): {before / after:.2f}x less CPU. Without the interpreter's "
            f"start-up and imports (`hfmem --help`, median {start:.2f} s): {before - start:.2f} s against "
            f"{after - start:.2f} s, {(before - start) / (after - start):.2f}x."), before / after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake Hub waits before each answer")
    parser.add_argument("--models", type=int, default=50, help="number of repos in the audit")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="--jobs for hfmem, concurrency for hf-mem")
    parser.add_argument("--write", type=Path, help="also write the results as Markdown to this file")
    parser.add_argument("--scale", help="comma-separated numbers of distinct repos (e.g. 50,500,3000)")
    parser.add_argument("--quota", type=int, help="models to audit under the api quota")
    parser.add_argument("--quota-limit", type=int, default=100, help="api requests per window")
    parser.add_argument("--quota-window", type=float, default=60.0, help="seconds per window")
    parser.add_argument("--cpu-against", type=Path, help="another checkout of hfmem to compare CPU time with")
    parser.add_argument("--repeat", type=int, default=5, help="runs per checkout with --cpu-against")
    args = parser.parse_args()
    load = f"load average {os.getloadavg()[0]:.1f} at the start"
    sections = []
    if args.scale:
        sizes = [int(size) for size in args.scale.split(",")]
        sections.append(f"Scale (fake Hub latency {args.latency * 1000:.0f} ms, --jobs {args.jobs}, {load}):\n\n"
                        + scale(sizes, args.latency, args.jobs))  # fmt: skip
    if args.quota:
        text, _ = quota(args.quota, args.quota_limit, args.quota_window, args.latency, args.jobs)
        sections.append(f"Quota (fake Hub latency {args.latency * 1000:.0f} ms, --jobs {args.jobs}, {load}):\n\n"
                        + text)  # fmt: skip
    if args.cpu_against:
        sections.append(cpu_against(args.cpu_against, args.repeat, args.jobs)[0] + f" ({load}.)")
    if sections:
        text = "\n\n".join(sections)
        print(text)
        if args.write:
            with args.write.open("a") as f:
                f.write("\n" + text + "\n")
        return

    hub, models = serve(args.models, args.latency)
    home = Path(tempfile.mkdtemp(prefix="hfmem-bench-"))
    env = environment(hub, home)
    hfmem = audit_command(args.jobs, "-")

    start = time.perf_counter()
    # --help loads what a command does (--version asks the installed package's metadata, absent when run from a checkout)
    subprocess.run([sys.executable, "-m", "hfmem", "--help"], check=True, capture_output=True, env=env, cwd=ROOT)
    startup = time.perf_counter() - start
    runs = [measure("hfmem cold", hub, hfmem, models, env), measure("hfmem warm", hub, hfmem, models, env)]
    pinned = [f"{model}@{hub.repos[model].sha}" for model in models]
    runs.append(measure("hfmem warm, pinned commits", hub, hfmem, pinned, env))
    serial = audit_command(1, "-")
    runs.append(measure("hfmem cold, --jobs 1", hub, serial, models, env | {"HF_HOME": str(home / "serial")}))
    if (HF_MEM / "hf_mem").is_dir():
        wrapper = [sys.executable, str(ROOT / "bench" / "hf_mem_fakehub.py"), hub.url, str(args.jobs)]
        runs.append(measure("hf-mem 0.5 (arun, concurrent)", hub, wrapper, models, env | {"PYTHONPATH": str(HF_MEM)}))
    hub.stop()
    cpu, heaviest = stages(models, home)
    shutil.rmtree(home)
    top = heaviest[:4]

    heaviest_share = ", ".join(f"{model} ({tensors:,} tensors, {seconds:.2f} s)" for seconds, model, tensors in top)
    text = "\n".join([
        (
            f"{len(models)} repos ({len(dataset_repos())} dataset models with ground truth, {len(fixture_repos())} "
            f"fixtures, the rest renamed copies), fake Hub latency {args.latency * 1000:.0f} ms per response, "
            f"--jobs {args.jobs}, each run a fresh process (Python start-up and imports: {startup:.2f} s)."
        ),
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        + f"Python {platform.python_version()}.",
        "",
        table(runs),
        "",
        (
            "round trips: the longest chain of requests any one model made one after another; kB/model: response "
            "bodies per model; within limit: every response on a .safetensors file was at most max(100,001 bytes, "
            "its header)."
        ),
        "",
        (
            f"CPU time per stage, all {len(models)} models one after another from the warm cache (no network): "
            + ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in cpu.items())
            + f". The {len(top)} heaviest models take {sum(t for t, _, _ in top):.2f} s of the "
            f"{sum(t for t, _, _ in heaviest):.2f} s: {heaviest_share}."
        ),
    ])
    if len(runs) == 5:
        cold, peer = runs[0], runs[-1]
        text += (
            f"\n\nhfmem cold against hf-mem on the same list: wall time {cold.wall_s:.2f} s against "
            f"{peer.wall_s:.2f} s, "
            f"{peer.requests / cold.requests:.1f}x fewer requests, {peer.bytes_sent / cold.bytes_sent:.1f}x fewer "
            f"bytes, at most {cold.round_trips} sequential round trips against {peer.round_trips}. (hf-mem without "
            "--experimental reads no config.json and reports weight bytes only; hfmem also estimates inference, "
            "training and LoRA memory for every row.)"
        )
    else:
        text += f"\n\nhf-mem was not run: install it with `pip install --target {HF_MEM.relative_to(ROOT)} hf-mem`."
    text = f"Measured by `python bench/audit.py` (see its docstring).\n\n{text}"
    print(text)
    if args.write:
        args.write.write_text(text + "\n")


if __name__ == "__main__":
    main()
