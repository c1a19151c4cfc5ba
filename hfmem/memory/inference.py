"""Inference (generation): weights + KV cache + the prefill's activation peak + overhead."""

from __future__ import annotations

from .. import engines
from ..engines import llamacpp
from . import activations as act
from .facts import ModelFacts
from .results import Estimate, Formula
from .settings import Settings
from .vision import inference_activations
from .state import mixer_prefill
from .weights import FLOAT_BYTES, compute_dtype, inference_weights

# PeftModel.from_pretrained upcasts a float16/bfloat16 adapter to float32 (autocast_adapter_dtype=True, PEFT's
# default; peft.tuners.tuners_utils.cast_adapter_dtype): an unmerged adapter holds 4 B per parameter.
ADAPTER_LOAD_BYTES = 4


def inference_estimate(facts: ModelFacts, settings: Settings, seq_len: int, warnings: list[str]) -> Estimate:
    """Under transformers' rules, the KV cache under settings.engine's; a GGUF model under llama.cpp's (its context
    defaults to the model's)."""
    if facts.spec.gguf is not None:
        if settings.engine != "transformers":
            warnings.append(f"--engine {settings.engine} does not apply to a GGUF model: llama.cpp's rules are used")
        return llamacpp.inference_estimate(facts, settings, warnings)
    if (settings.cache_type_k, settings.cache_type_v, settings.n_gpu_layers) != ("f16", "f16", None):
        warnings.append("--cache-type-k/-v and --n-gpu-layers apply to GGUF models (llama.cpp) only")
    dims, gpus, b = facts.dims, settings.gpus, settings.batch_size
    weights = inference_weights(facts, settings, warnings)
    weights_bytes = -(-weights.total_bytes // gpus)  # split across GPUs (tensor-parallel style)
    kv_bytes, kv_formula = engines.kv_cache(facts, settings, seq_len, warnings)
    dtype = compute_dtype(facts, settings)
    c = FLOAT_BYTES[dtype]
    eager, padded = act.runs_eager(dims, settings.attention), settings.padding == "padded"
    if dims.eager_only and settings.attention != "eager":
        warnings.append(f"{facts.model_type} adds a position bias to its attention scores: transformers materialises "
                        "them (counted as --attention eager)")
    layer = 0
    if dims.hidden:
        peak = act.prefill_layer_peak(dims, c, kv_len=seq_len, padded=padded, eager=eager)
        layer = b * seq_len * max(peak, mixer_prefill(dims, c))  # a recurrent layer's mixer may be the widest
        layer += b * seq_len * seq_len * act.mask_bytes(c, padded=padded, eager=eager)
    all_positions = settings.logits == "all"
    # a forward's logits cover the decoder's positions
    logit_positions = settings.decoder_tokens(seq_len, dims.encoder_decoder) if all_positions else 1
    logits = b * logit_positions * dims.vocab * act.logits_inference(c, all_positions) if dims.has_lm_logits else 0
    # bitsandbytes dequantises one linear weight at a time to compute dtype (4-bit) or holds int8 activations
    # and an int32 accumulator (LLM.int8) for the largest linear.
    largest = facts.largest_linear
    quant = 0
    if weights.linear_bytes and largest is not None:
        quant = c * largest.numel if settings.dtype == "int4" else b * seq_len * facts.widest_int8_row
    # The vision tower runs (and is done) before the prefill: the larger of the two is the peak.
    vision, vision_formula = inference_activations(facts, settings, c, seq_len)
    activations = max(layer, logits, vision) + quant
    formulas: tuple[Formula, ...] = (
        Formula(
            weights.formula.name,
            weights.formula.expression + (f", / {gpus} GPUs" if gpus > 1 else ""),
            weights.formula.inputs,
            weights_bytes,
            weights.formula.exact,
        ),
        kv_formula,
        Formula(
            "prefill layer peak",
            "b x s x (residual + normed input + widest of norm / attention / MLP "
            + ("/ recurrent mixer " if dims.recurrent else "")
            + "intermediates)" + (" + b x heads x s^2 x (2c + 4) eager scores" if eager else "")
            + (" + b x s^2 mask" if eager or padded else ""),
            {"batch_size": b, "seq_len": seq_len, "compute_bytes": c, "padding": settings.padding},
            layer,
            exact=False,
        ),
        Formula(
            "logits",
            "b x s x vocab x c (a plain forward keeps them in the compute dtype)" if all_positions
            else "b x 1 x vocab x (c + 4) (generate's fp32 copy of the last position)",
            {"batch_size": b, "positions": logit_positions, "vocab": dims.vocab},
            logits,
            exact=False,
        ),
        Formula(
            "quantised matmul",
            "4-bit: c x largest linear dequantised; int8: b x s x widest (in + 4 x out)",
            {"largest_linear": largest.numel if largest else 0, "widest_int8_row": facts.widest_int8_row},
            quant,
            exact=False,
        ),
        *((vision_formula,) if vision_formula else ()),
        Formula(
            "activations",
            "max(prefill layer peak, logits" + (", vision tower" if vision_formula else "") + ") + quantised matmul",
            {},
            activations,
            exact=False,
        ),
        Formula("overhead", "CUDA context + library workspaces (setting)", {}, settings.overhead_bytes, exact=False),
    )
    adapter, adapter_bytes = facts.spec.adapter, 0
    if adapter is not None:
        if not settings.adapter_merged:
            adapter_bytes = -(-ADAPTER_LOAD_BYTES * adapter.parameters // gpus)
        formulas += (Formula("adapters", "adapter parameters x 4 B, kept apart (PEFT's default); 0 when merged",
                             {"parameters": adapter.parameters}, adapter_bytes, exact=True),)  # fmt: skip
    return Estimate(
        components={
            "weights": weights_bytes,
            **({"adapters": adapter_bytes} if adapter is not None else {}),
            "kv_cache": kv_bytes,
            "activations": activations,
            "overhead": settings.overhead_bytes,
        },
        settings={
            "engine": settings.engine,  # whose KV rules (CONTRACT); vllm and sglang start-up plans are `hfmem serve`'s
            "engine_version": engines.VERSIONS[settings.engine],
            "batch_size": b,
            "seq_len": seq_len,
            "dtype": settings.dtype if settings.dtype != "auto" else (facts.spec.dtype or dtype),
            "kv_dtype": settings.kv_dtype if settings.kv_dtype != "auto" else dtype,
            "attention": settings.attention,
            "attention_used": "eager" if eager else settings.attention,
            "padding": settings.padding,
            **({"decoder_len": settings.decoder_tokens(seq_len, dims.encoder_decoder)} if dims.encoder_decoder else {}),
            "logits": settings.logits,
            "gpus": gpus,
            **({"adapter": "merged" if settings.adapter_merged else "separate"} if adapter is not None else {}),
        },
        formulas=formulas,
    )
