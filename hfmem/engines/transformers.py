"""transformers v5.24.0 (`model.generate` with its default DynamicCache): what the KV cache holds at the end of
the prefill, the inference column's default rules (docs/engines.md §3; TF = transformers v5.24.0, file:line below
are TF's, under src/transformers/).

- Full-attention layers (`DynamicLayer`) keep every token: K and V of [batch, kv_heads, seq, head_dim], grown by
  torch.cat (cache_utils.py:113-137).
- Sliding-window and chunked layers (`DynamicSlidingWindowLayer`) keep the whole prefill until the first decode
  step: `update` stores `full_key_states[:, :, -sliding_window + 1:, :]`, a view that holds the storage of the
  torch.cat of every prefill token (cache_utils.py:241-249); the next update's torch.cat replaces it by a tensor of
  `sliding_window` tokens. generate() uses this dynamic cache even where a model's generation config asks for
  "hybrid" (generation/utils.py:2121-2125).
- MLA (DeepSeek-V2/V3, Kimi, GLM-4-MoE-Lite, ...) caches the compressed latent, one "head": kv_lora_rank as
  keys and qk_rope_head_dim as values, `cache.update(kv_nope, k_rot, ...)` "while latent KV is still compressed"
  (models/deepseek_v3/modeling_deepseek_v3.py:445-460). Since v5.15.0; v4.57.6 to v5.14 cached the decompressed
  per-head K (heads x (qk_nope + qk_rope)) and V (heads x v_head_dim) (v4.57.6 modeling_deepseek_v3.py:404-421).
"""

from __future__ import annotations

from ..memory.facts import ModelFacts
from ..memory.kv import kv_cache as kv_formula
from ..memory.kv import kv_element_bytes
from ..memory.results import Formula
from ..memory.settings import Settings

VERSION = "5.24.0"


def kv_cache(facts: ModelFacts, settings: Settings, seq_len: int, warnings: list[str]) -> tuple[int, Formula]:
    """KV bytes per GPU at the end of a prefill of seq_len tokens: every layer, sliding ones too, holds them all."""
    kinds = facts.dims.layer_kinds[: facts.dims.decoder_layers]
    self_len = settings.decoder_tokens(seq_len, facts.dims.encoder_decoder)
    rule = "every layer keeps the prefill (a sliding layer's window is a view of it, cache_utils.py:241-249)"
    return kv_formula(facts, settings, seq_len, warnings, element=kv_element_bytes(facts, settings),
                      layer_tokens=[0 if kind == "recurrent" else self_len for kind in kinds], rule=rule)
