"""FLOPs and bytes of every operator of a forward pass, for decode and for prefill.

A forward pass is a sequence of operators; each moves bytes (weights at their dtype, activations
in and out, KV cache) and does FLOPs (2 per multiply-add). Identical layers are computed once and
counted `layers` times. Quantities broadcast: batch, context and prompt may be floats, numpy arrays
or sympy symbols.

A weight GEMM over M tokens with K inputs and N outputs:

.. math:: F = 2 M K N, \\qquad Q = K N b_w + M (K + N) b_a

Attention of one query token over T cached tokens (GQA): F = 4 H d T (QK^T and PV), bytes = the
KV cache it reads, T b_kv,layer. MLA in decode runs "absorbed" (DeepSeek-V2, arXiv 2405.04434,
App. C): attention over the r_kv + d_rope latent, F = 2 H (2 r_kv + d_rope) T. MoE layers read
the weights of the distinct experts the batch touches, E (1 - (1 - k/E)^B) under uniform routing.
Elementwise work (fused residual-add + RMSNorm, SwiGLU) is memory traffic only.
"""
from dataclasses import dataclass, replace

from . import dtypes
from .errors import RooflineError
from .mathops import floor, maximum, minimum
from .memory import cached_tokens, index_bytes_per_token_layer, kv_bytes_per_token_layer


@dataclass(frozen=True)
class Operator:
    """One operator: FLOPs and bytes per occurrence, the dtype whose peak bounds it, occurrences."""
    name: str
    flops: object      # [FLOP] float, array or sympy expression
    bytes: object      # [B]
    dtype: str         # compute dtype: its peak bounds the FLOPs
    count: int = 1     # layers it occurs in
    kind: str = "gemm"  # gemm | attention | elementwise
    group: str = ""    # which layers: "dense", "moe", "local dense", ... or "head"
    weights: object = 0       # weight values it reads
    dequantized: bool = False  # stored in a format its matmul does not run natively (weight-only)
    kv_bytes: object = 0      # attention: the part of `bytes` that is KV cache read and written [B]


def expected_experts(num_experts, experts_per_token, tokens):
    """Expected distinct experts `tokens` routed tokens touch, uniform top-k routing [1].

    .. math:: E \\left(1 - (1 - k/E)^{B}\\right)

    Each token picks k of E experts; an expert is missed by one token with probability 1 - k/E.
    """
    return num_experts * (1 - (1 - experts_per_token / num_experts) ** tokens)


def gemm(name, tokens, k, n, weight_bytes, act_bytes, dtype, count, group, weight_copies=1):
    """A weight GEMM of `tokens` rows, K -> N (`weight_copies` matrices read for it)."""
    return Operator(name, 2 * tokens * k * n, weight_copies * k * n * weight_bytes + tokens * (k + n) * act_bytes,
                    dtype, count, "gemm", group, weights=weight_copies * k * n)


def elementwise(name, bytes_moved, dtype, count, group):
    return Operator(name, 0 * bytes_moved, bytes_moved, dtype, count, "elementwise", group)


class _Shapes:
    """Per-model constants the operator builders share: dtypes in bytes and the GEMM dtypes."""

    def __init__(self, model, peaks):
        d = model.dtypes
        self.w = dtypes.bytes_per_value(d["weights"])
        self.e = dtypes.bytes_per_value(d["experts"])
        self.a = dtypes.bytes_per_value(d["activations"])
        self.gemm = dtypes.matmul_dtype(d["weights"], d["activations"], peaks)
        self.expert_gemm = dtypes.matmul_dtype(d["experts"], d["activations"], peaks)
        self.attn = dtypes.matmul_dtype(d["activations"], d["activations"], peaks)
        self.dequantized = dtypes.compute_class(d["weights"]) != self.gemm
        self.experts_dequantized = dtypes.compute_class(d["experts"]) != self.expert_gemm

    def mark(self, ops):
        """The operators with `dequantized` set on the GEMMs whose weights are weight-only quantized."""
        return [replace(op, dequantized=self.experts_dequantized if op.name.startswith("experts_")
                        else self.dequantized) if op.kind == "gemm" else op
                for op in ops]


def _group_name(local, moe, model):
    parts = []
    if model.attention.sliding_window is not None:
        parts.append("local" if local else "global")
    if model.moe is not None:
        parts.append("moe" if moe else "dense")
    return " ".join(parts) or "layer"


def _projections(model, s, tokens, count, group):
    """Attention input/output projections (QKV, MLA down/up projections, indexer, output)."""
    a, h, H = model.attention, model.hidden_size, model.num_heads
    ops = []
    if a.kind == "mla":
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        if a.q_lora_rank:
            ops.append(gemm("q_a", tokens, h, a.q_lora_rank, s.w, s.a, s.gemm, count, group))
            ops.append(gemm("q_b", tokens, a.q_lora_rank, H * qk, s.w, s.a, s.gemm, count, group))
        else:
            ops.append(gemm("q", tokens, h, H * qk, s.w, s.a, s.gemm, count, group))
        ops.append(gemm("kv_a", tokens, h, a.kv_lora_rank + a.qk_rope_head_dim, s.w, s.a, s.gemm, count, group))
        ops.append(gemm("kv_b", tokens, a.kv_lora_rank, H * (a.qk_nope_head_dim + a.v_head_dim), s.w, s.a,
                        s.gemm, count, group))
        out_in = H * a.v_head_dim
    else:
        qkv = (H + 2 * model.num_kv_heads) * model.head_dim
        ops.append(gemm("qkv", tokens, h, qkv, s.w, s.a, s.gemm, count, group))
        out_in = H * model.head_dim
    if a.sparse is not None:
        x = a.sparse
        ops.append(gemm("index_q", tokens, a.q_lora_rank or h, x.index_heads * x.index_head_dim, s.w, s.a,
                        s.gemm, count, group))
        ops.append(gemm("index_k_w", tokens, h, x.index_head_dim + x.index_heads, s.w, s.a, s.gemm, count, group))
    return ops, gemm("o_proj", tokens, out_in, h, s.w, s.a, s.gemm, count, group)


def _attention_core(model, s, queries, prefill):
    """FLOPs per (query, key) pair, bytes of the queries in and outputs out, KV bytes per token-layer.

    In prefill the KV of a prompt is counted written once and read once: it stays in cache across
    query tiles. A decode step reads each sequence's cache once.
    """
    a, H = model.attention, model.num_heads
    kv_layer = kv_bytes_per_token_layer(model)
    if a.kind == "mla" and not prefill:
        flops_per_pair = 2 * H * (2 * a.kv_lora_rank + a.qk_rope_head_dim)
        q_bytes = queries * H * (a.kv_lora_rank + a.qk_rope_head_dim + a.kv_lora_rank) * s.a
    elif a.kind == "mla":
        flops_per_pair = 2 * H * (a.qk_nope_head_dim + a.qk_rope_head_dim + a.v_head_dim)
        q_bytes = queries * H * (a.qk_nope_head_dim + a.qk_rope_head_dim + 2 * a.v_head_dim) * s.a
    else:
        flops_per_pair = 4 * H * model.head_dim
        q_bytes = queries * 2 * H * model.head_dim * s.a
    return flops_per_pair, q_bytes, kv_layer


def _ffn(model, s, tokens, moe, count, group):
    """FFN operators of one layer: dense SwiGLU/GeGLU, or router + routed and shared experts."""
    h, gated, a = model.hidden_size, model.ffn == "gated", s.a
    up = 2 if gated else 1
    if not moe:
        inter = model.intermediate_size
        return [gemm("gate_up" if gated else "up", tokens, h, up * inter, s.w, a, s.gemm, count, group),
                elementwise("act", tokens * (up + 1) * inter * a, s.gemm, count, group),
                gemm("down", tokens, inter, h, s.w, a, s.gemm, count, group)]
    m = model.moe
    ops = [gemm("router", tokens, h, m.num_experts, s.w, a, s.gemm, count, group)]
    touched = expected_experts(m.num_experts, m.experts_per_token, tokens)
    routed = tokens * m.experts_per_token
    ie = m.expert_intermediate_size
    ops.append(Operator("experts_gate_up" if gated else "experts_up", 2 * routed * h * up * ie,
                        touched * h * up * ie * s.e + routed * (h + up * ie) * a, s.expert_gemm, count, "gemm", group,
                        weights=touched * h * up * ie))
    ops.append(elementwise("experts_act", routed * (up + 1) * ie * a, s.expert_gemm, count, group))
    ops.append(Operator("experts_down", 2 * routed * ie * h, touched * ie * h * s.e + routed * (ie + h) * a,
                        s.expert_gemm, count, "gemm", group, weights=touched * ie * h))
    if m.num_shared_experts:
        inter = m.num_shared_experts * m.shared_intermediate_size
        ops += [gemm("shared_gate_up" if gated else "shared_up", tokens, h, up * inter, s.w, a, s.gemm, count, group),
                elementwise("shared_act", tokens * (up + 1) * inter * a, s.gemm, count, group),
                gemm("shared_down", tokens, inter, h, s.w, a, s.gemm, count, group)]
    return ops


def _head(model, s, tokens, logit_rows):
    """Embedding lookup, final norm and LM head (logits of `logit_rows` positions)."""
    h = model.hidden_size
    return [elementwise("embedding", tokens * h * (s.w + s.a), s.gemm, 1, "head"),
            elementwise("final_norm", 2 * logit_rows * h * s.a, s.gemm, 1, "head"),
            gemm("lm_head", logit_rows, h, model.vocab_size, s.w, s.a, s.gemm, 1, "head")]


def _layer_stack(model, s, tokens, attention):
    """The operators of every decoder layer over `tokens` tokens: norm, QKV projections, what
    `attention(local, layers, group)` returns (the phase's attention operators for one group of
    identical layers), output projection, norm, FFN or experts."""
    h, ops = model.hidden_size, []
    for (local, moe), layers in model.layer_groups.items():
        group = _group_name(local, moe, model)
        ops.append(elementwise("attn_norm", 4 * tokens * h * s.a, s.gemm, layers, group))
        projections, o_proj = _projections(model, s, tokens, layers, group)
        ops += projections
        ops += attention(local, layers, group)
        ops.append(o_proj)
        ops.append(elementwise("ffn_norm", 4 * tokens * h * s.a, s.gemm, layers, group))
        ops += _ffn(model, s, tokens, moe, layers, group)
    return ops


def decode_operators(model, batch, context, peaks, query_tokens=1):
    """Operators of one decode step: `batch` sequences with `context` tokens cached each.

    Each sequence attends to its cached tokens plus the new one (windowed on local layers,
    top-k on sparse layers, whose indexer scores all of them). With `query_tokens` q > 1 each
    sequence feeds q new tokens at once (the verifier step of speculative decoding): the weights
    are read once, every per-token term (FLOPs, activations, routed tokens, logits) is q times
    larger, and each sequence's KV cache is read once for its q queries. On sparse layers the q
    queries are taken to select the same top-k tokens (adjacent positions overlap heavily), so
    the read stays min(T, k) per sequence: a lower bound on bytes.
    """
    s = _Shapes(model, peaks)
    tokens = batch * query_tokens
    attended_full = context + query_tokens

    def attention(local, layers, group):
        ops = []
        if local and model.attention.window_kind == "chunked" and query_tokens == 1:
            attended = chunk_position(attended_full, model.attention.sliding_window)
        else:
            attended = cached_tokens(model, attended_full, local)
        flops_per_pair, q_bytes, kv_layer = _attention_core(model, s, tokens, False)
        sparse = model.attention.sparse
        if sparse is not None:
            index_layer = index_bytes_per_token_layer(model)
            ops.append(Operator("indexer", tokens * 2 * sparse.index_heads * sparse.index_head_dim * attended,
                                batch * attended * index_layer, s.attn, layers, "attention", group))
            read = minimum(attended, sparse.index_topk)
            kv_read = batch * read * (kv_layer - index_layer)
        else:
            read = attended
            kv_read = batch * read * kv_layer
        ops.append(Operator("attention", tokens * read * flops_per_pair, kv_read + q_bytes + tokens * kv_layer,
                            s.attn, layers, "attention", group, kv_bytes=kv_read + tokens * kv_layer))
        return ops
    return s.mark(_layer_stack(model, s, tokens, attention) + _head(model, s, tokens, tokens))


def chunked_pairs(prompt, chunk):
    """(query, key) pairs of causal attention inside fixed chunks of `chunk` tokens (Llama 4) [1].

    .. math:: \\left\\lfloor \\frac{P}{C} \\right\\rfloor \\frac{C (C+1)}{2} + \\frac{r (r+1)}{2},
              \\quad r = P - C \\lfloor P / C \\rfloor

    A query sees only the earlier tokens of its own chunk, not a window sliding across chunks:
    at a 32k prompt with 8k chunks 4 x 8192 x 8193 / 2 pairs, 1.75x fewer than a sliding window.
    """
    full = floor(prompt / chunk)
    rest = prompt - chunk * full
    return full * chunk * (chunk + 1) / 2 + rest * (rest + 1) / 2


def chunk_position(tokens, chunk):
    """Tokens a new token attends to inside its chunk when it is the `tokens`-th of the sequence:
    ((tokens - 1) mod C) + 1 [1]."""
    return tokens - 1 - chunk * floor((tokens - 1) / chunk) + 1


def causal_pairs(prompt, window=None):
    """(query, key) pairs of causal attention over a prompt, each query seeing at most `window` keys.

    .. math:: \\sum_{i=1}^{P} \\min(i, W) = \\frac{P(P+1)}{2} - \\frac{r(r+1)}{2}, \\quad r = \\max(P - W, 0)
    """
    full = prompt * (prompt + 1) / 2
    if window is None:
        return full
    beyond = maximum(prompt - window, 0)
    return full - beyond * (beyond + 1) / 2


def prefill_operators(model, batch, prompt, peaks):
    """Operators of the prefill of `batch` prompts of `prompt` tokens each (causal attention).

    Logits are computed for the last position of each prompt only.
    """
    s = _Shapes(model, peaks)
    tokens = batch * prompt
    a = model.attention

    def attention(local, layers, group):
        ops = []
        if local and a.window_kind == "chunked":
            pairs = batch * chunked_pairs(prompt, a.sliding_window)
        else:
            pairs = batch * causal_pairs(prompt, a.sliding_window + a.sink_tokens if local else None)
        flops_per_pair, q_bytes, kv_layer = _attention_core(model, s, tokens, True)
        if a.sparse is not None:
            index_layer = index_bytes_per_token_layer(model)
            ops.append(Operator("indexer", pairs * 2 * a.sparse.index_heads * a.sparse.index_head_dim,
                                tokens * index_layer, s.attn, layers, "attention", group))
            pairs = batch * causal_pairs(prompt, a.sparse.index_topk)
        ops.append(Operator("attention", pairs * flops_per_pair, 2 * tokens * kv_layer + q_bytes, s.attn, layers,
                            "attention", group, kv_bytes=2 * tokens * kv_layer))
        return ops
    return s.mark(_layer_stack(model, s, tokens, attention) + _head(model, s, tokens, batch))


@dataclass(frozen=True)
class MixedShape:
    """The `length` of a mixed step (deployment.evaluate, phase "mixed"): what the step holds
    besides its `batch` decoding sequences.

    context [tokens] cached per decoding sequence; prefill_tokens [tokens] new prompt tokens of the
    prefill chunks scheduled in the step; prefill_context [tokens] tokens of those prompts already
    in the KV cache before the chunk (earlier chunks, prefix-cache hits); prefill_sequences [1]
    prompts the chunks belong to (one logit row each when a chunk ends its prompt).
    """
    context: float
    prefill_tokens: float
    prefill_context: float = 0
    prefill_sequences: float = 1


def mixed_operators(model, decode_batch, context, prefill_tokens, prefill_context, peaks, prefill_sequences=1):
    """Operators of one continuous-batching step: `decode_batch` sequences decoding at `context`
    cached tokens each, plus `prefill_tokens` prompt tokens of chunked prefill.

    The weight GEMMs (projections, FFN or experts, LM head rows) run once over all
    T = B + P tokens: the weights are read once for decodes and prompt chunks together, which is
    why a chunk added to a memory-bound decode step costs little more than its FLOPs. Attention is
    two operators: the decodes' (each sequence reads its cache, as in decode_operators) and the
    chunks' (causal over the chunk, on top of c tokens already cached):

    .. math:: \\mathrm{pairs} = \\sum_{i=1}^{P} \\min(c + i, W) = S(c + P) - S(c), \\qquad
              S(n) = \\mathrm{causal\\_pairs}(n, W)

    with W the window of local layers (or the top-k of sparse attention); n = `prefill_sequences` >= 1
    whole prompts of P / n tokens each attend to their own tokens only, n [S(c + P/n) - S(c)] pairs
    (below 1: the chunk is that share of one prompt). Bytes = the chunk's new
    KV written once, the c cached tokens' KV read once, and its queries in and out. Logits are
    computed for the B decodes and `prefill_sequences` prompt ends. With P = 0 this is
    decode_operators at batch B; with B = 0 and c = 0 a chunk of P prompt tokens is
    prefill_operators of one prompt.
    """
    s = _Shapes(model, peaks)
    tokens = decode_batch + prefill_tokens
    a = model.attention

    def attention(local, layers, group):
        ops = []
        attended = cached_tokens(model, context + 1, local)
        flops_per_pair, q_bytes, kv_layer = _attention_core(model, s, decode_batch, False)
        read, kv_read = attended, decode_batch * attended * kv_layer
        if a.sparse is not None:
            index_layer = index_bytes_per_token_layer(model)
            ops.append(Operator("indexer", decode_batch * 2 * a.sparse.index_heads * a.sparse.index_head_dim * attended,
                                decode_batch * attended * index_layer, s.attn, layers, "attention", group))
            read = minimum(attended, a.sparse.index_topk)
            kv_read = decode_batch * read * (kv_layer - index_layer)
        ops.append(Operator("attention", decode_batch * read * flops_per_pair,
                            kv_read + q_bytes + decode_batch * kv_layer, s.attn, layers, "attention", group,
                            kv_bytes=kv_read + decode_batch * kv_layer))
        window = a.sliding_window + a.sink_tokens if local else None
        if a.sparse is not None:
            window = a.sparse.index_topk if window is None else min(window, a.sparse.index_topk)
        prompts = maximum(prefill_sequences, 1)   # chunks of that many prompts, each attending to its own
        pairs = prompts * (causal_pairs(prefill_context + prefill_tokens / prompts, window)
                           - causal_pairs(prefill_context, window))
        chunk_pairs, chunk_q, _ = _attention_core(model, s, prefill_tokens, True)
        cached = cached_tokens(model, prefill_context, local)
        ops.append(Operator("prefill_attention", pairs * chunk_pairs,
                            (prefill_tokens + cached) * kv_layer + chunk_q, s.attn, layers, "attention", group,
                            kv_bytes=(prefill_tokens + cached) * kv_layer))
        return ops
    ops = _layer_stack(model, s, tokens, attention)
    logit_rows = decode_batch + minimum(prefill_sequences, prefill_tokens)
    return s.mark(ops + _head(model, s, tokens, logit_rows))


def flops_per_token(model, context=0):
    """FLOPs one decoded token costs at `context` cached tokens: 2 x active weights + attention [FLOP]."""
    ops = decode_operators(model, 1, context, {d: 1.0 for d in ("bf16", "fp16", "fp32")})
    total = 0
    for op in ops:
        total = total + op.count * op.flops
    return total


def mtp_model(model):
    """The model's multi-token-prediction module(s) as a Model of `mtp_layers` layers.

    DeepSeek-V3 (arXiv:2412.19437, Sec. 2.2) appends a full decoder layer (MoE, like its main
    layers) per prediction depth; embedding and output head are shared with the main model.
    """
    if not model.mtp_layers:
        raise RooflineError(f"{model.id} has no multi-token-prediction layers (mtp_layers = 0); "
                            "give a draft model id instead of 'mtp'")
    moe = replace(model.moe, first_dense_layers=0, layer_step=1) if model.moe is not None else None
    return replace(model, num_layers=model.mtp_layers, mtp_layers=0, moe=moe)


def mtp_draft_operators(mtp, batch, context, peaks):
    """Operators of one draft step of the MTP module(s) `mtp` (mtp_model of the main model): for each
    depth, RMSNorm of the hidden state and of the next token's embedding, their concatenation
    projected 2h -> h, one decoder layer; then the shared final norm and LM head (DeepSeek-V3,
    arXiv:2412.19437, Sec. 2.2, eq. 21-23)."""
    h = mtp.hidden_size
    w = dtypes.bytes_per_value(mtp.dtypes["weights"])
    a = dtypes.bytes_per_value(mtp.dtypes["activations"])
    matmul = dtypes.matmul_dtype(mtp.dtypes["weights"], mtp.dtypes["activations"], peaks)
    extra = [elementwise("mtp_norms", 2 * 2 * batch * h * a, matmul, mtp.num_layers, "mtp"),
             gemm("mtp_eh_proj", batch, 2 * h, h, w, a, matmul, mtp.num_layers, "mtp")]
    return extra + decode_operators(mtp, batch, context, peaks)
