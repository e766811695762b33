"""Speculative decoding: a cheap draft proposes k tokens, the model verifies them in one step.

A round drafts k tokens (k decode steps of a small draft model, or of the model's own
multi-token-prediction layers) and then runs the verifier once over k + 1 query tokens per
sequence. With each drafted token accepted with probability a, independently (Leviathan, Kalman &
Matias, "Fast Inference from Transformers via Speculative Decoding", ICML 2023, arXiv:2211.17192,
Sec. 3.1), a round yields on average

.. math:: E = \\frac{1 - a^{k+1}}{1 - a} \\quad (E = k + 1 \\text{ at } a = 1)

tokens. A verifier step over k + 1 tokens reads the weights and each sequence's KV cache once,
like a plain decode step, but does k + 1 times the FLOPs: nearly free while the step is
memory-bound (small batches), not once the weight GEMMs turn compute-bound. The round takes
t_round = k t_draft + t_verify, so

.. math:: \\text{speed-up} = \\frac{E \\, t_{step}}{k \\, t_{draft} + t_{verify}}

against plain decoding (t_step). With t_verify = t_step and c = t_draft / t_step this is the
paper's Theorem 3.8, E / (k c + 1).

A mean acceptance hides how acceptance varies from token to token: E is convex in a, so when a
varies, the mean of E exceeds E of the mean. The paper's own T5 runs came out up to 30% faster
than Theorem 3.8 predicts from their mean a (its Table 4); treat a here as an effective rate.
"""
from dataclasses import dataclass, field, replace

import numpy as np

from . import dtypes
from .api import step_result
from .deployment import evaluate as evaluate_layout
from .sharding import per_chip_memory
from .errors import RooflineError
from .mathops import is_symbolic
from .memory import kv_cache_bytes, weight_bytes
from .operators import mtp_model
from .parallel import Layout, check_layout
from .results import Record
from .scenario import build, evaluate, positive_int, resolve_model

MTP = "mtp"


def expected_tokens_per_step(acceptance, draft_tokens):
    """Expected tokens one round of speculative decoding yields [token] (Leviathan et al. 2023, eq. 1).

    .. math:: E = \\frac{1 - a^{k+1}}{1 - a}, \\qquad E(a = 1) = k + 1

    acceptance a [1] in [0, 1] (probability that a drafted token is accepted, i.i.d.),
    draft_tokens k [token]. The tokens accepted before the first rejection, plus the one the
    verifier supplies at the rejection (or after k acceptances): a capped geometric variable.
    """
    if is_symbolic(acceptance, draft_tokens):
        return (1 - acceptance ** (draft_tokens + 1)) / (1 - acceptance)
    a = np.asarray(acceptance, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        tokens = np.where(a == 1, draft_tokens + 1.0, (1 - a ** (draft_tokens + 1)) / (1 - a))
    return tokens if tokens.ndim else float(tokens)


def walltime_improvement(acceptance, draft_tokens, cost_ratio):
    """Speed-up over plain decoding when verifying costs one plain step (Leviathan et al. 2023, Thm 3.8).

    .. math:: \\frac{1 - a^{k+1}}{(1 - a)(k c + 1)}

    cost_ratio c [1]: time of one draft step / time of one step of the model.
    """
    return expected_tokens_per_step(acceptance, draft_tokens) / (draft_tokens * cost_ratio + 1)


def operations_factor(acceptance, draft_tokens, flops_ratio):
    """Factor by which speculative decoding multiplies the total arithmetic (Leviathan et al. 2023, Thm 3.11).

    .. math:: \\frac{(1 - a)(k \\hat c + k + 1)}{1 - a^{k+1}}

    flops_ratio c-hat [1]: FLOPs per token of the draft / of the model. Rejected drafts waste work.
    """
    return (draft_tokens * flops_ratio + draft_tokens + 1) / expected_tokens_per_step(acceptance, draft_tokens)


def round_time(draft_step_time, verify_time, draft_tokens):
    """Time of one round [s]: k draft steps and one verifier step over k + 1 tokens.

    .. math:: t_{round} = k \\, t_{draft} + t_{verify}

    Engines differ in bookkeeping around this: gpt-fast, for one, runs the draft once more when
    all k tokens are accepted (probability a^k) to fill the draft's cache, a few percent more.
    """
    return draft_tokens * draft_step_time + verify_time


def speedup(tokens_per_step, step_time, round_time_s):
    """Speed-up per user over plain decoding [1]: E t_step / t_round."""
    return tokens_per_step * step_time / round_time_s


def acceptance_for_speedup(target, draft_tokens, draft_ratio, verify_ratio=1.0):
    """The acceptance a at which speculative decoding reaches a given speed-up [1].

    Solves E(a, k) / (k r_draft + r_verify) = target for a in [0, 1] by bisection (E increases
    with a). draft_ratio r_draft = t_draft / t_step, verify_ratio r_verify = t_verify / t_step.
    RooflineError if the target lies outside what a in [0, 1] can give.
    """
    scale = draft_tokens * draft_ratio + verify_ratio
    low, high = 0.0, 1.0
    reachable = (expected_tokens_per_step(low, draft_tokens) / scale, expected_tokens_per_step(high, draft_tokens) / scale)
    if not reachable[0] <= target <= reachable[1]:
        raise RooflineError(f"a speed-up of {target:g} is outside what acceptance 0..1 gives here "
                            f"({reachable[0]:.3g} to {reachable[1]:.3g})")
    for _ in range(60):
        middle = (low + high) / 2
        if expected_tokens_per_step(middle, draft_tokens) / scale < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def mtp_weight_bytes(model):
    """Bytes of the MTP module(s) alone [B]: their decoder layers, projections and norms, without
    the embedding and LM head they share with the main model."""
    mtp = mtp_model(model)
    w = dtypes.bytes_per_value(model.dtypes["weights"])
    h = model.hidden_size
    shared = model.vocab_size * h * (1 if model.tie_embeddings else 2)
    return weight_bytes(mtp) - shared * w + mtp.num_layers * (2 * h * h + 2 * h) * w


@dataclass
class SpeculativeResult(Record):
    """Speculative decoding of one model on one chip: the round, the speed-up and the cost per token."""
    model: str
    hardware: str
    draft: str                    # draft model id, or "mtp"
    mode: str
    batch: int
    context: int
    draft_tokens: int             # k
    acceptance: float             # a
    tokens_per_step: float        # E: tokens per round (per verifier step)
    step_time_s: float            # plain decode step of the model
    draft_step_time_s: float      # one draft step
    verify_time_s: float          # one verifier step over k + 1 tokens
    round_time_s: float           # k draft steps + one verifier step
    draft_cost_ratio: float       # t_draft / t_step
    verify_cost_ratio: float      # t_verify / t_step
    speedup: float                # per user, over plain decoding
    tokens_per_s_per_user: float
    tokens_per_s: float
    memory_needed_bytes: float    # model and draft: weights, KV caches, activations
    capacity_bytes: float
    fits: bool
    usd_per_mtok: float = None
    joules_per_token: float = None
    tokens_per_kwh: float = None
    power_w: float = None
    notes: list = field(default_factory=list)
    base: object = None           # the plain decode StepResult

    def to_dict(self):
        out = super().to_dict()
        out["base"] = self.base.to_dict() if self.base is not None else None
        return out


def check_acceptance(acceptance):
    """`acceptance` as a float in [0, 1], or RooflineError."""
    try:
        value = float(acceptance)
    except (TypeError, ValueError):
        value = None
    if value is None or not 0 <= value <= 1 or isinstance(acceptance, bool):
        raise RooflineError(f"acceptance must be a number between 0 and 1 (the probability that a drafted token "
                            f"is accepted), got {acceptance!r}")
    return value


def _draft_layout(draft_model, layout, batch):
    """The layout a draft runs on beside the model: the model's tensor-parallel width (and its expert
    parallelism, for MTP modules that share the model's experts) in one stage where the draft
    allows it, else one chip."""
    ep = layout.ep if draft_model.moe is not None and draft_model.moe.num_experts % layout.ep == 0 else 1
    for candidate in (Layout(layout.tp, 1, ep, 1), Layout(layout.tp, 1, 1, 1), Layout()):
        try:
            return check_layout(draft_model, candidate, batch)
        except RooflineError:
            continue
    return Layout()


def decode(model, hardware, draft, draft_tokens, acceptance, batch=1, context=1024, draft_weights_dtype=None,
           **options):
    """Speculative decoding of `model`, drafting with `draft` (a model id or Model, or "mtp").

    draft_tokens k (for "mtp" default: the model's MTP depth, mtp_layers), acceptance a in [0, 1].
    `options` are roofline.scenario.build's (chips, tp, pp, ep, mode, calibration, dtypes, price,
    ...): the model runs on that layout; the draft runs beside it (_draft_layout) and shares its
    chips, memory and time. The draft model runs at `draft_weights_dtype` (default: the
    `weights_dtype` option, else its own native dtype). Returns a SpeculativeResult: tokens per
    round, the speed-up per user, tokens/s with speculation and the cost and energy per token;
    `base` holds the plain decode step.
    """
    a = check_acceptance(acceptance)
    base_scenario = build(model, hardware, "decode", batch=batch, context=context, **options)
    base = step_result(base_scenario)
    target, chip, layout = base_scenario.model, base_scenario.hardware, base_scenario.layout
    is_mtp = isinstance(draft, str) and draft == MTP
    if draft_tokens is None and is_mtp:
        draft_tokens = mtp_model(target).num_layers
    k = positive_int(draft_tokens, "draft tokens")
    ceiling = base_scenario.ceiling
    notes = list(base.notes)

    verify = evaluate(replace(base_scenario, query_tokens=k + 1))
    verify_time = float(verify.cycle_time)
    memory = verify.per_chip_memory["total"]

    if is_mtp:
        draft_id, drafter = MTP, mtp_model(target)
        draft_layout = _draft_layout(drafter, layout, batch)
        draft_time = float(evaluate_layout("mtp", drafter, chip, batch, context, draft_layout, ceiling,
                                           base_scenario.link).cycle_time)
        memory += (mtp_weight_bytes(target) + kv_cache_bytes(drafter, batch, context + k)) / draft_layout.stage_chips
    else:
        drafter = resolve_model(draft, None, draft_weights_dtype or options.get("weights_dtype"),
                                options.get("kv_dtype"), options.get("activations_dtype"))
        draft_id = drafter.id
        draft_layout = _draft_layout(drafter, layout, batch)
        draft_time = float(evaluate_layout("decode", drafter, chip, batch, context, draft_layout, ceiling,
                                           base_scenario.link).cycle_time)
        draft_memory = per_chip_memory(drafter, draft_layout, batch, context + k, batch)
        memory += draft_memory["weights"] + draft_memory["kv_cache"]
        if drafter.vocab_size != target.vocab_size:
            notes.append(f"draft {drafter.id} has a vocabulary of {drafter.vocab_size}, {target.id} of "
                         f"{target.vocab_size}: speculative decoding needs a shared tokenizer")
    if layout.chips > 1:
        notes.append(f"the draft runs on {draft_layout.describe()} beside the model's {layout.describe()}")

    tokens = expected_tokens_per_step(a, k)
    t_round = round_time(draft_time, verify_time, k)
    per_user = tokens / t_round
    fits = memory <= chip.mem_capacity
    if not fits:
        notes.append(f"with speculation: needs {memory / 1e9:.1f} GB per chip, {chip.id} has "
                     f"{chip.mem_capacity / 1e9:.1f} GB")
    economics, _ = base_scenario.pricing.fields(batch * per_user, chips=layout.chips)
    return SpeculativeResult(
        model=target.id, hardware=chip.id, draft=draft_id, mode=base.mode, batch=base.batch, context=base.context,
        draft_tokens=k, acceptance=a, tokens_per_step=tokens, step_time_s=base.time_s,
        draft_step_time_s=draft_time, verify_time_s=verify_time, round_time_s=t_round,
        draft_cost_ratio=draft_time / base.time_s, verify_cost_ratio=verify_time / base.time_s,
        speedup=speedup(tokens, base.time_s, t_round), tokens_per_s_per_user=per_user,
        tokens_per_s=batch * per_user, memory_needed_bytes=float(memory), capacity_bytes=chip.mem_capacity,
        fits=bool(fits), notes=notes, base=base, **economics)
