"""One chip's share of a layout: the operators it runs and the memory it holds.

Tensor parallelism splits every GEMM and the attention heads over `tp` chips (Megatron-LM,
Shoeybi et al. 2019); expert parallelism places whole routed experts on `ep` chips, each holding
(N + R) / ep of the N experts and R redundant copies; data-parallel attention groups (ep > tp)
each serve their own sequences. roofline.deployment times these shares and adds the
communication between the chips.
"""
import math
from dataclasses import replace

from . import dtypes
from .mathops import ceil
from .memory import footprint
from .parallel import expert_spread
from .params import count_params


#: MLA's down projections: their outputs are the latents every head shares, so engines replicate
#: them on every tensor-parallel rank (vLLM ReplicatedLinear for the q_a and kv_a projections;
#: DeepSeek-V3.2's indexer key likewise)
REPLICATED_UNDER_TP = ("q_a", "kv_a", "index_k_w")


def shard(op, tp, model):
    """The share of one operator a chip of a `tp`-wide tensor-parallel group runs.

    GEMMs split their weights and FLOPs (column/row parallel, vocab-parallel LM head); attention
    splits its heads: the per-head queries and outputs divide by tp, the KV cache by the KV heads
    a rank holds (GQA: min(tp, kv_heads), each KV head replicated over tp / kv_heads ranks when tp
    is larger; MLA: 1, the latent cache is shared by all heads and every chip reads all of it).
    The QKV projection of a rank holds H/tp query heads and max(kv/tp, 1) KV heads; MLA's down
    projections are replicated (REPLICATED_UNDER_TP). Norms and the embedding lookup work on the
    replicated residual stream and are replicated; the FFN's activation function works on the
    column-parallel intermediate (each chip holds 1/tp of it: Shoeybi et al. 2019, Sec. 3) and
    splits with it.
    """
    if tp == 1 or (op.kind == "elementwise" and not op.name.endswith("act")):
        return op
    if op.kind == "elementwise":
        return replace(op, bytes=op.bytes / tp)
    mla = model.attention.kind == "mla"
    if mla and op.name in REPLICATED_UNDER_TP:
        return op
    if op.kind == "attention":
        kv_split = 1 if mla else min(tp, model.num_kv_heads)
        return replace(op, flops=op.flops / tp, bytes=(op.bytes - op.kv_bytes) / tp + op.kv_bytes / kv_split,
                       kv_bytes=op.kv_bytes / kv_split)
    if op.name == "qkv" and tp > model.num_kv_heads:
        share = (model.num_heads / tp + 2) / (model.num_heads + 2 * model.num_kv_heads)
        return replace(op, flops=op.flops * share, bytes=op.bytes * share, weights=op.weights * share)
    return replace(op, flops=op.flops / tp, bytes=op.bytes / tp, weights=op.weights / tp)


def is_routed(op):
    """Whether an operator is a routed-expert one (operators._ffn names them experts_*)."""
    return op.name.startswith("experts_")


def spread_experts(op, ep, num_experts, redundant=0):
    """The share of a routed-expert operator of a whole micro-batch one of `ep` expert chips runs.

    .. math:: F_{chip} = \\frac{F}{n_{ep}}, \\qquad
              Q_{chip} = \\frac{N (1 - (1 - k/N)^T) \\, Q_{expert} + Q_{act}}{\\min(n_{ep}, N)}

    Each chip holds N / ep of the N experts and receives 1/ep of the T k routed tokens under
    uniform routing (DeepSeek-V3, arXiv 2412.19437, Sec. 3.4): the FLOPs, the weights of the
    distinct experts the micro-batch touches and the routed activations all divide by ep. With
    more chips than experts (one expert a chip, ep - N redundant copies of hot experts: DeepSeek's
    EP320 for 256 experts) the FLOPs still spread over ep, but a chip reads its whole expert
    whenever it is touched: the bytes divide by N; with R redundant copies by N ep / (N + R)
    (parallel.expert_spread: each chip holds (N + R) / ep slots).
    """
    spread = expert_spread(num_experts, ep, redundant)
    return replace(op, flops=op.flops / ep, bytes=op.bytes / spread, weights=op.weights / spread)


def chip_operators(model, layout, build, b):
    """Operators one chip runs for a micro-batch of `b` sequences; `build(sequences, share)` lists
    them (`share`: the part of the micro-batch's other work, such as prefill chunks, they carry).

    With data-parallel attention groups (ep > tp) a chip runs attention and every non-routed
    operator for its group's ceil(b / groups) sequences (and 1/groups of the chunks), split over tp, and its 1/ep of the routed
    experts of the whole micro-batch.
    """
    groups = layout.attention_groups
    ops = [shard(op, layout.tp, model) for op in build(ceil(b / groups), 1 / groups)]
    if groups == 1 and not layout.redundant_experts:
        return ops
    return [op for op in ops if not is_routed(op)] + [spread_experts(op, layout.expert_chips, model.moe.num_experts,
                                                                     layout.redundant_experts)
                                                      for op in build(b, 1) if is_routed(op)]


def per_chip_memory(model, layout, batch, context, tokens_in_flight):
    """Memory on the fullest chip [B]: its stage's share of the layers (plus embedding or LM head).

    Attention, dense-FFN and shared-expert weights, embedding and LM head divide by tp; routed
    expert weights by max(tp, ep), for the MoE layers of the stage that has the most of them (stages
    are contiguous blocks of ceil(L / pp) layers: a model whose first layers are dense, or whose MoE
    layers alternate with dense ones, does not hold ceil(L / pp) / L of all experts per stage). A chip
    keeps the KV cache of its attention group's ceil(batch / groups) sequences: GQA KV heads split
    over min(tp, kv_heads) (replicated beyond), MLA's latent cache replicated on every chip of the
    group. Routed experts divide over min(max(tp, ep), N): with more chips than experts each holds one. Activations divide over the
    stage.
    """
    whole = footprint(model, batch, context, tokens_in_flight)
    per_stage = math.ceil(model.num_layers / layout.pp)
    share = per_stage / model.num_layers
    head = model.vocab_size * model.hidden_size * dtypes.bytes_per_value(model.dtypes["weights"])
    experts = count_params(model).routed_experts * dtypes.bytes_per_value(model.dtypes["experts"])
    other_layers = whole["weights"] - experts - head * (1 if model.tie_embeddings else 2)
    most_moe = max(sum(model.is_moe(layer) for layer in range(start, min(start + per_stage, model.num_layers)))
                   for start in range(0, model.num_layers, per_stage))
    moe_share = most_moe / model.num_moe_layers if model.num_moe_layers else 0
    weights = (other_layers * share + head * (1 if layout.pp > 1 or model.tie_embeddings else 2)) / layout.tp \
        + experts * moe_share / (expert_spread(model.moe.num_experts, layout.expert_chips, layout.redundant_experts)
                                 if model.moe else layout.expert_chips)
    kv_split = 1 if model.attention.kind == "mla" else min(layout.tp, model.num_kv_heads)
    group_batch = ceil(batch / layout.attention_groups)
    kv = whole["kv_cache"] * share / kv_split * group_batch / batch
    act = whole["activations"] / layout.stage_chips
    return {"weights": weights, "kv_cache": kv, "activations": act, "total": weights + kv + act}
