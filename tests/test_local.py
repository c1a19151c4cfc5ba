"""Local directories (hfmem.local): crafted folders, indexes and links give typed one-line errors that show no file
content, and huggingface_hub's own snapshot folders (symlinks into ../../blobs) keep working."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from hfmem import errors
from hfmem.api import open_snapshot
from hfmem.cli import cli
from hfmem.header import Tensor, write_header
from hfmem.local import listing, read_snapshot
from hfmem.refs import parse_ref
from hfmem.snapshot import INDEX
from hfmem.spec import build_spec

CONFIG = {"model_type": "llama", "hidden_size": 8, "num_hidden_layers": 0, "num_attention_heads": 2, "vocab_size": 32}
SHARD = write_header([Tensor("model.embed_tokens.weight", "F16", (32, 8))])
SECRET = b"\x07\x00\x00\x00\x00\x00\x00\x00SECRET\n"  # a file outside the model: its bytes must never show


def model(folder: Path, weight_map: object | None = None, index_text: str | None = None) -> Path:
    """config.json, x.safetensors and, when given, an index (a weight map, or raw text)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / "x.safetensors").write_bytes(SHARD)
    if weight_map is not None:
        index_text = json.dumps({"weight_map": weight_map})
    if index_text is not None:
        (folder / INDEX).write_text(index_text)
    return folder


def refused(folder: Path, error: type[errors.HfmemError] = errors.HeaderError) -> str:
    """The one-line message `folder` is refused with, checked to show nothing of the file outside."""
    with pytest.raises(error) as raised:
        open_snapshot(str(folder))
    message = str(raised.value)
    assert "\n" not in message and "SECRET" not in message and "claims" not in message
    return message


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.safetensors"
    path.write_bytes(SECRET)
    return path


@pytest.mark.parametrize(
    "shard",
    ["../secret.safetensors", "../../secret.safetensors", "x/../../secret.safetensors", "SECRET_ABSOLUTE"],
    ids=["parent", "grandparent", "through-a-folder", "absolute"],
)
def test_an_index_cannot_name_a_file_outside_the_directory(shard, secret, tmp_path):
    shard = str(secret) if shard == "SECRET_ABSOLUTE" else shard
    folder = model(tmp_path / "a" / "model", {"model.embed_tokens.weight": shard})
    if shard.startswith("../../"):
        (tmp_path / "a" / "secret.safetensors").write_bytes(SECRET)
    assert "is not a safetensors file path inside the repo" in refused(folder)


@pytest.mark.parametrize("alias", ["./x.safetensors", "a/../x.safetensors", "x.safetensors/", ".//x.safetensors"])
def test_aliases_of_a_shard_are_refused(alias, tmp_path):
    (tmp_path / "a").mkdir()
    aliases = {f"t{i}": alias for i in range(2_000)} | {"model.embed_tokens.weight": "x.safetensors"}
    assert "is not a safetensors file path inside the repo" in refused(model(tmp_path, aliases))


def test_a_shard_named_by_many_tensors_is_read_and_counted_once(tmp_path):
    folder = model(tmp_path, {f"t{i}": "x.safetensors" for i in range(2_000)})
    snapshot = open_snapshot(str(folder))
    assert list(snapshot.headers) == ["x.safetensors"]
    assert build_spec(snapshot).parameters.total == 32 * 8


def test_a_missing_shard_is_named(tmp_path):
    folder = model(tmp_path, {"model.embed_tokens.weight": "x.safetensors", "b": "y.safetensors"})
    assert refused(folder) == f"{folder}: {INDEX}: names 'y.safetensors', which the repo does not hold"


@pytest.mark.parametrize(
    "index_text",
    [
        "{not json",
        "[" * 200_000 + "]" * 200_000,
        '{"weight_map": {"a": ' + "9" * 5_000 + "}}",
        '{"weight_map": ["x.safetensors"]}',
        '{"weight_map": {"a": 7}}',
        '{"weight_map": {}}',
        "[]",
    ],
    ids=["not-json", "deep", "huge-int", "list", "not-a-name", "empty", "not-an-object"],
)
def test_an_index_that_is_not_a_usable_index(index_text, tmp_path):
    message = refused(model(tmp_path, index_text=index_text))
    assert message.startswith(f"{tmp_path}: {INDEX}") and len(message) < 200


def test_through_the_cli_an_escaping_index_is_a_typed_error(secret, tmp_path):
    folder = model(tmp_path / "model", {"model.embed_tokens.weight": str(secret)})
    result = CliRunner().invoke(cli, ["inspect", str(folder), "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "bad_header" and "SECRET" not in error["message"]


def test_symlink_loops_are_skipped(tmp_path):
    folder = model(tmp_path)
    (folder / "loop").symlink_to(".")  # a folder that contains itself
    (folder / "self.safetensors").symlink_to("self.safetensors")  # a link to itself
    (folder / "nowhere.safetensors").symlink_to("missing")
    snapshot = open_snapshot(str(folder))
    assert [f.path for f in snapshot.files] == ["config.json", "x.safetensors"]
    assert list(snapshot.headers) == ["x.safetensors"]


def test_a_symlinked_folder_is_not_entered(secret, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "y.safetensors").write_bytes(SECRET)
    folder = model(tmp_path / "model", {"model.embed_tokens.weight": "out/y.safetensors"})
    (folder / "out").symlink_to(outside)
    assert refused(folder).endswith("names 'out/y.safetensors', which the repo does not hold")


def test_huggingface_hub_snapshot_folders_of_symlinks_work(tmp_path):
    """models--org--name/snapshots/<commit>/ holds links into ../../blobs, as hf_hub_download leaves them."""
    repo = tmp_path / "models--org--name"
    snapshot_dir, blobs = repo / "snapshots" / ("a" * 40), repo / "blobs"
    (snapshot_dir / "sub").mkdir(parents=True)
    blobs.mkdir()
    contents = {
        "config.json": json.dumps(CONFIG).encode(),
        "sub/x.safetensors": SHARD,
        INDEX: json.dumps({"weight_map": {"model.embed_tokens.weight": "sub/x.safetensors"}}).encode(),
    }
    for i, (name, data) in enumerate(contents.items()):
        (blobs / f"blob{i}").write_bytes(data)
        link = snapshot_dir / name
        link.symlink_to(os.path.relpath(blobs / f"blob{i}", link.parent))
    snapshot = open_snapshot(str(snapshot_dir))
    assert sorted(f.path for f in snapshot.files) == sorted(contents)
    assert build_spec(snapshot).parameters.total == 32 * 8


def test_a_listing_is_bounded(tmp_path):
    model(tmp_path)
    (tmp_path / "a").mkdir()
    assert len(listing(tmp_path, "model", limit=3)) == 2
    with pytest.raises(errors.NoUsableFiles, match=r"^model holds more than 2 files and folders$"):
        listing(tmp_path, "model", limit=2)


def test_pipes_and_oversized_configs(tmp_path):
    folder = model(tmp_path / "model")
    with (folder / "config.json").open("r+b") as f:
        f.truncate(8 * 2**20 + 1)  # sparse: one byte past the cap
    assert refused(folder, errors.ConfigError).endswith("config.json: larger than 8,388,608 bytes")
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")  # opening it would wait for a writer forever
    assert refused(folder, errors.NoUsableFiles) == f"{folder} has no config.json"


def test_the_cache_folder_is_skipped(tmp_path):
    folder = model(tmp_path)
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "x.safetensors.metadata").write_text("etag")
    assert [f.path for f in open_snapshot(str(folder)).files] == ["config.json", "x.safetensors"]


def test_a_symlink_out_of_the_folder_is_not_read(tmp_path):
    """A cloned repo can hold a link such as model.safetensors -> a private file: its bytes never show."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"\x41" * 8 + b"top secret")
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "llama"}')
    (model / "model.safetensors").symlink_to(secret)
    with pytest.raises(errors.NoUsableFiles, match="model.safetensors leads outside the model's folder") as caught:
        read_snapshot(parse_ref(str(model)))
    assert "4702111234474983745" not in str(caught.value) and "secret" not in str(caught.value)


def test_a_hub_cache_snapshot_reads_through_its_links_into_blobs(tmp_path):
    repo = tmp_path / "hub" / "models--org--x"
    blobs, snapshot = repo / "blobs", repo / "snapshots" / ("a" * 40)
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    (blobs / "c1").write_text('{"model_type": "llama", "hidden_size": 8}')
    (blobs / "w1").write_bytes(write_header([Tensor("w", "F32", (2, 2))]) + bytes(16))
    (snapshot / "config.json").symlink_to("../../blobs/c1")
    (snapshot / "model.safetensors").symlink_to("../../blobs/w1")
    assert read_snapshot(parse_ref(str(snapshot))).headers["model.safetensors"].data_bytes == 16
