"""A model served on one or many chips: per-chip operators, communication, the pipeline.

One forward pass of a micro-batch crosses every layer: each chip of a tensor-parallel group runs
1/tp of every GEMM and of attention (elementwise work is replicated), then the group all-reduces;
pipeline stages pass the residual stream on. The time of one token of one sequence is

.. math:: t_{token} = \\sum_{layers} \\Big(\\sum_{op} t_{op} + t_{comm} + t_{layer}\\Big) + t_{head}
          + t_{step} + (pp - 1) \\, t_{hop} + [pp > 1] \\, \\alpha_{return}

and with m micro-batches in flight a sequence gets a token every
max(t_token, m t_stage,max) (parallel.pipeline_cycle): more stages add hops to the per-user
latency while the aggregate throughput is held up by the micro-batches.
"""
import math
from dataclasses import dataclass, replace

from . import dtypes
from .memory import footprint
from .operators import decode_operators, prefill_operators
from .parallel import allreduce_time, alltoall_time, choose_links, hop_time, pipeline_cycle, residual_bytes
from .step import fixed_time, time_operators


@dataclass(frozen=True)
class CommTiming:
    """One communication step of a forward pass (per occurrence) and its two terms."""
    name: str
    group: str
    count: int
    bytes: float
    latency_time: float     # [s] link latency and fixed collective cost
    bandwidth_time: float   # [s] bytes / link bandwidth

    @property
    def time(self):
        return self.latency_time + self.bandwidth_time

    @property
    def total_time(self):
        return self.count * self.time

    @property
    def bound(self):
        return "link latency" if self.latency_time >= self.bandwidth_time else "link bandwidth"


@dataclass(frozen=True)
class Evaluation:
    """Timing of one phase of a deployment: per-token latency, pipeline cycle, and their parts."""
    timed: list             # OperatorTiming of one micro-batch on one chip, over all layers
    comms: list             # CommTiming over all layers and stage hops
    token_time: float       # [s] one micro-batch through every stage
    cycle_time: float       # [s] between two steps of one sequence
    stage_time: float       # [s] busiest stage, per micro-batch
    microbatch: int         # sequences per micro-batch
    split: dict             # [s] of token_time by what bounds it
    per_chip_memory: dict   # [B] weights, kv_cache, activations, total on the fullest chip
    tp_link: object = None
    pp_link: object = None


def shard(op, tp, mla):
    """The share of one operator a chip of a `tp`-wide tensor-parallel group runs.

    GEMMs split their weights and FLOPs (column/row parallel, vocab-parallel LM head); attention
    splits its heads, and GQA its KV heads; MLA's latent cache is shared by all heads, so every
    chip reads all of it. Norms, activations and the embedding lookup are replicated.
    """
    if tp == 1 or op.kind == "elementwise":
        return op
    if op.kind == "attention" and mla:
        return replace(op, flops=op.flops / tp)
    return replace(op, flops=op.flops / tp, bytes=op.bytes / tp)


def communication(model, layout, tokens, tp_link, ceiling):
    """CommTiming of the tensor- and expert-parallel collectives of one micro-batch, all layers.

    Dense layers all-reduce the residual stream twice (after attention, after the FFN); MoE layers
    with ep > 1 all-reduce after attention and dispatch and combine routed tokens all-to-all.
    """
    if layout.tp == 1:
        return []
    act = dtypes.bytes_per_value(model.dtypes["activations"])
    message = residual_bytes(tokens, model.hidden_size, act)
    latency = ceiling.latency_of(tp_link)
    fixed = ceiling.collective_overhead
    bandwidth = tp_link.bandwidth
    bw_part = allreduce_time(message, layout.tp, bandwidth, 0.0)
    lat_part = allreduce_time(0.0, layout.tp, bandwidth, latency) + fixed
    comms = []
    moe_layers = model.num_moe_layers if layout.ep > 1 else 0
    comms.append(CommTiming("allreduce_attn", "layer", model.num_layers, message, lat_part, bw_part))
    if model.num_layers - moe_layers:
        comms.append(CommTiming("allreduce_ffn", "layer", model.num_layers - moe_layers, message, lat_part, bw_part))
    if moe_layers:
        routed = message / layout.ep * model.moe.experts_per_token
        a2a_bw = alltoall_time(routed, layout.ep, bandwidth, 0.0)
        a2a_lat = alltoall_time(0.0, layout.ep, bandwidth, latency) + fixed
        comms += [CommTiming("dispatch", "moe", moe_layers, routed, a2a_lat, a2a_bw),
                  CommTiming("combine", "moe", moe_layers, routed, a2a_lat, a2a_bw)]
    return comms


def per_chip_memory(model, layout, batch, context, tokens_in_flight):
    """Memory on the fullest chip [B]: its stage's share of layers (plus embedding or LM head) / tp.

    GQA KV heads are split over the TP group; MLA's latent cache is replicated on every TP chip.
    """
    whole = footprint(model, batch, context, tokens_in_flight)
    share = math.ceil(model.num_layers / layout.pp) / model.num_layers
    head = model.vocab_size * model.hidden_size * dtypes.bytes_per_value(model.dtypes["weights"])
    layer_weights = whole["weights"] - head * (1 if model.tie_embeddings else 2)
    weights = (layer_weights * share + head * (1 if layout.pp > 1 or model.tie_embeddings else 2)) / layout.tp
    kv_split = 1 if model.attention.kind == "mla" else layout.tp
    kv = whole["kv_cache"] * share / kv_split
    act = whole["activations"] / layout.tp
    return {"weights": weights, "kv_cache": kv, "activations": act, "total": weights + kv + act}


def stage_work(layer_time, head_time, layers, stages):
    """Work of the busiest pipeline stage per micro-batch [s], stages balanced by layer count.

    .. math:: t_{stage} = \\max\\left(\\frac{t_{layers} + t_{head}}{pp}, \\; t_{head} + \\frac{t_{layers}}{L}\\right)

    The stage that holds the LM head takes fewer layers; it still needs at least one.
    """
    if stages == 1:
        return layer_time + head_time
    return max((layer_time + head_time) / stages, head_time + layer_time / layers)


def _micro_batch(phase, model, hardware, b, length, layout, ceiling, tp_link):
    """(timed operators, collectives, layer time, head time) of one micro-batch of `b` sequences."""
    if phase == "decode":
        ops, tokens = decode_operators(model, b, length, hardware.peak_flops), b
    else:
        ops, tokens = prefill_operators(model, b, length, hardware.peak_flops), b * length
    mla = model.attention.kind == "mla"
    timed = time_operators([shard(op, layout.tp, mla) for op in ops], ceiling)
    comms = communication(model, layout, tokens, tp_link, ceiling)
    layer_time = sum(op.total_time for op in timed if op.group != "head") \
        + sum(c.total_time for c in comms) + model.num_layers * ceiling.layer_overhead
    head_time = sum(op.total_time for op in timed if op.group == "head")
    return timed, comms, float(layer_time), float(head_time), tokens


def evaluate(phase, model, hardware, batch, length, layout, ceiling, link_id=None, cache=None):
    """Evaluation of a decode step (`length` = cached tokens) or a prefill (`length` = prompt).

    `cache` (a dict) memoises the per-micro-batch part across layouts that share tp, ep and the
    micro-batch size, which is all a solver's sweep over pipeline depths changes.
    """
    m = layout.microbatches
    b = math.ceil(batch / m)
    tp_link, pp_link = choose_links(hardware, layout, link_id)
    key = (phase, b, length, layout.tp, layout.ep, tp_link)
    if cache is not None and key in cache:
        part = cache[key]
    else:
        part = _micro_batch(phase, model, hardware, b, length, layout, ceiling, tp_link)
        if cache is not None:
            cache[key] = part
    timed, comms, layer_time, head_time, tokens = part
    if phase == "decode":
        memory = per_chip_memory(model, layout, batch, length + 1, batch)
    else:
        memory = per_chip_memory(model, layout, batch, length, b * length)
    hops = []
    if layout.pp > 1:
        act = dtypes.bytes_per_value(model.dtypes["activations"])
        latency = ceiling.latency_of(pp_link)
        message = residual_bytes(tokens, model.hidden_size, act)
        hops = [CommTiming("stage_hop", "pipeline", layout.pp - 1, message, latency,
                           hop_time(message, pp_link.bandwidth, 0.0)),
                CommTiming("return_to_first_stage", "pipeline", 1, 0.0, latency, 0.0)]
    hop_total = sum(h.total_time for h in hops)
    token_time = layer_time + head_time + ceiling.step_overhead + hop_total
    stage_time = stage_work(layer_time, head_time, model.num_layers, layout.pp) + (hops[0].time if hops else 0.0)
    cycle = float(pipeline_cycle(token_time, stage_time, m))
    split = {"memory": 0.0, "compute": 0.0, "overhead": float(fixed_time(ceiling, model.num_layers)),
             "link latency": 0.0, "link bandwidth": 0.0}
    for op in timed:
        split["compute" if op.compute_time > op.memory_time else "memory"] += float(op.total_time)
    for c in comms + hops:
        split["link latency"] += float(c.count * c.latency_time)
        split["link bandwidth"] += float(c.count * c.bandwidth_time)
    return Evaluation(timed=timed, comms=comms + hops, token_time=float(token_time), cycle_time=cycle,
                      stage_time=float(stage_time), microbatch=b, split=split, per_chip_memory=memory,
                      tp_link=tp_link, pp_link=pp_link)
