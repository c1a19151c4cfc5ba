"""estimate(): the three modes for one model and one set of settings."""

from __future__ import annotations

from dataclasses import replace

from ..engines import llamacpp
from ..spec import ModelSpec
from .facts import ModelFacts, analyse
from .inference import inference_estimate
from .lora import lora_estimate
from .results import Estimate, Formula, MemoryReport
from .settings import Mode, Settings, resolve_seq_len
from .training import training_estimate
from .vision import image_inputs, image_tokens


def estimate(spec: ModelSpec, settings: Settings) -> MemoryReport:
    """Predicted peak GPU memory for inference, full training and LoRA (bytes, per GPU)."""
    return estimate_facts(analyse(spec), settings)


def estimate_facts(facts: ModelFacts, settings: Settings) -> MemoryReport:
    """estimate() for an already analysed model (the tables call this many times)."""
    warnings = list(facts.warnings)
    seq_len = sequence_len(facts, settings, warnings)
    if facts.dims.max_positions and seq_len > facts.dims.max_positions:
        warnings.append(f"seq_len {seq_len} exceeds the model's context of {facts.dims.max_positions} tokens")
    inference = inference_estimate(facts, settings, seq_len, warnings)
    if facts.spec.gguf is not None:
        cpu = llamacpp.cpu_estimate(facts, settings)
    else:
        one_host = inference if settings.gpus == 1 else mode_estimate(facts, replace(settings, gpus=1), Mode.INFERENCE)
        cpu = cpu_estimate(facts, one_host)
    training = training_estimate(facts, settings, seq_len, warnings)
    lora = lora_estimate(facts, settings, seq_len, warnings)
    images = image_inputs(facts, settings)
    if images is not None:  # seq_len is the whole sequence; say what the images put in it
        extra = {"images": images.images, "image_tokens": images.tokens}
        inference = replace(inference, settings=inference.settings | extra)
        training = replace(training, settings=training.settings | extra)
        lora = replace(lora, settings=lora.settings | extra)
    return MemoryReport(
        inference=inference,
        training=training,
        lora=lora,
        cpu=cpu,
        warnings=tuple(dict.fromkeys(warnings)),
        facts=facts,
    )


def cpu_estimate(facts: ModelFacts, inference: Estimate) -> Estimate:
    """Host RAM for inference on the CPU: the one-GPU estimate without the CUDA overhead. Safetensors are memory-mapped
    into the model; a pickle checkpoint is read whole by torch.load before its tensors are assigned, so loading
    one needs its bytes a second time (an upper bound for a sharded .bin: only its largest shard is in flight)."""
    components = {name: size for name, size in inference.components.items() if name != "overhead"}
    pickle_only = not facts.spec.parameters.exact and "pytorch" in facts.spec.files.formats
    formulas = tuple(f for f in inference.formulas if f.name in components)
    if pickle_only:
        copy = facts.spec.files.weights_bytes
        components["pickle_load_copy"] = copy
        formulas += (
            Formula("pickle_load_copy", "torch.load holds the .bin state dict while it is copied", {}, copy, False),
        )
    return Estimate(components, {"dtype": inference.settings["dtype"], "pickle_only": pickle_only}, formulas)


def mode_estimate(facts: ModelFacts, settings: Settings, mode: Mode) -> Estimate:
    """One mode only (cheaper than estimate_facts when a table needs a single column)."""
    build = {"inference": inference_estimate, "training": training_estimate, "lora": lora_estimate}[mode]
    return build(facts, settings, sequence_len(facts, settings, []), [])


def sequence_len(facts: ModelFacts, settings: Settings, warnings: list[str]) -> int:
    """Tokens per sequence: --seq-len text tokens + the image tokens of --images. Without --seq-len the sequence
    is the default length, images included (with at least one text token)."""
    images = image_tokens(facts, settings, warnings)
    text = resolve_seq_len(settings, facts.dims.max_positions)
    if settings.seq_len is None:
        text = max(1, text - images)
    return text + images
