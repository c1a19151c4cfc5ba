"""The GPU catalogue and its forgiving lookup."""

from __future__ import annotations

import pytest

from hfmem.errors import HfmemError
from hfmem.gpus import _CATALOGUE, _INDEX, GIB, find_gpu, known_gpus


@pytest.mark.parametrize(
    ("query", "name", "gib"),
    [
        ("H100", "H100", 80),
        ("h100 nvl", "H100-NVL", 94),
        ("H200", "H200", 141),
        ("A100", "A100-80GB", 80),
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


def test_unknown_gpu_lists_the_known_names():
    with pytest.raises(HfmemError) as error:
        find_gpu("Voodoo 2")
    message = str(error.value)
    assert "Voodoo 2" in message and "H100" in message and "--gpu-memory" in message


def test_every_spelling_is_unambiguous():
    spellings = sum(1 + len(aliases) for _, aliases in _CATALOGUE.values())
    assert len(_INDEX) == spellings  # no two spellings normalise to the same key
    assert all(find_gpu(g.name) == g for g in known_gpus())
