"""Several chips: the parallel layouts a model allows and the links they use (roofline.collectives
prices the traffic).

Tensor parallelism (TP, Megatron-LM: Shoeybi et al. 2019, arXiv 1909.08053) splits every weight
matrix and the attention heads over `tp` chips and all-reduces the layer's output twice per layer
(after attention and after the FFN). Pipeline parallelism (PP) gives each of `pp` stages a slice
of the layers; only the residual stream, tokens x hidden x activation bytes, crosses between
stages (14 KB per token for hidden 7168 at bf16). Expert parallelism (EP) places whole experts on
`ep` chips and moves routed tokens with an all-to-all dispatch and combine (DeepSeek-V3,
arXiv 2412.19437, Sec. 3.4). With ep = tp the experts are spread over the tensor-parallel group;
with ep a multiple of tp larger than it, a pipeline stage has ep chips: attention (and the dense
FFN, shared experts, embedding and LM head) runs tensor-parallel over tp chips in ep/tp
data-parallel attention groups, each serving its own share of the sequences, while the routed
experts are spread over all ep chips (DeepSeek-V3 decodes with EP320 and data-parallel attention,
prefills with EP32).
"""
import math
from dataclasses import dataclass, replace

from .errors import RooflineError


#: The most chips a question may ask for. The largest accelerator clusters announced by 2025 hold
#: about 2e5 GPUs (xAI Colossus, 200,000 H100/H200); a million chips is past any deployment, so a
#: larger count is a typo, not a question (and would only make the layout search slower).
MAX_CHIPS = 1_000_000


def attention_groups(tp, ep):
    """Data-parallel attention groups per pipeline stage [1]: ep / tp when ep > tp, else 1.

    .. math:: g = \\begin{cases} n_{ep} / n_{tp} & n_{ep} > n_{tp} \\\\ 1 & \\text{otherwise} \\end{cases}

    With experts spread wider than the tensor-parallel group, a stage of n_ep chips runs attention
    in n_ep / n_tp groups of n_tp chips, each serving its own sequences (DeepSeek-V3,
    arXiv 2412.19437, Sec. 3.4: EP with data-parallel attention).
    """
    return ep // tp if ep > tp else 1


@dataclass(frozen=True)
class Layout:
    """How a model is spread over chips: `pp` stages of tp chips, or of ep chips when ep > tp.

    ep = 1: routed experts are split like every other GEMM over the tp chips; ep dividing tp: ep
    expert groups of tp/ep chips (MoE EP x MoE TP = TP), each expert split over its group; ep = tp:
    whole experts over the tensor-parallel group; ep > tp (a multiple of tp): ep / tp data-parallel
    attention groups of tp chips each, routed experts over all ep chips of the stage (with ep larger
    than the expert count, one expert a chip and ep - N redundant copies of hot ones).
    A tp larger than a GQA model's KV heads (a multiple of them) replicates each KV head over
    tp / kv_heads ranks, as vLLM, SGLang and TensorRT-LLM do.
    """
    tp: int = 1
    pp: int = 1
    ep: int = 1
    microbatches: int = 1

    @property
    def attention_groups(self):
        """Data-parallel attention groups per stage (attention_groups(tp, ep))."""
        return attention_groups(self.tp, self.ep)

    @property
    def stage_chips(self):
        """Chips of one pipeline stage: tp x attention groups."""
        return self.tp * self.attention_groups

    @property
    def expert_chips(self):
        """Chips the routed experts of one layer are spread over: max(tp, ep)."""
        return max(self.tp, self.ep)

    @property
    def chips(self):
        return self.stage_chips * self.pp

    @property
    def moe_tp(self):
        """Chips each routed expert is split over (MoE tensor parallelism): tp / ep when ep divides
        tp (ep = 1: tp), 1 when whole experts sit on single chips (ep >= tp)."""
        return self.tp // self.ep if self.ep <= self.tp else 1

    @property
    def moe_ep(self):
        """Expert groups the routed experts are spread over (MoE expert parallelism): ep."""
        return self.ep

    @property
    def min_batch(self):
        """The fewest sequences the layout serves: one per attention group in each micro-batch."""
        return self.attention_groups * self.microbatches

    def describe(self):
        if self.attention_groups > 1:
            groups = self.attention_groups
            parts = [f"TP={self.tp}", f"EP={self.ep} ({groups} data-parallel attention groups)", f"PP={self.pp}"]
        else:
            parts = [f"TP={self.tp}", f"PP={self.pp}"] + ([f"EP={self.ep}"] if self.ep > 1 else [])
        if self.pp > 1:
            parts.append(f"{self.microbatches} micro-batch{'es' if self.microbatches > 1 else ''}")
        return ", ".join(parts)


def check_chips(chips, name="chips"):
    """`chips` as an int in [1, MAX_CHIPS], or RooflineError naming `name` and the limit."""
    if isinstance(chips, bool) or chips != chips or chips < 1 or chips != int(chips):
        raise RooflineError(f"{name} must be a whole number of at least 1, got {chips!r}")
    if chips > MAX_CHIPS:
        raise RooflineError(f"{name} must be at most {MAX_CHIPS:,} (more chips than any cluster built), got {chips!r}")
    return int(chips)


def check_layout(model, layout, batch=None):
    """RooflineError if `layout` does not divide `model` (or, given `batch`, leaves an attention
    group of a micro-batch without a sequence); returns the layout. The one place the layout rules live."""
    tp, pp, ep = layout.tp, layout.pp, layout.ep
    for name, value in (("tp", tp), ("pp", pp), ("ep", ep), ("micro-batches", layout.microbatches)):
        if isinstance(value, bool) or value != value or value < 1 or value != int(value):
            raise RooflineError(f"{name} must be a whole number of at least 1, got {value!r}")
    check_chips(layout.chips, "chips of the layout (tp x pp, or ep x pp)")
    if model.num_heads % tp:
        raise RooflineError(f"tp={tp} does not divide {model.id}'s {model.num_heads} attention heads")
    if model.attention.kind != "mla" and tp > model.num_kv_heads and tp % model.num_kv_heads:
        raise RooflineError(f"tp={tp} is larger than {model.id}'s {model.num_kv_heads} KV heads and not a multiple "
                            f"of them: each rank would hold part of a KV head (use a multiple of "
                            f"{model.num_kv_heads}, which replicates each KV head over tp/{model.num_kv_heads} ranks)")
    if pp > model.num_layers:
        raise RooflineError(f"pp={pp} is larger than {model.id}'s {model.num_layers} layers")
    if ep > 1:
        if model.moe is None:
            raise RooflineError(f"ep={ep}: {model.id} has no experts")
        if ep % tp and tp % ep:
            raise RooflineError(f"ep={ep} is neither a divisor nor a multiple of tp={tp}: use a divisor of tp (expert "
                                f"groups of tp/ep chips that split each expert, as an MoE TP x EP = TP layout does) "
                                f"or a multiple of tp (ep/tp data-parallel attention groups)")
        if ep <= model.moe.num_experts and model.moe.num_experts % ep:
            raise RooflineError(f"ep={ep} does not divide {model.id}'s {model.moe.num_experts} experts (more ranks "
                                f"than experts hold one expert each, the rest redundant copies of hot experts)")
    groups = layout.attention_groups
    if batch is not None and layout.microbatches > batch:
        raise RooflineError(f"{layout.microbatches} micro-batches need at least as many sequences; batch is {batch}")
    if batch is not None and groups > 1 and batch < layout.min_batch:
        each = "" if layout.microbatches == 1 else f" in each of the {layout.microbatches} micro-batches"
        raise RooflineError(f"ep={ep} over tp={tp} makes {groups} data-parallel attention groups, each needing a "
                            f"sequence{each}: batch must be at least {layout.min_batch}, got {batch}")
    return layout


def moe_ep_from(model, tp, ep, moe_tp):
    """The ep of a layout given as MoE TP (`moe_tp`, chips each routed expert is split over) and
    tensor parallelism: ep = tp / moe_tp (MoE TP x MoE EP = TP); `ep` as given when moe_tp is None.
    RooflineError when moe_tp is not a whole number dividing tp, contradicts a given ep, or the
    model has no experts."""
    if moe_tp is None:
        return ep
    if isinstance(moe_tp, bool) or not isinstance(moe_tp, int) or moe_tp < 1:
        raise RooflineError(f"moe-tp must be a whole number of at least 1, got {moe_tp!r}")
    if model.moe is None:
        raise RooflineError(f"moe-tp={moe_tp}: {model.id} has no experts")
    if tp is None:
        raise RooflineError(f"moe-tp={moe_tp} needs the tensor-parallel width it splits (--tp)")
    if tp % moe_tp:
        raise RooflineError(f"moe-tp={moe_tp} does not divide tp={tp}: each expert is split over moe-tp of the "
                            f"tp chips, and the tp / moe-tp expert groups must be whole (MoE TP x MoE EP = TP)")
    implied = tp // moe_tp
    if ep is not None and ep != implied and not (moe_tp == 1 and ep > tp):
        raise RooflineError(f"moe-tp={moe_tp} with tp={tp} means ep={implied}, not ep={ep} (MoE TP x MoE EP = TP; "
                            f"wider ep needs moe-tp=1)")
    return implied if ep is None else ep


def default_ep(model, tp):
    """The expert-parallel width when none is asked: the TP group (ep = tp) for MoE models whose
    experts it divides, else 1 (experts split like every other GEMM)."""
    return tp if model.moe is not None and tp > 1 and model.moe.num_experts % tp == 0 else 1


def default_microbatches(batch, pp, groups=1):
    """Micro-batches in flight: one per stage, at most one per `groups` sequences (one per attention group)."""
    return max(1, min(pp, batch // groups))


def for_batch(layout, batch):
    """`layout` with the default micro-batches for `batch` sequences."""
    return replace(layout, microbatches=default_microbatches(batch, layout.pp, layout.attention_groups))


def make_layout(model, batch, tp=1, pp=1, ep=None, microbatches=None):
    """A checked Layout; ep defaults to default_ep, micro-batches to default_microbatches."""
    if ep is None:
        ep = default_ep(model, tp)
    if microbatches is None:
        microbatches = default_microbatches(batch, pp, attention_groups(tp, ep) if tp >= 1 else 1)
    return check_layout(model, Layout(tp, pp, ep, microbatches), batch)


def divisors(n):
    """The divisors of a positive integer n, ascending (O(sqrt n) work)."""
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


def tp_options(model, max_tp=None):
    """Tensor-parallel widths a model allows: divisors of the heads; for GQA wider than the KV heads
    only multiples of them (each KV head replicated over tp / H_kv ranks, as vLLM, SGLang and
    TensorRT-LLM do; MLA shares its latent cache over all heads); at most `max_tp`."""
    kv = model.num_kv_heads
    return [tp for tp in divisors(model.num_heads) if (max_tp is None or tp <= max_tp)
            and (model.attention.kind == "mla" or tp <= kv or tp % kv == 0)]


def ep_options(model, tp, batch=None, max_stage_chips=None):
    """Expert-parallel widths for a TP width: default_ep first, then the wide ones (ep a multiple of
    tp dividing the experts, ep / tp attention groups at most `batch`, ep at most `max_stage_chips`)."""
    options = [default_ep(model, tp)]
    if model.moe is None:
        return options
    for ep in divisors(model.moe.num_experts):
        if ep >= 2 * tp and ep % tp == 0 and (batch is None or ep // tp <= batch) \
                and (max_stage_chips is None or ep <= max_stage_chips):
            options.append(ep)
    return options


def candidate_layouts(model, hardware, chips=None, batch=1, max_chips=None, max_tp="domain"):
    """Every valid layout of exactly `chips` chips, or of at most `max_chips` (the one enumerator).

    tp runs over the divisors of the heads (at most the chip's scale-up domain with
    max_tp="domain", at most max_tp if a number, unlimited with None), ep over ep_options, pp over
    the stage counts that make the chips (or up to the layer count); micro-batches default for
    `batch` (batch None: layouts for any batch, each valid from its min_batch). Work grows with
    the divisors of the heads and experts and with the layers, never with the chip count.
    """
    if chips is not None:
        chips = check_chips(chips)
    top = chips if chips is not None else check_chips(max_chips, "max-chips")
    tp_limit = scale_up_domain(hardware) if max_tp == "domain" else max_tp
    layouts = []
    for tp in tp_options(model, tp_limit if chips is None else min(chips, tp_limit or chips)):
        for ep in ep_options(model, tp, batch, top):
            stage = tp * attention_groups(tp, ep)
            if chips is not None:
                stages = [chips // stage] if chips % stage == 0 else []
            else:
                stages = range(1, top // stage + 1)
            for pp in stages:
                if pp > model.num_layers:
                    break
                layout = Layout(tp, pp, ep)
                layouts.append(for_batch(layout, batch) if batch is not None else layout)
    if chips is not None and not layouts:
        raise RooflineError(f"{chips} chips cannot be split into tensor-parallel groups of at most "
                            f"{tp_limit} chips and at most {model.num_layers} pipeline stages for {model.id}")
    return layouts


def scale_up_domain(hardware):
    """Chips one scale-up link reaches (1 if the chip has none)."""
    for chip_link in hardware.links:
        if chip_link.role == "scale-up":
            return chip_link.domain or 1 << 30
    return 1


def choose_links(hardware, layout, link_id=None):
    """(TP link, PP link, EP link) of a layout: scale-up inside its domain, else scale-out; `link_id`
    forces one. The EP link carries the all-to-all: the TP link when ep <= tp, else the link that
    joins a stage's ep chips; None where a layout has no such traffic.

    RooflineError if several chips are asked for and the chip has no link that reaches them.
    """
    if layout.chips == 1:
        return None, None, None
    if link_id is not None:
        forced = hardware.link(link_id=link_id)
        return forced, forced, forced
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

    tp_link = reach(layout.tp) if layout.tp > 1 else None
    pp_link = reach(layout.chips) if layout.pp > 1 else None
    ep_link = reach(layout.stage_chips) if layout.ep > layout.tp else (tp_link if layout.ep > 1 else None)
    return tp_link, pp_link, ep_link
