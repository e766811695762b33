"""Bytes: weights per tensor class, KV cache per token and in total, and the memory footprint.

KV cache per token per layer (Pope et al. 2022, arXiv 2211.05102; scaling-book "inference"):
GQA/MHA/MQA keep a key and a value per KV head, 2 H_kv d values; MLA keeps one compressed latent
and the decoupled RoPE key, r_kv + d_rope values (DeepSeek-V2, arXiv 2405.04434, Sec. 2.1);
DeepSeek-V3.2's indexer adds its own key cache (d_index values and one fp32 scale). Local layers
keep at most their window (plus sink tokens) of tokens.
"""
from . import dtypes
from .mathops import minimum
from .params import count_params


def weight_bytes(model):
    """Bytes of all weights at their dtypes: routed experts at `experts`, the rest at `weights` [B].

    Includes the embedding table (resident in memory though a step reads only a few rows).
    """
    counts = count_params(model)
    return counts.non_expert * dtypes.bytes_per_value(model.dtypes["weights"]) \
        + counts.routed_experts * dtypes.bytes_per_value(model.dtypes["experts"])


def kv_bytes_per_token_layer(model):
    """KV-cache bytes one token adds to one layer [B/token].

    .. math:: 2 H_{kv} d \\, b_{kv} \\text{ (GQA)}, \\quad (r_{kv} + d_{rope}) b_{kv} \\text{ (MLA)}

    An fp8 MLA cache keeps the latent in fp8 with one fp32 scale per 128 values and the RoPE part
    in bf16 (FlashMLA's fp8 KV format, deepseek-ai/FlashMLA README: 512 + 4 x 4 + 64 x 2 = 656 B a
    token for DeepSeek-V3.2).
    """
    a = model.attention
    per_value = dtypes.bytes_per_value(model.dtypes["kv_cache"])
    if a.kind == "mla" and str(model.dtypes["kv_cache"]).startswith("fp8"):
        cached = a.kv_lora_rank * (per_value + 4 / 128) + a.qk_rope_head_dim * 2
    elif a.kind == "mla":
        cached = (a.kv_lora_rank + a.qk_rope_head_dim) * per_value
    else:
        cached = 2 * model.num_kv_heads * model.head_dim * per_value
    return cached + index_bytes_per_token_layer(model)


def index_bytes_per_token_layer(model):
    """Indexer key-cache bytes per token per layer (sparse attention): d_index b_index + 4 [B/token]."""
    sparse = model.attention.sparse
    if sparse is None:
        return 0
    return sparse.index_head_dim * dtypes.bytes_per_value(sparse.index_dtype) + 4


def cached_tokens(model, context, local):
    """Tokens of one sequence a layer keeps at `context` tokens: all (global) or the window (local).

    A chunked layer (Llama 4: attention inside fixed chunks) is taken at its worst case, a full
    chunk: on average it holds and reads half of one.
    """
    a = model.attention
    if not local:
        return context
    return minimum(context, a.sliding_window + a.sink_tokens)


def kv_bytes_per_token(model):
    """KV bytes per token summed over all layers, ignoring windows (the full-context rate) [B/token]."""
    return model.num_layers * kv_bytes_per_token_layer(model)


def kv_cache_bytes(model, batch, context):
    """KV-cache bytes of `batch` sequences of `context` tokens, windows applied [B].

    .. math:: B \\sum_{layers} \\min(C, W_l) \\, b_{kv,layer}
    """
    per_layer = kv_bytes_per_token_layer(model)
    total = 0
    for (local, _), layers in model.layer_groups.items():
        total = total + layers * cached_tokens(model, context, local) * per_layer
    return batch * total


def activation_bytes(model, tokens, logit_rows):
    """Peak transient activation memory of a forward pass over `tokens` tokens [B].

    The largest live tensors: the FFN's gate/up output (2 I values) and the fp32 logits of the
    LM head, plus the residual stream; real engines reuse buffers, so this is an estimate.
    """
    a = dtypes.bytes_per_value(model.dtypes["activations"])
    inter = model.intermediate_size
    if model.moe is not None:
        inter = max(inter, model.moe.experts_per_token * model.moe.expert_intermediate_size)
    return tokens * (2 * model.hidden_size * a + 2 * inter * a) + logit_rows * model.vocab_size * 4


def footprint(model, batch, context, tokens_in_flight=None):
    """Memory a deployment needs: weights + KV cache + activations [B] (dict of the three and total).

    `tokens_in_flight` is the tokens of one forward pass: `batch` in decode, batch x prompt in prefill.
    """
    weights = weight_bytes(model)
    kv = kv_cache_bytes(model, batch, context)
    act = activation_bytes(model, batch if tokens_in_flight is None else tokens_in_flight, batch)
    return {"weights": weights, "kv_cache": kv, "activations": act, "total": weights + kv + act}
