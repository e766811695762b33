"""A model served on one or many chips: per-chip operators, communication, the pipeline.

One forward pass of a micro-batch crosses every layer: each chip of a tensor-parallel group runs
1/tp of every GEMM and of attention (elementwise work is replicated), then the group all-reduces;
pipeline stages pass the residual stream on. With expert parallelism wider than the TP group
(ep > tp), a stage holds ep/tp such groups, each running attention for its own sequences, and MoE
layers send routed tokens all-to-all to the ep chips that hold their experts. The time of one
token of one sequence is

.. math:: t_{token} = \\sum_{layers} \\Big(\\sum_{op} t_{op} + t_{comm} + t_{layer}\\Big) + t_{head}
          + S \\, t_{mesh} + t_{step} + (pp - 1) \\, t_{hop} + [pp > 1] \\, \\alpha_{return}

where S t_mesh, on a wafer only, is the token's GEMVs crossing the cores that hold their matrices
(roofline.wafer); with m micro-batches in flight a sequence gets a token every
max(t_token, m t_stage,max) (collectives.pipeline_cycle): more stages add hops to the per-user
latency while the aggregate throughput is held up by the micro-batches.
"""
import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from . import dtypes
from .collectives import (Fabric, Network, allreduce, alltoall, check_library, destination_ranks, hop_time,
                          pipeline_cycle, residual_bytes, ring_allgather, routed_bytes)
from .mathops import ceil, maximum, minimum
from .operators import decode_operators, mixed_operators, mtp_draft_operators, prefill_operators
from .parallel import choose_links
from .sharding import chip_operators, per_chip_memory
from .step import fixed_time, time_operators
from .wafer import mesh_span


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
    """Timing of one phase of a deployment: per-token latency, pipeline cycle, and their parts.

    Times are floats, numpy arrays (batch and context as arrays: a sweep) or sympy expressions
    (explain). `split` and `per_chip_memory` are computed when first asked for.
    """
    timed: list             # OperatorTiming of one micro-batch on one chip, over all layers
    comms: list             # CommTiming over all layers and stage hops
    token_time: object      # [s] one micro-batch through every stage
    cycle_time: object      # [s] between two steps of one sequence
    stage_time: object      # [s] busiest stage, per micro-batch
    microbatch: object      # sequences per micro-batch
    forward: object         # the ForwardPass evaluated
    ceiling: object         # the Ceilings it was evaluated under
    tp_link: object = None
    pp_link: object = None
    ep_link: object = None
    hidden_latency: object = 0.0     # [s] of link latency hidden behind computation (--overlap)
    hidden_bandwidth: object = 0.0   # [s] of link bandwidth time hidden behind computation (--overlap)

    @cached_property
    def split(self):
        """[s] of token_time by what bounds it: memory, compute, overhead, link latency, link
        bandwidth (elementwise for arrays: each operator's verdict per point)."""
        f = self.forward
        split = {"memory": 0.0, "compute": 0.0, "overhead": fixed_time(self.ceiling, f.layers, f.mesh_span),
                 "link latency": 0.0, "link bandwidth": 0.0}
        for op in self.timed:
            is_compute = np.asarray(op.compute_time > op.memory_time)
            total = op.total_time
            split["compute"] = split["compute"] + np.where(is_compute, total, 0.0)
            split["memory"] = split["memory"] + np.where(is_compute, 0.0, total)
        for c in self.comms:
            split["link latency"] = split["link latency"] + c.count * c.latency_time
            split["link bandwidth"] = split["link bandwidth"] + c.count * c.bandwidth_time
        split["link latency"] = split["link latency"] - self.hidden_latency
        split["link bandwidth"] = split["link bandwidth"] - self.hidden_bandwidth
        return {k: _plain(v) for k, v in split.items()}

    @cached_property
    def per_chip_memory(self):
        """[B] weights, kv_cache, activations, total on the fullest chip (sharding.per_chip_memory)."""
        f = self.forward
        if f.phase == "prefill":
            return per_chip_memory(f.model, f.layout, f.batch, f.length, self.microbatch * f.length)
        if f.phase == "mixed":
            return per_chip_memory(f.model, f.layout, max(f.batch, 1), f.length.context + 1,
                                   max(f.batch, 1) + f.length.prefill_tokens)
        return per_chip_memory(f.model, f.layout, f.batch, f.length + f.query_tokens, f.batch * f.query_tokens)


def _plain(value):
    """A 0-d array as a float; arrays and numbers as they are."""
    return float(value) if isinstance(value, np.ndarray) and value.ndim == 0 else value


def chip_network(hardware, ceiling, link_id=None, collectives="custom"):
    """The two-level Network of a chip's scale-up and scale-out links, with this mode's latency per
    crossing and the engine's collective library (`collectives`, roofline.collectives.LIBRARIES,
    whose own latencies only calibrated mode charges); a forced `link_id` is the only level,
    joining any number of chips."""
    def level(chip_link, domain):
        role = "scale-out" if chip_link.role == "scale-out" else "scale-up"
        return Fabric(chip_link.link.fabric, chip_link.bandwidth, ceiling.latency_of(chip_link), domain,
                      chip_link.link.dimensions, role)

    charge = ceiling.mode != "ideal"
    if link_id is not None:
        return Network(up=level(hardware.link(link_id=link_id), math.inf), library=collectives, library_latency=charge)
    up = next((cl for cl in hardware.links if cl.role == "scale-up"), None)
    out = next((cl for cl in hardware.links if cl.role == "scale-out"), None)
    return Network(up=level(up, up.domain or math.inf) if up is not None else None,
                   out=level(out, math.inf) if out is not None else None, library=collectives, library_latency=charge)


def dispatch_bytes_per_value(model):
    """Bytes per hidden value of an MoE dispatch [B]: fp8 with one fp32 scale per 128 values where the
    experts run in fp8 (DeepEP dispatches fp8 and combines bf16, deepseek-ai/DeepEP README), else the
    activation dtype."""
    if str(model.dtypes["experts"]).startswith("fp8"):
        return 1 + 4 / 128
    return dtypes.bytes_per_value(model.dtypes["activations"])


def communication(model, layout, tokens, group_tokens, network, ceiling, moe_exchange="alltoall"):
    """CommTiming of the tensor- and expert-parallel collectives of one micro-batch, all layers.

    Every layer all-reduces the residual stream of a group's `group_tokens` over its tp chips twice:
    after attention, and after the FFN (dense), the MoE layer (ep <= tp: after the attention
    all-reduce every rank holds every token, so the dispatch is local and the combine of the routed
    experts and the tensor-parallel shared experts is one all-reduce) or the group's merge of its
    combined tokens (ep > tp). With ep > tp, MoE layers also dispatch and combine the micro-batch's
    `tokens` all-to-all over the ep chips: each token once to each distinct rank that holds one of
    its experts (destination_ranks), those inside the scale-up domain over it, the rest over
    scale-out (moe_exchange "alltoall", DeepEP's kernels); with moe_exchange "allgather" (what the
    serving engines do without DeepEP: roofline.serving.engines), a ring all-gather of all `tokens`
    over the ep chips before the routed experts and a ring reduce-scatter after
    (collectives.ring_allgather).
    Calibrated mode adds the fitted fixed cost of one collective to each.
    """
    act = dtypes.bytes_per_value(model.dtypes["activations"])
    fixed = ceiling.collective_overhead
    comms = []
    if layout.tp > 1:
        message = residual_bytes(group_tokens, model.hidden_size, act)
        t = allreduce(message, layout.tp, network)
        comms += [CommTiming("allreduce_attn", "layer", model.num_layers, message, t.latency + fixed, t.bandwidth),
                  CommTiming("allreduce_ffn", "layer", model.num_layers, message, t.latency + fixed, t.bandwidth)]
    moe_layers = model.num_moe_layers if layout.ep > layout.tp else 0
    if moe_layers and moe_exchange == "allgather":
        for name, per_value in (("allgather", dispatch_bytes_per_value(model)), ("reducescatter", act)):
            total = residual_bytes(tokens, model.hidden_size, per_value)
            t = ring_allgather(total, layout.ep, network)
            comms.append(CommTiming(name, "moe", moe_layers, total, t.latency + fixed, t.bandwidth))
    elif moe_layers:
        ep = layout.ep
        holders = min(ep, model.moe.num_experts)     # ep > N: a token's experts sit on k distinct ranks
        remote = destination_ranks(model.moe.num_experts, model.moe.experts_per_token, holders) * (ep - 1) / ep
        near = remote * (min(ep, network.domain) - 1) / (ep - 1)
        for name, per_value in (("dispatch", dispatch_bytes_per_value(model)), ("combine", act)):
            near_bytes = routed_bytes(tokens, near, model.hidden_size, per_value, ep)
            far_bytes = routed_bytes(tokens, remote - near, model.hidden_size, per_value, ep)
            t = alltoall(near_bytes, far_bytes, ep, network)
            comms.append(CommTiming(name, "moe", moe_layers, near_bytes + far_bytes, t.latency + fixed, t.bandwidth))
    return comms


#: collectives an engine runs concurrently with computation that does not wait for them (--overlap)
OVERLAPPED_COMMS = ("dispatch", "combine")


def hidden_by_overlap(timed, comms):
    """(time [s] of communication that overlapping hides behind computation, its link-latency share).

    .. math:: t_{hidden} = \\min\\left(t_{dispatch} + t_{combine}, \\; t_{shared}\\right)

    An MoE layer's expert all-to-all does not wait on its shared experts, nor they on it: DeepEP's
    hook-based dispatch and combine run while the shared-expert GEMMs compute, and DeepSeek's
    serving overlaps them the same way (deepseek-ai/DeepEP README, "communication-computation
    overlapping"; DeepSeek-V3, arXiv 2412.19437, Sec. 3.4). The layer then costs
    max(compute, all-to-all) for those parts instead of their sum. The tensor-parallel all-reduce
    is left exposed: its result is the next GEMM's input, and no engine's default decode path runs
    it under computation. The share splits the hidden time into latency and bandwidth in the
    all-to-all's own proportion.
    """
    a2a = [c for c in comms if c.name in OVERLAPPED_COMMS]
    if not a2a:
        return 0.0, 0.0
    latency = sum(c.count * c.latency_time for c in a2a)
    bandwidth = sum(c.count * c.bandwidth_time for c in a2a)
    shared = sum(op.total_time for op in timed if op.name.startswith("shared_"))
    return minimum(latency + bandwidth, shared), latency / maximum(latency + bandwidth, 1e-30)


def stage_work(layer_time, head_time, layers, stages):
    """Work of the busiest pipeline stage per micro-batch [s]: stages hold whole layers.

    .. math:: t_{stage} = \\max\\left(\\left\\lceil \\frac{L}{pp} \\right\\rceil \\bar t, \\;
              \\left\\lfloor \\frac{L}{pp} \\right\\rfloor \\bar t + t_{head}\\right),
              \\qquad \\bar t = t_{layers} / L

    Layers are spread as evenly as whole layers allow, the L mod pp extra ones on stages before the
    last, which holds the LM head (vLLM's get_pp_indices, vllm/distributed/utils.py). GLM-4.7's 92
    layers over 38 stages put 3 layers on the fullest stage, not 92/38 = 2.42.
    """
    if stages == 1:
        return layer_time + head_time
    per_layer = layer_time / layers
    return maximum(math.ceil(layers / stages) * per_layer, (layers // stages) * per_layer + head_time)


#: phases a forward pass can be: a decode step, a prompt's prefill, a draft step of MTP modules
PHASES = ("decode", "prefill", "mtp", "mixed")


@dataclass(frozen=True)
class ForwardPass:
    """One phase of a deployment before any ceiling: what one chip runs for one micro-batch.

    Building the operators is the costly part of an evaluation and does not depend on the
    ceilings, so a fit builds each measured row's ForwardPass once and evaluates it under many.
    `batch` and `length` (decode: cached tokens; prefill: prompt tokens) may be numbers, numpy
    arrays (broadcast against each other: a grid) or sympy symbols; `layers` is the layer count
    that fixed per-layer costs multiply (explain sets it to a symbol).
    """
    phase: str
    model: object
    hardware: object
    batch: object
    length: object
    layout: object
    operators: tuple        # roofline.operators.Operator of one micro-batch on one chip
    layers: object
    microbatch: object      # sequences per micro-batch
    tokens: object          # tokens of a micro-batch (the routed ones go all-to-all)
    group_tokens: object    # tokens of one attention group (all-reduced over tp, sent between stages)
    links: tuple            # (tp_link, pp_link, ep_link), ChipLink or None
    query_tokens: int = 1   # new tokens per sequence in a decode step (speculative verification)
    link_id: str = None     # a link forced for every transfer (roofline.collectives prices it as one level)
    collectives: str = None  # the engine's collective library (collectives.LIBRARIES); None: the ceiling's
    overlap: bool = None     # MoE all-to-all under the shared experts (hidden_by_overlap); None: the ceiling's
    moe_exchange: str = "alltoall"   # how attention groups' tokens reach the experts (communication)
    mesh_span: object = 0.0  # a wafer's mesh crossings of one token (roofline.wafer.mesh_span), 0 elsewhere

    def evaluate(self, ceiling):
        """The Evaluation of this pass under `ceiling` (roofline.step.Ceilings).

        .. math:: t_{token} = \\sum_{op} n_{op} t_{op} + t_{comm} + L t_{layer} + S t_{mesh} + t_{step}
                  + (pp - 1) t_{hop} + [pp > 1] \\alpha, \\qquad
                  t_{cycle} = \\max(t_{token}, m \\, t_{stage,max})
        """
        model, layout = self.model, self.layout
        tp_link, pp_link, ep_link = self.links
        timed = time_operators(self.operators, ceiling)
        network = chip_network(self.hardware, ceiling, self.link_id, self.collectives or ceiling.collectives)
        comms = communication(model, layout, self.tokens, self.group_tokens, network, ceiling, self.moe_exchange)
        layer_time = self.layers * ceiling.layer_overhead + self.mesh_span * ceiling.mesh_traversal
        head_time = 0
        for op in timed:
            if op.group == "head":
                head_time = head_time + op.total_time
            else:
                layer_time = layer_time + op.total_time
        for c in comms:
            layer_time = layer_time + c.total_time
        hidden_latency = hidden_bandwidth = 0.0
        if (ceiling.overlap if self.overlap is None else self.overlap) and ceiling.mode != "ideal":
            hidden, latency_share = hidden_by_overlap(timed, comms)
            layer_time = layer_time - hidden
            hidden_latency, hidden_bandwidth = hidden * latency_share, hidden * (1 - latency_share)
        hops = []
        if layout.pp > 1:
            act = dtypes.bytes_per_value(model.dtypes["activations"])
            latency = ceiling.latency_of(pp_link)
            message = residual_bytes(self.group_tokens, model.hidden_size, act)
            hops = [CommTiming("stage_hop", "pipeline", layout.pp - 1, message, latency,
                               hop_time(message, pp_link.bandwidth, 0.0)),
                    CommTiming("return_to_first_stage", "pipeline", 1, 0.0, latency, 0.0)]
        token_time = layer_time + head_time + ceiling.step_overhead
        for hop in hops:
            token_time = token_time + hop.total_time
        if layout.pp == 1:
            stage_time = cycle = token_time
        else:
            stage_time = stage_work(layer_time, head_time, model.num_layers, layout.pp) + hops[0].time
            if self.phase == "prefill":
                # the last of m micro-batches leaves the last stage (m - 1) stage times after the first
                token_time = token_time + (layout.microbatches - 1) * stage_time
            cycle = pipeline_cycle(token_time, stage_time, layout.microbatches)
        return Evaluation(timed=timed, comms=comms + hops, token_time=_plain(token_time), cycle_time=_plain(cycle),
                          stage_time=_plain(stage_time), microbatch=self.microbatch, forward=self, ceiling=ceiling,
                          tp_link=tp_link, pp_link=pp_link, ep_link=ep_link, hidden_latency=hidden_latency,
                          hidden_bandwidth=hidden_bandwidth)


def _builder(phase, model, length, peaks, query_tokens):
    """sequences -> the operators of `phase` for that many sequences (roofline.operators)."""
    if phase == "decode":
        return lambda sequences, share=1: decode_operators(model, sequences, length, peaks, query_tokens=query_tokens)
    if phase == "prefill":
        return lambda sequences, share=1: prefill_operators(model, sequences, length, peaks)
    if phase == "mtp":
        return lambda sequences, share=1: mtp_draft_operators(model, sequences, length, peaks)
    if phase == "mixed":
        return lambda sequences, share=1: mixed_operators(model, sequences, length.context,
                                                          length.prefill_tokens * share, length.prefill_context,
                                                          peaks, length.prefill_sequences * share)
    raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")


def forward_pass(phase, model, hardware, batch, length, layout, link_id=None, query_tokens=1, collectives=None,
                 overlap=None, moe_exchange="alltoall"):
    """The ForwardPass of a decode step (`length` = cached tokens), a prefill (`length` = prompt
    tokens) or an MTP draft step (`model` = the MTP module, roofline.operators.mtp_model) of
    `batch` sequences on `layout` (roofline.parallel.Layout); `link_id` forces the link;
    `collectives` names the engine's collective library (roofline.collectives.LIBRARIES) and `overlap`
    hides the MoE all-to-all behind the shared experts in calibrated mode (hidden_by_overlap); None
    leaves each to the Ceilings the pass is evaluated under (a Scenario's options)."""
    if collectives is not None:
        check_library(collectives)
    b = ceil(batch / layout.microbatches)
    links = choose_links(hardware, layout, link_id)
    per_sequence = length if phase == "prefill" else query_tokens
    groups = layout.attention_groups
    tokens, group_tokens = b * per_sequence, ceil(b / groups) * per_sequence
    if phase == "mixed":
        m = layout.microbatches
        length = replace(length, prefill_tokens=length.prefill_tokens / m,
                         prefill_sequences=length.prefill_sequences / m)
        tokens, group_tokens = b + length.prefill_tokens, ceil(b / groups) + length.prefill_tokens / groups
    build = _builder(phase, model, length, hardware.peak_flops, query_tokens)
    return ForwardPass(phase=phase, model=model, hardware=hardware, batch=batch, length=length, layout=layout,
                       operators=tuple(chip_operators(model, layout, build, b)), layers=model.num_layers,
                       microbatch=b, tokens=tokens, group_tokens=group_tokens, links=links,
                       query_tokens=query_tokens, link_id=link_id, collectives=collectives, overlap=overlap,
                       moe_exchange=moe_exchange, mesh_span=mesh_span(model, hardware, layout.tp, layout.expert_chips))


def evaluate(phase, model, hardware, batch, length, layout, ceiling, link_id=None, cache=None, query_tokens=1,
             collectives=None, overlap=None, moe_exchange="alltoall"):
    """Evaluation of a decode step (`length` = cached tokens), a prefill (`length` = prompt) or a
    mixed continuous-batching step (phase "mixed": `batch` decoding sequences, `length` an
    operators.MixedShape with their context and the prefill chunks scheduled with them, split evenly
    over the micro-batches): the one computation of a step time (roofline.scenario.evaluate is its
    entry for a Scenario).

    `cache` (a dict) memoises the ForwardPass across calls with the same inputs (a solver's search).
    """
    key = None
    if cache is not None and np.ndim(batch) == 0 and np.ndim(length) == 0:
        key = (phase, batch, length, layout, link_id, query_tokens, collectives, overlap, moe_exchange)
        if key in cache:
            return cache[key].evaluate(ceiling)
    forward = forward_pass(phase, model, hardware, batch, length, layout, link_id, query_tokens, collectives, overlap,
                           moe_exchange)
    if key is not None:
        cache[key] = forward
    return forward.evaluate(ceiling)


def fastest(phase, model, hardware, batch, length, layouts, ceiling, link_id=None):
    """(layout, evaluation) of the layout with the best per-user speed, preferring layouts that
    fit memory, then narrower tensor parallelism on a tie."""
    best = None
    for layout in layouts:
        ev = evaluate(phase, model, hardware, batch, length, layout, ceiling, link_id)
        key = (ev.per_chip_memory["total"] <= hardware.mem_capacity, -ev.cycle_time, -layout.tp)
        if best is None or key > best[0]:
            best = (key, layout, ev)
    return best[1], best[2]
