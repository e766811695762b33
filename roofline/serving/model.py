"""The serving model: a deployment under load, from the mixed step of continuous batching.

A served replica runs continuous batching with chunked prefill: every step takes the decodes of
the B running sequences plus prompt chunks, up to a token budget N (engines.Engine). The step time
comes from the per-operator step path (deployment.evaluate, phase "mixed"), plus the engine's
fixed costs per step and per scheduled sequence:

.. math:: t_{dec}(B) = t_{mixed}(B, 0) + \\tau_{step} + B \\, \\tau_{seq}, \\qquad
          \\Delta(B) = k \\, [t_{mixed}(B, c) - t_{mixed}(B, 0) + \\tau_{seq}]

(an engine that does not mix prefill into decode steps pays the chunk's own step,
t_mixed(0, c) + tau_step, instead of the increment). A step that carries prompt tokens also pays
E = tau_eager L (L decoder layers per stage): the engines replay captured CUDA graphs for
decode-only steps, and launch a mixed or prefill step's kernels from the host one by one; a share
p = min(1, a k) of the steps carry a chunk, so t gains p E, and a prompt's own k steps k E. Delta is what one prompt's prefill adds to the steps it rides in: P = ISL (1 - h) new tokens
(h: prefix-cache hit rate) in k = ceil(P / c) chunks of c = min(P, N - B) tokens. Mean-value
analysis (Little's law, Reiser & Lavenberg, J. ACM 27(2) 1980) closes the loop at throughput X
[requests/s], with D = OSL - 1 decode steps per request:

.. math:: B = X D t, \\quad a = X t, \\quad t = t_{dec}(B) + a \\, \\Delta(B)

.. math:: TTFT = \\tau_{req} + W_q + R + k\\,[t_{dec}(B) + (1 + a)\\,\\Delta(B)/k], \\qquad
          E2E = TTFT + D\\,t, \\qquad TPOT = (E2E - TTFT)/D = t

Closed-loop clients (concurrency C, each sending its next request when the last completes, as
serving benchmarks do) set X = C / E2E; open-loop Poisson arrivals fix X = lambda. The engine's
running-sequence limit and the KV cache (memory fraction, block size) cap the sequences in
flight; the excess waits in the admission queue W_q (closed loop: Little's law on the C clients;
open loop: Sakasegawa's M/G/c approximation, Sakasegawa 1977, Ann. Inst. Stat. Math. 29). A
request waits the rest of the step in progress (the mean residual of the step lengths,
`residual_step`) before its chunk is scheduled, and its chunk shares its step with the a others
that arrived meanwhile.

Disaggregated serving (prefill and decode on separate pools) is in serving.disaggregated.
"""
import math
from dataclasses import dataclass, field

import numpy as np

from ..deployment import evaluate
from ..sharding import per_chip_memory
from ..errors import RooflineError
from ..operators import MixedShape

#: mean-value iterations (damped); the fixed point settles in 10-20
ITERATIONS = 60


@dataclass(frozen=True)
class Workload:
    """Request lengths [tokens] (uniform between lo and hi), load, prefix-cache hit rate."""
    isl: tuple                 # (lo, hi)
    osl: tuple                 # (lo, hi)
    concurrency: float = None  # closed-loop clients
    request_rate: float = None  # [requests/s] Poisson arrivals
    prefix_hit: float = 0.0    # [1] share of prompt tokens found in the prefix cache
    requests_per_client: float = None  # a benchmark run's requests per client (None: steady state only)

    @property
    def mean_isl(self):
        return (self.isl[0] + self.isl[1]) / 2

    @property
    def mean_osl(self):
        return (self.osl[0] + self.osl[1]) / 2

    @property
    def closed(self):
        return self.concurrency is not None


def workload(model, isl, osl, concurrency=None, request_rate=None, prefix_hit=0.0, requests_per_client=None):
    """A checked Workload: `isl`, `osl` a length or a (lo, hi) range; exactly one of concurrency and
    request rate, positive; OSL at least 2; ISL + OSL within the model's context window.
    `requests_per_client` (closed loop): the run's length, for its start-up transient."""
    isl, osl = _length_range(isl, "ISL"), _length_range(osl, "OSL")
    if osl[0] < 2:
        raise RooflineError(f"OSL must be at least 2 output tokens (TPOT = (E2E - TTFT) / (OSL - 1)), got {osl[0]:g}")
    if isl[1] + osl[1] > model.max_context:
        raise RooflineError(f"ISL {isl[1]:g} + OSL {osl[1]:g} tokens exceed {model.id}'s context window of "
                            f"{model.max_context} tokens")
    if (concurrency is None) == (request_rate is None):
        raise RooflineError("give exactly one of concurrency (closed-loop clients) and request rate (requests/s)")
    for name, value in (("concurrency", concurrency), ("request rate", request_rate)):
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and math.isfinite(value) and value > 0):
            raise RooflineError(f"{name} must be a positive number, got {value!r}")
    if not (isinstance(prefix_hit, (int, float)) and 0 <= prefix_hit < 1):
        raise RooflineError(f"prefix hit rate must be in [0, 1), got {prefix_hit!r}")
    if requests_per_client is not None and not (concurrency is not None and requests_per_client >= 1):
        raise RooflineError(f"requests per client must be at least 1, with a concurrency; got {requests_per_client!r}")
    return Workload(isl, osl, concurrency, request_rate, float(prefix_hit), requests_per_client)


def _length_range(value, name):
    lo, hi = value if isinstance(value, (tuple, list)) else (value, value)
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or v < 1:
            raise RooflineError(f"{name} must be a whole number of tokens of at least 1 (or a range lo:hi), got {v!r}")
    if lo > hi:
        raise RooflineError(f"{name} range {lo}:{hi} has its low end above its high end")
    return (int(lo), int(hi))


@dataclass(frozen=True)
class Pool:
    """Workers of one layout: an aggregated deployment's replicas, or one side of xPyD."""
    layout: object
    workers: int = 1

    @property
    def chips(self):
        return self.layout.chips * self.workers


def request_shape(load, engine):
    """(ISL, OSL, new prompt tokens P = ISL (1 - h), prompt tokens found in the prefix cache ISL h,
    decode steps D = OSL - 1, KV tokens a running sequence holds) of a mean request of `load` [tokens]."""
    isl, osl = load.mean_isl, load.mean_osl
    return isl, osl, isl * (1 - load.prefix_hit), isl * load.prefix_hit, osl - 1, held_tokens(load, engine)


def held_tokens(workload, engine):
    """KV tokens one running sequence holds [tokens]: ISL + OSL (reserved whole) or ISL + OSL/2 (paged,
    on average over its life), rounded up to whole blocks."""
    tokens = workload.isl[1] + (workload.osl[1] if engine.reserve_full_sequence else workload.mean_osl / 2)
    return math.ceil(tokens / engine.block_size) * engine.block_size


def kv_capacity(model, hardware, layout, engine, tokens):
    """(sequences of `tokens` KV tokens one worker's cache holds, KV bytes per sequence on the fullest chip).

    .. math:: S = G \\left\\lfloor \\frac{f M - W - A}{KV_1} \\right\\rfloor
              \\quad (f (M - W - A) \\text{ where the fraction applies to free memory})

    M the chip's memory, W its weights, A the activations of one full token budget, KV_1 one
    sequence's cache on the fullest chip, G the data-parallel attention groups (each holds its own
    sequences). RooflineError when the weights leave no room.
    """
    groups = layout.attention_groups
    base = per_chip_memory(model, layout, groups, tokens, engine.max_batched_tokens)
    capacity = hardware.mem_capacity
    fixed = base["weights"] + base["activations"]
    usable = engine.memory_fraction * (capacity - fixed) if engine.fraction_of_free \
        else engine.memory_fraction * capacity - fixed
    if usable <= 0 or usable < base["kv_cache"]:
        raise RooflineError(f"{model.id} on {layout.describe()} of {hardware.id}: weights and activations take "
                            f"{fixed / 1e9:.1f} GB per chip, the {engine.name} engine may use "
                            f"{engine.memory_fraction * capacity / 1e9:.1f} GB of {capacity / 1e9:.1f} GB; no room for "
                            f"one sequence's KV cache ({tokens} tokens)")
    return int(usable // base["kv_cache"]) * groups, base["kv_cache"]


def host_time(engine, layout, batch):
    """Host time of one decode step [s]: tau_step + (B / G) tau_seq. Each of the G data-parallel
    attention groups runs its own scheduler over its B / G sequences, side by side, so the step
    waits for one group's sampling and streaming, not for all of them in turn."""
    return engine.step_overhead + batch / layout.attention_groups * engine.sequence_overhead


def running_limit(engine, layout, capacity):
    """The most sequences a worker runs at once: the engine's limit per scheduler, one scheduler per
    data-parallel attention group (vLLM's and SGLang's data-parallel ranks, TensorRT-LLM's attention-DP
    ranks each schedule their own batch), and no more than the KV cache holds (`capacity`)."""
    return min(engine.max_sequences * layout.attention_groups, capacity)


class StepTable:
    """Decode-step time and one prompt's prefill increment of a worker, against decode batch B.

    Evaluated on a grid of batches and interpolated linearly between them (the step time is
    smooth in B between the grid points; the grid's ends bound the batches the fixed point visits).
    """

    def __init__(self, model, hardware, layout, ceiling, engine, context, prompt, cached, batches, link_id=None):
        self.batches = np.array(sorted({max(0, int(b)) for b in batches}), dtype=float)
        self.chunk = max(1, min(prompt, engine.max_batched_tokens - int(self.batches[-1]))) if prompt else 0
        self.chunks = math.ceil(prompt / self.chunk) if prompt else 0
        decode, mixed = [], []
        start = cached + (prompt - self.chunk) / 2 if prompt else 0
        for b in self.batches:
            t0 = float(evaluate("mixed", model, hardware, int(b), MixedShape(context, 0), layout, ceiling,
                                link_id, moe_exchange=engine.moe_exchange).cycle_time)
            decode.append(t0 + host_time(engine, layout, b))
            if prompt:
                riders = int(b) if engine.mixed_prefill else 0
                t1 = float(evaluate("mixed", model, hardware, riders,
                                    MixedShape(context, self.chunk, start, 1 / self.chunks), layout, ceiling,
                                    link_id, moe_exchange=engine.moe_exchange).cycle_time)
                alone = 0.0 if engine.mixed_prefill else engine.step_overhead
                mixed.append(self.chunks * (t1 - (t0 if riders else 0.0) + engine.sequence_overhead + alone))
            else:
                mixed.append(0.0)
        self.decode, self.increment = np.array(decode), np.array(mixed)
        # a step that carries prompt tokens runs outside the captured decode graphs: host launch time
        self.eager = engine.eager_layer_overhead * math.ceil(model.num_layers / layout.pp) if prompt else 0.0

    def __call__(self, batch):
        """(t_dec [s], Delta [s]) at decode batch `batch`."""
        return (float(np.interp(batch, self.batches, self.decode)),
                float(np.interp(batch, self.batches, self.increment)))


def mgc_wait(rho, servers, service):
    """Mean wait in an M/G/c queue at utilisation rho, deterministic-like service [s].

    .. math:: W_q \\approx \\frac{\\rho^{\\sqrt{2(c+1)} - 1}}{c (1 - \\rho)} \\, \\frac{1 + c_s^2}{2} \\, S

    (Sakasegawa 1977, with c_s = 0); infinite at rho >= 1.
    """
    if rho >= 1:
        return math.inf
    return rho ** (math.sqrt(2 * (servers + 1)) - 1) / (servers * (1 - rho)) * service / 2


@dataclass
class Serving:
    """A deployment under load, with the serving benchmarks' definitions (times in s, rates per s)."""
    model: str
    hardware: str
    engine: str
    mode: str                   # agg | disagg
    layout: str
    chips: int
    isl: float
    osl: float
    concurrency: float
    request_rate: float         # [requests/s] served
    ttft_s: float
    tpot_s: float
    itl_s: float
    e2e_s: float
    e2e_p50_s: float
    e2e_p90_s: float
    running: float              # sequences decoding at once, per worker
    max_running: int            # the engine and KV-cache limit, per worker
    kv_cache_use: float         # [1] share of the KV cache in use
    queue_s: float              # admission wait inside TTFT
    saturated: bool
    ceiling_mode: str
    engine_costs: str
    extra: dict = field(default_factory=dict)

    @property
    def interactivity(self):
        """Tokens/s per user: 1 / TPOT."""
        return 1 / self.tpot_s if self.tpot_s > 0 else math.inf

    @property
    def output_tokens_per_s(self):
        return self.request_rate * self.osl

    @property
    def total_tokens_per_s(self):
        return self.request_rate * (self.isl + self.osl)

    def to_dict(self):
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out.update(interactivity_tok_s_per_user=self.interactivity,
                   output_tokens_per_s=self.output_tokens_per_s,
                   output_tokens_per_s_per_chip=self.output_tokens_per_s / self.chips,
                   total_tokens_per_s_per_chip=self.total_tokens_per_s / self.chips,
                   requests_per_s=self.request_rate)
        out.update(self.extra)
        return out


def _e2e_spread(ttft, tpot, workload):
    """(p50, p90) of E2E over the drawn output lengths (uniform between the OSL range's ends)."""
    lo, hi = workload.osl
    return tuple(ttft + (lo + q * (hi - lo) - 1) * tpot for q in (0.5, 0.9))


def aggregated(model, hardware, pool, ceiling, engine, load, link_id=None, table=None):
    """Serving of `load` (a Workload) on `pool.workers` replicas of `pool.layout` (prefill and decode
    on the same chips). `table`: a StepTable to reuse (frontier sweeps)."""
    replicas = pool.workers
    isl, osl, prompt, cached, decodes, held = request_shape(load, engine)
    capacity = kv_capacity(model, hardware, pool.layout, engine, held)[0]
    n_max = running_limit(engine, pool.layout, capacity)
    per_replica = load.concurrency / replicas if load.closed else None
    top = min(n_max, math.ceil(per_replica)) if load.closed else n_max
    if table is None:
        table = StepTable(model, hardware, pool.layout, ceiling, engine, isl + osl / 2, prompt, cached,
                          _grid(top), link_id)
    k = table.chunks
    budget = engine.max_batched_tokens
    rate = load.request_rate / replicas if not load.closed else None
    x = rate if rate is not None else per_replica / (decodes * table(top)[0] + engine.request_overhead + 1e-9)
    t = table(1)[0]
    queue = 0.0
    saturated = False
    cap = math.inf
    fixed = load.closed and load.isl[0] == load.isl[1] and load.osl[0] == load.osl[1]
    group = max(1.0, min(per_replica, budget // prompt)) if fixed and prompt else 1.0
    for _ in range(ITERATIONS):
        xs = x if load.closed else min(x, cap)   # beyond capacity the engine runs at capacity
        b = min(xs * decodes * t, n_max, per_replica if per_replica else n_max)
        t_dec, delta = table(max(b, 1))
        a = xs * t
        t = t_dec + a * delta + min(1.0, a * k) * table.eager
        ttft_server = engine.request_overhead + residual_step(t_dec, delta + k * table.eager, k, a) \
            + k * (t_dec + table.eager) + max(group, 1 + a) * delta
        in_engine = ttft_server - engine.request_overhead + decodes * t
        cap = min(n_max / in_engine, max(budget - b, 1) / (prompt * t) if prompt else math.inf)
        if load.closed:
            x_new = min(per_replica / (ttft_server + decodes * t), cap)
            queue = max(per_replica / x_new - ttft_server - decodes * t, 0.0) if x_new > 0 else math.inf
            x = 0.5 * x + 0.5 * x_new
        else:
            rho = x / cap
            saturated = rho >= 1
            queue = mgc_wait(rho, n_max, in_engine)
    ttft = ttft_server + queue
    if fixed and prompt and not engine.mixed_prefill:
        ttft, t, queue, x = synchronized_waves(table, engine, per_replica, n_max, prompt, decodes)
        in_engine = ttft - engine.request_overhead + decodes * t
    elif load.requests_per_client and prompt:
        share = 1 / load.requests_per_client
        first = first_wave_ttft(table, engine, min(per_replica, n_max), prompt)
        ttft = (1 - share) * ttft + share * first
    e2e = ttft + decodes * t
    p50, p90 = _e2e_spread(ttft, t, load)
    served = x if load.closed else min(x, cap)
    running = min(served * in_engine, n_max)
    return Serving(model.id, hardware.id, engine.name, "agg", f"{replicas} x ({pool.layout.describe()})"
                   if replicas > 1 else pool.layout.describe(), pool.chips, isl, osl, load.concurrency,
                   served * replicas, ttft, t, t, e2e, p50, p90, running, n_max,
                   min(running / capacity, 1.0), queue, saturated,
                   ceiling.mode, engine.source,
                   extra={"chunk_tokens": table.chunk, "chunks_per_prompt": k})


def residual_step(t_dec, delta, chunks, arrivals):
    r"""Mean remaining time of the step in progress when a request arrives [s].

    An arrival at a random instant lands in a step with a probability proportional to the step's
    length (the inspection paradox), so it waits E[T^2] / (2 E[T]), not half the mean step. Steps
    are of two kinds: decode-only, t_dec, and those carrying one prompt chunk, t_dec + Delta / k,
    a share p = min(1, a k) of them (a arrivals per mean step, k chunks each):

    .. math:: R = \frac{(1 - p) \, t_{dec}^2 + p \, (t_{dec} + \Delta / k)^2}
                       {2 \, [(1 - p) \, t_{dec} + p \, (t_{dec} + \Delta / k)]}

    (Kleinrock, Queueing Systems vol. 1, 1975, section 5.2, the mean residual life). It is t/2 when
    no step carries a prompt and grows with the prompt's share of the GPU's time: long prompts at
    low concurrency, where a prompt lands in another's prefill step more often than the mean
    step says.
    """
    if not chunks:
        return t_dec / 2
    share = min(1.0, arrivals * chunks)
    long = t_dec + delta / chunks
    return ((1 - share) * t_dec ** 2 + share * long ** 2) / (2 * ((1 - share) * t_dec + share * long))


def first_wave_ttft(table, engine, clients, prompt):
    r"""Mean TTFT of a closed-loop run's first requests, all sent at once [s].

    .. math:: TTFT_1 = \tau_{req} + \frac{S + 1}{2} \left[t_{dec}(C/2) + E + \min(C P, N) \, \frac{\Delta}{P}\right],
              \qquad S = \lceil C P / N \rceil

    The C prompts (P new tokens each) fill S steps of the token budget N; a request's first token
    comes with the step that ends its prompt, on average the (S + 1)/2-th, each step carrying N
    prompt tokens (Delta / P per token) beside the decodes of the prompts already done. A run of
    R requests per client weights it 1/R against the steady state (InferenceMAX runs 10 x
    concurrency prompts: github.com/InferenceMAX/InferenceMAX, benchmark client configuration).
    """
    budget = engine.max_batched_tokens
    steps = math.ceil(clients * prompt / budget)
    t_dec, delta = table(max(clients / 2, 1))
    return engine.request_overhead + (steps + 1) / 2 * (t_dec + table.eager
                                                        + min(clients * prompt, budget) * delta / prompt)


def synchronized_waves(table, engine, clients, n_max, prompt, decodes):
    r"""(TTFT, TPOT, admission wait [s], requests/s) of closed-loop clients in lock-step waves.

    With fixed lengths, an engine that runs prefill steps apart from decode steps (and first)
    keeps the clients in waves: the C requests of a wave arrive together, fill S = ceil(C P / N)
    prefill steps of t_p = min(C P, N) Delta / P each, then decode together and end in the same
    step, and the next wave arrives together. Request s of the wave has its first token after s
    prefill steps and waits the S - s others before decoding:

    .. math:: TTFT = \tau_{req} + \frac{S + 1}{2} t_p, \qquad
              TPOT = t_{dec}(C) + \frac{(S - 1) \, t_p}{2 D}

    Clients beyond the n_max the engine runs wait for the waves ahead of theirs.
    """
    wave = min(clients, n_max)
    steps = math.ceil(wave * prompt / engine.max_batched_tokens)
    t_dec, delta = table(wave)
    t_prefill = min(wave * prompt, engine.max_batched_tokens) * delta / prompt + table.eager
    ttft = engine.request_overhead + (steps + 1) / 2 * t_prefill
    tpot = t_dec + (steps - 1) * t_prefill / (2 * decodes)
    e2e = ttft + decodes * tpot
    waves = math.ceil(clients / wave)
    queue = (waves - 1) / 2 * (e2e - engine.request_overhead)
    return ttft + queue, tpot, queue, clients / (e2e + queue)


def _grid(top):
    """Decode batches to evaluate the step at for one answer: the top and a third of it."""
    return sorted({1, max(1, top // 3), max(1, top)})


def frontier_grid(top):
    """Decode batches for a sweep up to `top`: powers of two and their midpoints."""
    points = {1, top}
    b = 1
    while b < top:
        points.update({b, min(top, b + b // 2)})
        b *= 2
    return sorted(points)
