"""PEFT adapter repos (adapter_config.json + adapter_model.safetensors): what the adapter is and which base model it
needs (pure; the resolvers read the files).

Keys as PEFT's LoraConfig saves them (peft/tuners/lora/config.py): base_model_name_or_path, revision, peft_type,
r, lora_alpha, target_modules (a list of names, or one regex string), modules_to_save.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .errors import ConfigError, UnsupportedModel
from .header import Header
from .untrusted import decode_json, one_line

if TYPE_CHECKING:
    from .snapshot import Snapshot

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
LORA_TYPES = {"LORA", "ADALORA"}


def is_adapter_repo(names: set[str]) -> bool:
    """An adapter repo: adapter_config.json, and no full checkpoint beside it (config.json and other safetensors)."""
    checkpoint = "config.json" in names and any(n.endswith(".safetensors") and n != ADAPTER_WEIGHTS for n in names)
    return ADAPTER_CONFIG in names and not checkpoint


@dataclass(frozen=True)
class Adapter:
    """A LoRA adapter and its base model. `target_modules` is PEFT's: names, or one regex string."""

    base_model: str  # the Hub repo id of base_model_name_or_path
    base_revision: str | None
    rank: int
    alpha: float
    target_modules: tuple[str, ...] | str
    modules_to_save: tuple[str, ...]
    parameters: int  # exact: every element of adapter_model.safetensors
    weights_bytes: int  # as stored

    def to_dict(self) -> dict[str, object]:
        """CONTRACT.md's `adapter` object, plus weights_bytes."""
        targets = self.target_modules
        return {"base_model": self.base_model, "rank": self.rank, "alpha": self.alpha,
                "target_modules": targets if isinstance(targets, str) else list(targets),
                "parameters": self.parameters, "modules_to_save": list(self.modules_to_save),
                "weights_bytes": self.weights_bytes}  # fmt: skip


def read_adapter(raw_config: bytes, header: Header, where: str, repo_id: str | None) -> Adapter:
    """The adapter that adapter_config.json (`raw_config`) and its weights' header describe. The base must be a Hub
    repo id other than the adapter's own (`repo_id`): a local path, a malformed or self-referring name is a
    ConfigError; an adapter other than LoRA is UnsupportedModel."""
    config = decode_json(raw_config, f"{where}: {ADAPTER_CONFIG}", ConfigError)
    if not isinstance(config, dict):
        raise ConfigError(f"{where}: {ADAPTER_CONFIG} is not a JSON object")
    kind = config.get("peft_type", "LORA")
    if kind not in LORA_TYPES:
        raise UnsupportedModel(f"{where}: a {one_line(str(kind))[:40]} adapter; hfmem sizes LoRA adapters only")
    base = config.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{where}: {ADAPTER_CONFIG} names no base_model_name_or_path")
    shown = one_line(base)[:100]
    try:
        validate_repo_id(base)
        if base.startswith(("/", ".", "~")):
            raise HFValidationError(base)
    except HFValidationError:
        raise ConfigError(
            f"{where}: the adapter's base model '{shown}' is not a Hub repo id (a local path on the machine that "
            "trained it?): hfmem resolves bases on the Hub"
        ) from None
    if base == repo_id:
        raise ConfigError(f"{where}: the adapter names itself as its base model")
    revision = config.get("revision")
    r, alpha = config.get("r"), config.get("lora_alpha", 8)
    if type(r) is not int or r < 1 or not isinstance(alpha, (int, float)) or isinstance(alpha, bool):
        raise ConfigError(f"{where}: {ADAPTER_CONFIG} has no valid r and lora_alpha")
    return Adapter(
        base_model=base,
        base_revision=revision if isinstance(revision, str) and revision else None,
        rank=r,
        alpha=alpha,
        target_modules=_names(config.get("target_modules"), where, regex=True),
        modules_to_save=_names(config.get("modules_to_save"), where),  # type: ignore[arg-type]
        parameters=sum(t.numel * t.count for t in header.tensors),
        weights_bytes=header.data_bytes,
    )


def _names(value: object, where: str, regex: bool = False) -> tuple[str, ...] | str:
    if value is None:
        return ()
    if regex and isinstance(value, str):
        return ("all-linear",) if value.lower() == "all-linear" else value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: {ADAPTER_CONFIG} has target_modules or modules_to_save that are not module names")


def adapter_snapshot(raw_config: bytes, header: Header, where: str, repo: Snapshot) -> Snapshot:
    """An adapter repo as a source answers it, before its base model is resolved (hfmem.sources): `repo` (its
    identity and files) with adapter_config.json as its config, the adapter's header as its headers, and the adapter
    they describe."""
    adapter = read_adapter(raw_config, header, where, repo.repo_id)
    config = decode_json(raw_config, f"{where}: {ADAPTER_CONFIG}", ConfigError)  # an object: read_adapter checked
    return replace(repo, config=config, headers={ADAPTER_WEIGHTS: header}, adapter=adapter)
