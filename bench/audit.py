"""Benchmark `hfmem audit` on the fake Hub with injected latency, and hf-mem beside it.

Serves the dataset models (../shared/hub-dataset, with ground truth) plus the fixture repos, padded with renamed
copies to --models repos, from the fake Hub in this process with --latency seconds per response. Then runs, each as
a fresh process: `hfmem audit` with a cold metadata cache, again warm, again warm with every reference pinned to its
commit, and hf-mem (PyPI) over the same list. From the fake Hub's own log: requests and bytes per model, the longest
chain of sequential round trips any model needed, and the largest response on a weights file.

    pip install --target bench/.venv/hf-mem hf-mem==0.5.6        # once, for the side-by-side (optional)
    python bench/audit.py [--latency 0.05] [--models 50] [--jobs N] [--write bench/RESULTS.md]

Run it with the Python of a fresh virtual environment holding hfmem and its requirements only, as a user's
install would be: start-up time counts, and unrelated packages in site-packages (httpcore imports trio when it
is there) add to it.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import shutil
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
from tests.fakehub import FakeHub, FakeRepo, LoggedRequest, dataset_repos, fixture_repos

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
    start = time.perf_counter()
    done = subprocess.run(command, input="\n".join(models) + "\n", capture_output=True, text=True, env=env, cwd=ROOT,
                          check=False)
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    if len(rows) != len(models):
        sys.exit(f"{name}: expected {len(models)} rows, got {len(rows)} (exit {done.returncode}):\n{done.stderr}")
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
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + " --- |" * len(HEADERS)]
    lines += ["| " + " | ".join(run.row()) + " |" for run in runs]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the fake Hub waits before each answer")
    parser.add_argument("--models", type=int, default=50, help="number of repos in the audit")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="--jobs for hfmem, concurrency for hf-mem")
    parser.add_argument("--write", type=Path, help="also write the results as Markdown to this file")
    args = parser.parse_args()

    hub, models = serve(args.models, args.latency)
    home = Path(tempfile.mkdtemp(prefix="hfmem-bench-"))
    # Byte-code caching on, as in a user's install (some sandboxes turn it off, making every start-up compile).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE", "PYTHONDONTWRITEBYTECODE"))}
    env |= {"HF_ENDPOINT": hub.url, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1", "PYTHONPATH": str(ROOT)}
    hfmem = [sys.executable, "-m", "hfmem", "audit", "-", "--format", "jsonl", "--jobs", str(args.jobs)]

    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "hfmem", "--version"], check=True, capture_output=True, env=env, cwd=ROOT)
    startup = time.perf_counter() - start
    runs = [measure("hfmem cold", hub, hfmem, models, env), measure("hfmem warm", hub, hfmem, models, env)]
    pinned = [f"{model}@{hub.repos[model].sha}" for model in models]
    runs.append(measure("hfmem warm, pinned commits", hub, hfmem, pinned, env))
    serial = hfmem[:-1] + ["1"]
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
