"""The HTML report: the page parsed with the stdlib (rows, charts, values, escaping, nothing fetched), then loaded
in headless Chromium (the DOM after its scripts ran, sorting, script errors, a screenshot)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from hfmem.api import ModelReport, inspect_model
from hfmem.audit import AuditRow, audit_models
from hfmem.gpus import Gpu, find_gpu
from hfmem.header import Tensor
from hfmem.hub import HubOptions
from hfmem.memory import MODES, Settings
from hfmem.views.units import format_bytes
from hfmem.views.html import ERROR_SCRIPT, SORT_SCRIPT, model_fragment, render_audit, render_models
from tests.fakehub import FIXTURES, FakeHub, build_repo, load_tensors

TINY, REMOTE = "hfmem-test/tiny-llama", "hfmem-test/tiny-remote-code"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
TINY_DIR = FIXTURES / "hfmem-test__tiny-llama"
VOID = {"meta", "br", "hr", "img", "input", "link"}


# --- a small DOM, from html.parser ------------------------------------------------------------------------------


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None] = field(default_factory=dict)
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def all(self, tag: str, cls: str | None = None) -> list[Node]:
        found = []
        for child in self.children:
            if isinstance(child, Node):
                if tag in ("*", child.tag) and (cls is None or cls in (child.attrs.get("class") or "").split()):
                    found.append(child)
                found += child.all(tag, cls)
        return found

    def one(self, tag: str, cls: str | None = None) -> Node:
        (node,) = self.all(tag, cls)
        return node


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack = [Node("#document")]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.stack[-1].tag == tag, f"</{tag}> closes <{self.stack[-1].tag}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(page)
    builder.close()
    assert len(builder.stack) == 1, f"unclosed <{builder.stack[-1].tag}>"
    return builder.stack[0]


def audit_rows(dom: Node) -> list[Node]:
    return dom.one("table", "audit").one("tbody").all("tr")


# --- models -----------------------------------------------------------------------------------------------------


def tiny_variant(fake_hub: FakeHub, repo_id: str, *, layers: int = 2, vocab: int = 256, **config: object) -> None:
    """tiny-llama with fewer layers, another vocabulary size or other config values, served by the fake Hub."""
    base = json.loads((TINY_DIR / "config.json").read_text())
    tensors = [
        Tensor(t.name, t.dtype, (vocab, *t.shape[1:]) if t.shape[0] == base["vocab_size"] else t.shape)
        for t in load_tensors(TINY_DIR / "tensors.json")
        if _layer(t.name) < layers
    ]
    cfg = base | {"num_hidden_layers": layers, "vocab_size": vocab} | config
    fake_hub.add_repo(build_repo(repo_id, tensors, cfg))


def _layer(name: str) -> int:
    found = re.search(r"\.layers\.(\d+)\.", name)
    return int(found[1]) if found else 0


@pytest.fixture
def hub(fake_hub: FakeHub, hub_repo) -> HubOptions:
    """tiny-llama, tiny-remote-code, a one-layer variant whose config names a hostile architecture, and a variant
    with a large vocabulary."""
    hub_repo(TINY)
    hub_repo(REMOTE)
    tiny_variant(fake_hub, "evil-org/tiny", layers=1, architectures=[HOSTILE])
    tiny_variant(fake_hub, "big-org/wide", vocab=65536)
    return HubOptions(endpoint=fake_hub.url, token=False)


@pytest.fixture
def reports(hub: HubOptions) -> list[ModelReport]:
    return [inspect_model(m, gpu=find_gpu("H100"), hub=hub, tables=True) for m in (TINY, "evil-org/tiny")]


AUDIT_GPU = Gpu("test-gpu", 5_555_556)


@pytest.fixture
def audit(hub: HubOptions) -> list[AuditRow]:
    """Fit classes on a GPU with 5 MB usable and no runtime overhead: tiny-llama and tiny-remote-code fit some
    modes, the one-layer variant all, the wide one none; the hostile reference is an error."""
    models = [TINY, REMOTE, "evil-org/tiny", "big-org/wide", HOSTILE]
    return list(audit_models(models, Settings(overhead_bytes=0), gpu=AUDIT_GPU, hub=hub))


def test_model_page_shows_each_report(reports):
    dom = parse(render_models(reports))
    assert dom.one("html").attrs["lang"] == "en"
    assert dom.one("head").one("title").text() == f"hfmem: {TINY}, evil-org/tiny"
    sections = dom.all("section")
    assert [s.one("h2").text() for s in sections] == [TINY, "evil-org/tiny"]
    for section, report in zip(sections, reports):
        charts = section.all("svg")
        assert len(charts) == 2 and all(c.attrs["role"] == "img" and c.attrs["aria-label"] for c in charts)
        bars, curve = charts
        identity = dict(zip((dt.text() for dt in section.all("dt")), (dd.text() for dd in section.all("dd"))))
        assert identity["Parameters"].startswith(f"{report.spec.parameters.total:,} (exact)")
        assert "KV as transformers 5.24.0" in section.text()  # whose KV rules the inference column follows
        # The breakdown: a bar segment and a table cell per component and mode, in the report's own numbers.
        table = section.one("table", "breakdown")
        cells = {tr.one("th").text(): [td.text() for td in tr.all("td")] for tr in table.all("tr")[1:]}
        segments = {rect.one("title").text() for rect in bars.all("rect")}
        for i, estimate in enumerate(report.memory.by_mode().values()):
            assert cells["total"][i] == format_bytes(estimate.total_bytes)
            for name, size in estimate.components.items():
                assert cells[name][i] == format_bytes(size)
                if size:
                    assert any(t.endswith(f"· {name}: {format_bytes(size)}") for t in segments)
        assert cells["fits one H100"] == ["yes"] * 3
        assert "H100 usable 72.00 GiB (beyond the scale) →" in bars.text()  # far beyond a 0.5 GiB bar
        # The curve: a line per mode through the report's curve points, and the GPU's usable line.
        assert [row.seq_len for row in report.curve] == [256, 512]  # powers of two up to the context, 512
        assert len(curve.all("polyline")) == len(MODES)
        points = [c.one("title").text() for c in curve.all("circle")]
        assert f"LoRA at seq 512: {format_bytes(report.curve[-1].totals['lora'])}" in points
        assert len(points) == len(MODES) * len(report.curve)
        assert "H100 usable 72.00 GiB" in curve.text()
        assert any(line.attrs.get("stroke-dasharray") for line in curve.all("line"))


def test_audit_page_has_a_row_per_model_coloured_by_fit(audit):
    dom = parse(render_audit(audit, AUDIT_GPU))
    assert dom.one("head").one("title").text() == "hfmem audit: 5 models"
    headers = [th.attrs["data-key"] for th in dom.one("table", "audit").one("thead").all("th")]
    assert headers == ["model", "params", "dtype", "weights", "inference", "training", "lora", "fits", "error"]
    rows = audit_rows(dom)
    assert [tr.all("td")[0].text() for tr in rows] == [row.model for row in audit]
    assert [tr.attrs["class"] for tr in rows] == ["fit-some", "fit-some", "fit-all", "fit-none", "fit-error"]
    for tr, row in zip(rows, audit):
        cells = tr.all("td")
        if row.error is None:
            assert cells[1].attrs["data-value"] == str(row.params)
            totals = [row.totals[m] for m in MODES]
            assert [c.attrs["data-value"] for c in cells[4:7]] == [str(t) for t in totals]
            assert [c.text() for c in cells[4:7]] == [format_bytes(t) for t in totals]
        else:
            assert cells[1].attrs["data-value"] == "" and cells[8].text() == row.error.message
    assert [td.text() for td in (tr.all("td")[7] for tr in rows)] == ["inference", "inference", "all", "none", ""]
    scatter = dom.one("svg")
    assert scatter.attrs["role"] == "img" and "one dot per model (4)" in scatter.attrs["aria-label"]
    dots = [c.one("title").text() for c in scatter.all("circle", "dot")]
    inference = format_bytes(audit[0].totals["inference"])
    assert len(dots) == 4 and f"{TINY}: 106,816 parameters, inference {inference}" in dots


def test_remote_text_is_escaped(reports, audit):
    for page in (render_models(reports), render_audit(audit, AUDIT_GPU), model_fragment(reports[1])):
        assert HOSTILE not in page and "<img" not in page
        assert escape(HOSTILE) in page
        scripts = [s.text() for s in parse(page).all("script")]
        assert scripts in ([ERROR_SCRIPT, SORT_SCRIPT], [])  # the page's own, and no other


def test_nothing_is_fetched(reports, audit):
    """No address to fetch: no http(s) URL anywhere, no attribute that loads something, no CSS url() or @import."""
    for page in (render_models(reports), render_audit(audit, AUDIT_GPU)):
        assert not re.search(r"https?:", page, re.IGNORECASE)
        dom = parse(page)
        attributes = {name for node in dom.all("*") for name in node.attrs}
        assert not attributes & {"src", "srcset", "href", "xlink:href", "action", "poster", "data", "background"}
        assert not re.search(r"url\(|@import", dom.one("style").text() + str([n.attrs for n in dom.all("*")]))


def test_notebooks_get_the_model_section(reports, hub):
    report = reports[0]
    fragment = report._repr_html_()
    assert fragment == model_fragment(report)
    dom = parse(fragment)
    assert dom.one("div").attrs["class"] == "hfmem" and dom.all("style") and not dom.all("html")
    assert dom.one("section").one("h2").text() == TINY and len(dom.all("svg")) == 2
    # Without tables there is no curve to draw: the bars alone.
    plain = inspect_model(TINY, hub=hub)
    assert plain.curve == () and len(parse(plain._repr_html_()).all("svg")) == 1


# --- in a browser -----------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")
QUIET = ["--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with its own profile, logging the page's console to stderr."""
    command = [CHROMIUM or "chromium", "--headless", "--no-sandbox", "--disable-gpu", *QUIET,
               f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def load(tmp_path: Path, page: Path, fragment: str = "") -> Node:
    """The DOM once the page's scripts ran; fails on any console message from the page."""
    result = chromium(tmp_path, "--dump-dom", page.as_uri() + fragment)
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    dom = parse(result.stdout)
    errors = dom.all("pre")[0]
    assert errors.attrs["id"] == "script-errors"
    if not fragment.endswith("nosuch"):
        assert console == [] and errors.text() == ""
    return dom


def screenshot(tmp_path: Path, page: Path) -> Path:
    png = tmp_path / f"{page.stem}.png"
    chromium(tmp_path, f"--screenshot={png}", "--window-size=1280,1600", page.as_uri())
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
    return png


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_pages_in_a_browser(tmp_path, reports, audit):
    models, audit_page = tmp_path / "models.html", tmp_path / "audit.html"
    models.write_text(render_models(reports))
    audit_page.write_text(render_audit(audit, AUDIT_GPU))

    dom = load(tmp_path, models)
    assert len(dom.all("section")) == 2 and len(dom.all("svg")) == 4

    # `#sort=KEY` clicks that column's header: numbers sort as numbers, the error row (no number) last.
    dom = load(tmp_path, audit_page, "#sort=params")
    assert len(dom.all("svg")) == 1 and len(dom.all("circle", "dot")) == 4
    params = [tr.all("td")[1].attrs["data-value"] for tr in audit_rows(dom)]
    assert params == ["12352", "69824", "106816", "8462656", ""]
    assert [th.attrs.get("aria-sort") for th in dom.all("th")[:3]] == [None, "ascending", None]
    dom = load(tmp_path, audit_page, "#sort=model")
    names = [tr.all("td")[0].text() for tr in audit_rows(dom)]
    assert [n for n in names if n != HOSTILE] == ["big-org/wide", "evil-org/tiny", TINY, REMOTE]
    # A script error is shown on the page, so an empty error element above means there was none.
    dom = load(tmp_path, audit_page, "#sort=nosuch")
    assert "script error:" in dom.all("pre")[0].text()

    for page in (models, audit_page):
        screenshot(tmp_path, page)


def test_an_attention_free_model_shows_no_missing_dimensions(tmp_path):
    """Mamba's config has no context length or heads: the page leaves them out rather than writing 'None'."""
    from pathlib import Path

    from hfmem.views.html import render_models

    model = tmp_path / "mamba"
    model.mkdir()
    fixture = Path(__file__).parents[1] / "fixtures" / "configs" / "mamba-130m-hf.json"
    (model / "config.json").write_text(fixture.read_text())
    page = render_models([inspect_model(str(model))])
    assert "mamba (MambaForCausalLM) · 24 layers · hidden 768" in page and "None" not in page
