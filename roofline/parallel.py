"""Several chips: collective and hop times over links, and the parallel layouts a model allows.

Tensor parallelism (TP, Megatron-LM: Shoeybi et al. 2019, arXiv 1909.08053) splits every weight
matrix and the attention heads over `tp` chips and all-reduces the layer's output twice per layer
(after attention and after the FFN). Pipeline parallelism (PP) gives each of `pp` stages a slice
of the layers; only the residual stream, tokens x hidden x activation bytes, crosses between
stages (14 KB per token for hidden 7168 at bf16). Expert parallelism (EP) places whole experts on
`ep` chips and moves routed tokens with an all-to-all dispatch and combine (DeepSeek-V3,
arXiv 2412.19437, Sec. 3.4). Every transfer pays the link's latency and its bandwidth term.
"""
import math
from dataclasses import dataclass

from .errors import RooflineError
from .mathops import maximum


def allreduce_time(message_bytes, chips, bandwidth, latency):
    """All-reduce of a `message_bytes` buffer over `chips` chips [s].

    .. math:: t = 2 \\lceil \\log_2 n \\rceil \\, \\alpha + \\frac{2 (n - 1)}{n} \\frac{S}{BW}

    The bandwidth term is the ring optimum (each chip sends and receives 2(n-1)/n of the buffer);
    the latency term is that of a tree or switch-reduced algorithm, which NCCL picks for the small
    messages of decode (a reduce and a broadcast, log2 n hops each). message_bytes [B], bandwidth
    per direction per chip [B/s], latency alpha per hop [s]. Zero for one chip.
    """
    if chips <= 1:
        return 0 * message_bytes
    return 2 * math.ceil(math.log2(chips)) * latency + 2 * (chips - 1) / chips * message_bytes / bandwidth


def alltoall_time(bytes_per_chip, chips, bandwidth, latency):
    """All-to-all in which each chip sends `bytes_per_chip` spread evenly over the others [s].

    .. math:: t = \\alpha + \\frac{n - 1}{n} \\frac{S}{BW}

    Direct sends through a switch: one hop of latency; (n-1)/n of the data leaves the chip.
    """
    if chips <= 1:
        return 0 * bytes_per_chip
    return latency + (chips - 1) / chips * bytes_per_chip / bandwidth


def hop_time(message_bytes, bandwidth, latency):
    """Point-to-point transfer between pipeline stages: alpha + S / BW [s]."""
    return latency + message_bytes / bandwidth


def residual_bytes(tokens, hidden_size, activation_bytes):
    """Bytes of the residual stream of `tokens` tokens: tokens x hidden x bytes per value [B]."""
    return tokens * hidden_size * activation_bytes


def pipeline_cycle(token_time, bottleneck_stage_time, microbatches):
    """Time between two tokens of one sequence in a pipeline with `microbatches` in flight [s].

    .. math:: t_{cycle} = \\max(t_{token}, \\; m \\, t_{stage,max})

    A sequence's next token cannot start before its previous one has crossed every stage
    (t_token); the busiest stage cannot serve its m micro-batches faster than m t_stage,max.
    With m = 1 all other stages idle: per-user latency is t_token, aggregate throughput B / t_token.
    """
    return maximum(token_time, microbatches * bottleneck_stage_time)


@dataclass(frozen=True)
class Layout:
    """How a model is spread over chips: chips = tp x pp; experts over ep (1 or tp) chips."""
    tp: int = 1
    pp: int = 1
    ep: int = 1
    microbatches: int = 1

    @property
    def chips(self):
        return self.tp * self.pp

    def describe(self):
        parts = [f"TP={self.tp}", f"PP={self.pp}"]
        if self.ep > 1:
            parts.append(f"EP={self.ep}")
        if self.pp > 1:
            parts.append(f"{self.microbatches} micro-batch{'es' if self.microbatches > 1 else ''}")
        return ", ".join(parts)


def check_layout(model, layout):
    """RooflineError if `layout` does not divide `model`; returns the layout."""
    tp, pp, ep = layout.tp, layout.pp, layout.ep
    for name, value in (("tp", tp), ("pp", pp), ("ep", ep), ("micro-batches", layout.microbatches)):
        if value < 1 or value != int(value):
            raise RooflineError(f"{name} must be a whole number of at least 1, got {value!r}")
    if model.num_heads % tp:
        raise RooflineError(f"tp={tp} does not divide {model.id}'s {model.num_heads} attention heads")
    if model.attention.kind != "mla" and tp > model.num_kv_heads:
        raise RooflineError(f"tp={tp} is larger than {model.id}'s {model.num_kv_heads} KV heads; "
                            f"use tp <= {model.num_kv_heads} and pipeline stages for more chips")
    if pp > model.num_layers:
        raise RooflineError(f"pp={pp} is larger than {model.id}'s {model.num_layers} layers")
    if ep > 1:
        if model.moe is None:
            raise RooflineError(f"ep={ep}: {model.id} has no experts")
        if ep != tp:
            raise RooflineError(f"ep={ep}: experts are spread over the tensor-parallel group, so ep must be "
                                f"1 or equal tp={tp}")
        if model.moe.num_experts % ep:
            raise RooflineError(f"ep={ep} does not divide {model.id}'s {model.moe.num_experts} experts")
    return layout


def default_microbatches(batch, pp):
    """Micro-batches in flight: one per stage, at most one per sequence."""
    return max(1, min(pp, batch))


def make_layout(model, batch, tp=1, pp=1, ep=None, microbatches=None):
    """A checked Layout; ep defaults to tp for MoE models, micro-batches to min(pp, batch)."""
    if ep is None:
        ep = tp if model.moe is not None and tp > 1 and model.moe.num_experts % tp == 0 else 1
    if microbatches is None:
        microbatches = default_microbatches(batch, pp)
    if microbatches > batch:
        raise RooflineError(f"{microbatches} micro-batches need at least as many sequences; batch is {batch}")
    return check_layout(model, Layout(tp, pp, ep, microbatches))


def candidate_layouts(model, hardware, chips, batch):
    """Every valid (tp, pp) split of `chips`, TP kept inside the chip's scale-up domain."""
    domain = scale_up_domain(hardware)
    layouts = []
    for tp in range(1, chips + 1):
        if chips % tp or tp > domain:
            continue
        try:
            layouts.append(make_layout(model, batch, tp=tp, pp=chips // tp))
        except RooflineError:
            continue
    if not layouts:
        raise RooflineError(f"{chips} chips cannot be split into tensor-parallel groups of at most "
                            f"{domain} chips and at most {model.num_layers} pipeline stages for {model.id}")
    return layouts


def scale_up_domain(hardware):
    """Chips one scale-up link reaches (1 if the chip has none)."""
    for chip_link in hardware.links:
        if chip_link.role == "scale-up":
            return chip_link.domain or 1 << 30
    return 1


def choose_links(hardware, layout, link_id=None):
    """(TP link, PP link) for a layout: scale-up inside its domain, else scale-out; `link_id` forces one.

    RooflineError if several chips are asked for and the chip has no link that reaches them.
    """
    if layout.chips == 1:
        return None, None
    if link_id is not None:
        forced = hardware.link(link_id=link_id)
        return forced, forced
    scale_up = next((cl for cl in hardware.links if cl.role == "scale-up"), None)
    scale_out = next((cl for cl in hardware.links if cl.role == "scale-out"), None)
    domain = scale_up_domain(hardware)

    def reach(chips):
        if scale_up is not None and chips <= domain:
            return scale_up
        if scale_out is not None:
            return scale_out
        raise RooflineError(f"{hardware.id} has no link that joins {chips} chips "
                            f"(links: {', '.join(cl.link.id for cl in hardware.links) or 'none'})")

    return (reach(layout.tp) if layout.tp > 1 else None), (reach(layout.chips) if layout.pp > 1 else None)
