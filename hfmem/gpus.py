"""GPU catalogue: name -> memory, and a forgiving lookup (case, spaces, dashes and vendor words ignored).

Sizes are the vendor's nominal capacity read as GiB (2^30 bytes): HBM and GDDR capacities are binary-sized
(an "80GB" H100 or A100 has 81,920 MiB of DRAM). nvidia-smi shows a little less (ECC, firmware reserve), and the
memory model leaves that to its usable fraction (0.9 by default).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from .errors import HfmemError

GIB = 2**30


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_bytes: int


# Canonical name -> (nominal GiB, other spellings). Sources: NVIDIA and AMD product data sheets.
_CATALOGUE: dict[str, tuple[float, tuple[str, ...]]] = {
    "B200": (180, ()),  # DGX B200: 1,440 GB over 8 GPUs
    "H200": (141, ("H200-SXM", "H200-NVL")),
    "H100": (80, ("H100-80GB",)),
    "H100-SXM": (80, ("H100-SXM5",)),
    "H100-PCIe": (80, ()),
    "H100-NVL": (94, ("H100-94GB",)),
    "GH200": (96, ()),
    "A100-80GB": (80, ("A100-80G", "A100-SXM4-80GB", "A100-PCIe-80GB")),
    "A100-40GB": (40, ("A100-40G", "A100-SXM4-40GB", "A100-PCIe-40GB")),
    "L40S": (48, ()),
    "L40": (48, ()),
    "L4": (24, ()),
    "A10G": (24, ()),
    "A10": (24, ()),
    "A40": (48, ()),
    "A6000": (48, ("RTX-A6000",)),
    "RTX-6000-Ada": (48, ()),
    "T4": (16, ()),
    "V100-32GB": (32, ()),
    "V100-16GB": (16, ()),
    "RTX-5090": (32, ("5090",)),
    "RTX-4090": (24, ("4090",)),
    "RTX-4080": (16, ("4080",)),
    "RTX-3090": (24, ("3090",)),
    "RTX-3080": (10, ("3080",)),
    "MI300X": (192, ()),
    "MI325X": (256, ()),
    "MI250X": (128, ()),
}

_VENDOR_WORDS = ("nvidia", "geforce", "tesla", "amd", "instinct", "radeon")


def _key(name: str) -> str:
    """Lower case, alphanumerics only, vendor words and a trailing 'gb' dropped: 'NVIDIA A100 40GB' -> 'a10040'."""
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    for word in _VENDOR_WORDS:
        key = key.removeprefix(word)
    return re.sub(r"(?<=\d)gb$", "", key)


_INDEX: dict[str, str] = {
    _key(alias): canonical for canonical, (_, aliases) in _CATALOGUE.items() for alias in (canonical, *aliases)
}


def known_gpus() -> tuple[Gpu, ...]:
    """Every catalogue entry, largest first."""
    gpus = (Gpu(name, int(gib * GIB)) for name, (gib, _) in _CATALOGUE.items())
    return tuple(sorted(gpus, key=lambda g: (-g.memory_bytes, g.name)))


def aliases(name: str) -> tuple[str, ...]:
    """The other spellings of a catalogue entry."""
    return _CATALOGUE[name][1]


def find_gpu(name: str) -> Gpu:
    """The catalogue entry for `name`. A name that several entries start with (A100: 40 or 80 GB) is an error
    naming them, and an unknown one an error with the closest names."""
    key = _key(name)
    canonical = _INDEX.get(key)
    if canonical is not None:
        return Gpu(canonical, int(_CATALOGUE[canonical][0] * GIB))
    variants = sorted({c for k, c in _INDEX.items() if key and k.startswith(key)}, key=lambda c: -_CATALOGUE[c][0])
    if len(variants) > 1:
        sizes = ", ".join(f"{c} ({_CATALOGUE[c][0]:g} GiB)" for c in variants)
        raise HfmemError(f"GPU {name!r} matches several: {sizes}; name one")
    close = variants or [_INDEX[k] for k in difflib.get_close_matches(key, _INDEX, n=3, cutoff=0.6)]
    guess = f"; did you mean {' or '.join(dict.fromkeys(close))}?" if close else ""
    raise HfmemError(f"unknown GPU {name!r}{guess}", hint="gpus")
