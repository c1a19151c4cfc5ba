"""Full fine-tuning: every parameter trained under the chosen recipe and optimizer, peak by phase."""

from __future__ import annotations

from .activations import runs_eager
from .facts import ModelFacts
from .phases import Phase, peak, peak_formula, step_activations, step_settings
from .results import Estimate, Formula
from .settings import Recipe, Settings
from .states import RECIPE_BYTES, Sharding, optimizer_state_bytes, step_temporary_bytes
from .vision import with_tower


def training_estimate(facts: ModelFacts, settings: Settings, seq_len: int, warnings: list[str]) -> Estimate:
    weight_b, grad_b, state_b, c = RECIPE_BYTES[settings.recipe]
    shard = Sharding.of(settings)
    params = facts.trainable_parameters
    if facts.spec.quantization is not None:
        warnings.append(
            f"full training of a {facts.spec.quantization.method}-quantised checkpoint: parameters counted as stored"
        )
    key = ("optimizer", settings.optimizer, state_b)
    if key not in facts.sums:  # one pass over the tensors per optimizer, however many settings the tables try
        facts.sums[key] = optimizer_state_bytes(settings.optimizer, state_b, params, facts.float_shapes)
    optimizer, optimizer_expr = facts.sums[key]
    temporary, temporary_expr = step_temporary_bytes(
        settings.optimizer, state_b, params, facts.largest_tensor_parameters
    )
    weights, grads = shard.split(params * weight_b, 3), shard.split(params * grad_b, 2)
    optimizer, temporary = shard.split(optimizer, 1), shard.split(temporary, 1)
    # torch.autocast caches 16-bit copies of the linear weights; autograd keeps them from forward to backward.
    linear_params = facts.linear_parameters
    autocast = shard.split(2 * linear_params, 3) if settings.recipe is Recipe.MIXED else 0
    gathered, grad_unit = 0, 0
    if shard.zero == 3 and shard.gpus > 1:  # the unit being computed (and the prefetched one) gathered in full
        gathered, grad_unit = 2 * facts.largest_layer_parameters * c, facts.largest_layer_parameters * grad_b
    residual = 4 if settings.recipe is Recipe.MIXED else c
    steps = step_activations(
        facts.dims,
        c=c,
        residual=residual,
        batch_size=settings.batch_size,
        seq_len=seq_len,
        trainable=True,
        eager=runs_eager(facts.dims, settings.attention),
        checkpointing=settings.grad_checkpointing,
        padded=settings.padding == "padded",
        autocast=settings.recipe is Recipe.MIXED,
        keep_outputs=settings.keep_outputs,
        decoder_len=settings.decoder_tokens(seq_len, facts.dims.encoder_decoder),
    )
    steps = with_tower(steps, facts, settings, c=c, residual=residual, seq_len=seq_len, trainable=True)
    forward_weights = weights + autocast + gathered

    def phase(name: str, w: int, g: int, o: int, a: int) -> Phase:
        return Phase(name, {"weights": w, "gradients": g, "optimizer": o, "activations": a})

    phases = [
        phase("forward", forward_weights, 0, optimizer, steps.saved + steps.logits_forward),
        phase("loss backward", forward_weights, 0, optimizer, steps.saved + steps.logits_backward),
        phase("backward end", weights + gathered, grads + grad_unit, optimizer,
              steps.layer + steps.working + steps.first_in),  # fmt: skip
        phase("optimizer step", weights, grads, optimizer + temporary, 0),
    ]
    if settings.grad_checkpointing:
        phases.insert(
            2, phase("recompute", forward_weights, grad_unit, optimizer, steps.saved + steps.layer + steps.working)
        )
    top = peak(phases)
    where = shard.describe()
    formulas = (
        Formula(
            "weights",
            f"params x {weight_b} B ({settings.recipe.value}), {where}",
            {"parameters": params, "bytes_per_param": weight_b},
            weights,
            exact=not facts.synthetic,
        ),
        Formula(
            "autocast copies",
            "16-bit copies of linear weights kept from forward to backward (mixed only)",
            {"linear_parameters": linear_params},
            autocast,
            exact=False,
        ),
        Formula(
            "gradients",
            f"params x {grad_b} B, {where}",
            {"parameters": params, "bytes_per_param": grad_b},
            grads,
            exact=not facts.synthetic,
        ),
        Formula(
            "optimizer",
            f"{settings.optimizer.value}: {optimizer_expr}, {where}",
            {"parameters": params, "state_bytes": state_b},
            optimizer,
            exact=not facts.synthetic,
        ),
        Formula("optimizer step", temporary_expr, {"parameters": params}, temporary, exact=False),
        *steps.formulas,
        peak_formula(phases),
    )
    components = dict(top.parts) | {"overhead": settings.overhead_bytes}
    return Estimate(
        components=components,
        settings={
            "batch_size": settings.batch_size,
            "seq_len": seq_len,
            "optimizer": settings.optimizer.value,
            "recipe": settings.recipe.value,
            **step_settings(facts, settings, seq_len, shard.zero, top.name),
        },
        formulas=formulas,
    )
