"""--explain: every formula with its inputs, and the popular rules of thumb next to hfmem's own figure."""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import ModelSpec
from .estimator import estimate_facts, sequence_len
from .facts import ModelFacts, facts_of
from .results import Formula
from .settings import Mode, Settings


@dataclass(frozen=True)
class Rule:
    name: str
    source: str
    mode: Mode
    rule_bytes: int
    hfmem_bytes: int

    def to_dict(self) -> dict[str, object]:
        return {"mode": self.mode, "rule": self.name, "source": self.source, "rule_bytes": self.rule_bytes,
                "hfmem_bytes": self.hfmem_bytes}  # fmt: skip


@dataclass(frozen=True)
class Explanation:
    """--explain: per mode the formulas behind each component, and the rules of thumb beside hfmem's figures."""

    formulas: dict[Mode, tuple[Formula, ...]]
    rules: tuple[Rule, ...]

    def to_list(self) -> list[dict[str, object]]:
        """CONTRACT.md's `explain` rows: mode, component, formula, inputs, bytes."""
        return [
            {"mode": mode, "component": f.name, "formula": f.expression, "inputs": dict(f.inputs),
             "bytes": f.result_bytes, "exact": f.exact}  # fmt: skip
            for mode, formulas in self.formulas.items()
            for f in formulas
        ]


def explanation(model: ModelSpec | ModelFacts, settings: Settings) -> Explanation:
    facts = facts_of(model)
    return Explanation(explain(facts, settings), tuple(rules_of_thumb(facts, settings)))


def explain(model: ModelSpec | ModelFacts, settings: Settings) -> dict[Mode, tuple[Formula, ...]]:
    """Per mode, the formulas behind each component, with inputs and results."""
    facts = facts_of(model)
    report = estimate_facts(facts, settings)
    return {mode: est.formulas for mode, est in report.by_mode().items()}


def rules_of_thumb(model: ModelSpec | ModelFacts, settings: Settings) -> list[Rule]:
    """memory-model.md A.5's shortcuts, computed for this model, beside hfmem's figure for the same mode."""
    facts = facts_of(model)
    report = estimate_facts(facts, settings)
    params, weights = facts.spec.parameters.total, facts.spec.files.weights_bytes
    dims, b = facts.dims, settings.batch_size
    s = sequence_len(facts, settings, [])  # images included
    trainable = report.lora.trainable_parameters
    inference, training, lora = (report.inference.total_bytes, report.training.total_bytes, report.lora.total_bytes)
    kv = report.inference.components["kv_cache"]
    return [
        Rule(
            "weights x 1.2",
            "EleutherAI Transformer Math 101; accelerate docs (+20 %)",
            Mode.INFERENCE,
            int(weights * 1.2),
            inference,
        ),
        Rule(
            "params x 2 B x 1.25",
            "params_B x 2 x 1.25 GB (common GPU-count calculators)",
            Mode.INFERENCE,
            int(params * 2 * 1.25),
            inference,
        ),
        Rule(
            "naive KV: b x s x h x L x 2",
            "counts K or V only, and every head (no GQA/MLA)",
            Mode.INFERENCE,
            b * s * dims.hidden * dims.decoder_layers * 2,
            kv,
        ),
        Rule(
            "model size x 4",
            "can-it-run-llm 'Full training Adam' (4 x weights in their dtype)",
            Mode.TRAINING,
            weights * 4,
            training,
        ),
        Rule(
            "16 B/param",
            "ZeRO paper: fp16 params + grads, fp32 master + m + v; no activations",
            Mode.TRAINING,
            params * 16,
            training,
        ),
        Rule(
            "18 B/param x 1.25",
            "params_B x 18 x 1.25 GB (HF model-memory-anatomy 18 B + 25 % headroom)",
            Mode.TRAINING,
            int(params * 18 * 1.25),
            training,
        ),
        Rule(
            "22 B/param + 2 x tokens x h x L",
            "fp32 + fp16 copies (6) + fp32 grads (4) + Adam (12), checkpointed activations",
            Mode.TRAINING,
            params * 22 + 2 * b * s * dims.hidden * dims.layers,
            training,
        ),
        Rule(
            "frozen x 2 x 1.25 + trainable x 18 x 1.25",
            "LoRA variant of the 18 B/param rule",
            Mode.LORA,
            int(params * 2 * 1.25 + trainable * 18 * 1.25),
            lora,
        ),
    ]
