"""The GPU catalogue and its forgiving lookup."""

from __future__ import annotations

import re

import pytest

from hfmem.errors import HfmemError
from hfmem.gpus import _CATALOGUE, _INDEX, GIB, find_gpu, known_gpus


@pytest.mark.parametrize(
    ("query", "name", "gib"),
    [
        ("H100", "H100", 80),
        ("h100 nvl", "H100-NVL", 94),
        ("H200", "H200", 141),
        ("A100 80GB", "A100-80GB", 80),
        ("a100-40gb", "A100-40GB", 40),
        ("A100 40G", "A100-40GB", 40),
        ("NVIDIA GeForce RTX 4090", "RTX-4090", 24),
        ("rtx_3090", "RTX-3090", 24),
        ("5090", "RTX-5090", 32),
        ("L40S", "L40S", 48),
        ("l4", "L4", 24),
        ("A10G", "A10G", 24),
        ("T4", "T4", 16),
        ("V100 16GB", "V100-16GB", 16),
        ("AMD Instinct MI300X", "MI300X", 192),
        ("B200", "B200", 180),
        ("rtx a6000", "A6000", 48),
    ],
)
def test_lookup_is_case_space_and_dash_insensitive(query, name, gib):
    gpu = find_gpu(query)
    assert (gpu.name, gpu.memory_bytes) == (name, gib * GIB)


def test_unknown_gpu_says_where_the_known_names_are():
    with pytest.raises(HfmemError, match="unknown GPU 'Voodoo 2'") as caught:
        find_gpu("Voodoo 2")
    assert caught.value.hint == "gpus"  # the command line: `hfmem gpus` lists them, or --gpu-memory


def test_a_near_miss_gets_did_you_mean():
    with pytest.raises(HfmemError, match="did you mean RTX-4090"):
        find_gpu("RTX 409O")


@pytest.mark.parametrize(("query", "variants"), [("A100", "A100-80GB (80 GiB), A100-40GB (40 GiB)"),
                                                  ("V100", "V100-32GB (32 GiB), V100-16GB (16 GiB)")])
def test_a_name_with_several_sizes_is_an_error_naming_them(query, variants):
    with pytest.raises(HfmemError, match=rf"{query}' matches several: {re.escape(variants)}; name one"):
        find_gpu(query)


def test_every_spelling_is_unambiguous():
    spellings = sum(1 + len(aliases) for _, aliases in _CATALOGUE.values())
    assert len(_INDEX) == spellings  # no two spellings normalise to the same key
    assert all(find_gpu(g.name) == g for g in known_gpus())
