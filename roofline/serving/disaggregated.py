"""Disaggregated serving (xPyD): prompts prefilled on one pool, decoded on another.

Disaggregated serving (xPyD: x prefill workers, y decode workers, each with its own layout)
prefills on one pool (a queue of x servers, each batching up to its token budget of prompts per
step, `prefill_step`), moves the prompt's KV cache over
the link between the pools, and decodes on the other (decode-only steps):

.. math:: TTFT = \\tau_{req} + W_p + t_p + t_{kv}, \\qquad t_{kv} = \\alpha + \\frac{KV(ISL)}{n \\, BW}

with n the chips of the narrower worker sending in parallel.

The decode pool's steps come from the same StepTable and the prefill pool's from the same mixed
step (deployment.evaluate, phase "mixed") as aggregated serving (serving.model). With speculative
decoding (`speculative` = (k, a): multi-token prediction drafting k tokens, each accepted with
probability a) a decode step is a round of k draft steps and one verifier step over k + 1 tokens
per sequence, yielding E(a, k) tokens (speculative.expected_tokens_per_step): TPOT = t_round / E
(SpeculativeTable).

A decode worker runs at most `engine.max_sequences` sequences (the deployment's batch limit). A
sequence holds its slot while it decodes (t_dec), so with more clients C than the pool's S slots
the loop runs at X = S / t_dec and a client waits for a slot before its first token, which reaches
it from the decode worker: TTFT = (C / S - 1) t_dec (the TensorRT-LLM InferenceX runs set C = 1.2 S
to 2 S: 5-37 s of TTFT at 1024/1024).

On an engine whose decode scheduler hands requests over in its loop (HANDOFF_ENGINES: SGLang), the
first token also waits for the decode worker's iterations, one decode step or MTP round each
(`handoff_wait`): the prefill starts only once the decode worker has taken the request in and
pre-allocated its cache, and the first token leaves when the decode worker next polls the transfer.
"""
import math

import numpy as np

from ..deployment import evaluate
from ..errors import RooflineError
from ..memory import kv_cache_bytes
from ..operators import MixedShape, mtp_model
from ..parallel import Layout, check_layout, scale_up_domain
from ..speculative import expected_tokens_per_step, round_time
from .model import (ITERATIONS, Serving, StepTable, _e2e_spread, _grid, host_time, kv_capacity, mgc_wait,
                    request_shape, running_limit)


def kv_transfer_time(model, hardware, prefill, decode, tokens, ceiling):
    """Time to move one prompt's KV cache from a prefill worker to a decode worker [s].

    .. math:: t_{kv} = \\alpha + \\frac{c \\, B \\, \\sum_l \\min(T, W_l) \\, b_{kv,l}}{\\min(n_s, n_r) \\, BW}

    over the scale-up link when both pools fit one scale-up domain, else the scale-out link. A
    request's cache sits on the chips of one attention group, n_s = tp x pp of the prefill layout
    (one chip under data-parallel attention), and lands on n_r = tp x pp chips of the decode
    layout, each link carrying its share; c copies arrive: MLA's latent cache is replicated on every
    chip of a tensor-parallel attention group (c = decode tp), head-split GQA caches are not (c = 1).
    From a prefill with data-parallel attention into a TP16 decode that is 16 copies through one
    NIC: 16 x 330 MB for an 8k-token DeepSeek-R1 prompt, about 0.1 s at 50 GB/s.
    """
    chips = prefill.chips + decode.chips
    scale_up = chips <= scale_up_domain(hardware) and any(cl.role == "scale-up" for cl in hardware.links)
    role = "scale-up" if scale_up else "scale-out"
    try:
        link = hardware.link(role=role)
    except RooflineError:
        link = hardware.link()
    copies = decode.layout.tp if model.attention.kind == "mla" else 1
    size = kv_cache_bytes(model, 1, tokens) * copies
    lanes = min(prefill.layout.tp * prefill.layout.pp, decode.layout.tp * decode.layout.pp)
    return ceiling.latency_of(link) + size / (lanes * link.bandwidth), link.link.id


#: engines whose decode worker takes a request in, and releases its first token, at the top of its
#: decode loop (handoff_wait): SGLang's PD disaggregation (python/sglang/srt/disaggregation/decode.py)
HANDOFF_ENGINES = ("sglang",)


def handoff_wait(iteration, others):
    r"""Mean time a disaggregated request waits on the decode worker's loop before its first token [s].

    .. math:: W_{hand} = 2 \cdot \frac{t_{it}}{2} \, P_{busy}, \qquad P_{busy} = 1 - e^{-n}

    with t_it [s] one iteration of the decode worker's loop (a decode step; with MTP a draft-and-verify
    round) and n [1] the mean number of other sequences the worker is decoding when the request reaches it.
    SGLang's decode scheduler (python/sglang/srt/disaggregation/decode.py, sgl-project/sglang 0.5.x:
    event_loop_normal/overlap_disagg_decode, process_decode_queue, get_new_prebuilt_batch) does
    each hand-over once per iteration, before it launches the iteration's decode step:
    (1) it receives the request and pre-allocates its KV cache (DecodePreallocQueue.pop_preallocated),
    which sends the cache's indices to the prefill worker, whose bootstrap queue
    (prefill.py, PrefillBootstrapQueue.pop_bootstrapped) holds the request until they arrive: the
    prefill cannot start before the decode worker's current iteration ends; (2) it polls the finished
    transfers (DecodeTransferQueue.pop_transferred) and, in the same iteration, turns them into a
    prebuilt batch whose first token (sampled by the prefill worker, sent with the cache's metadata) is
    streamed at once. A request reaches each hand-over at a uniformly random point of an iteration: half
    an iteration each, two in all, when the worker is decoding; an idle worker's loop spins and hands
    over at once (P_busy: the chance that at least one of n Poisson-like others is running).
    """
    return iteration * (1 - math.exp(-others))


def prefill_step(alone, full, most, prompts):
    r"""Time of a prefill worker's step carrying `prompts` prompts [s], between one prompt alone
    (`alone`) and a full token budget of `most` prompts (`full`), linear in between:

    .. math:: t_p(m) = t_p(1) + \frac{m - 1}{m_{max} - 1} \, [t_p(m_{max}) - t_p(1)]

    A prefill worker batches the prompts waiting for it up to its token budget N (m_max = N / P
    prompts of P tokens): the weights are read once per step, so a batch costs less than m_max
    prompts one by one where a prompt alone is weight-bound (a 512-token prompt of Qwen3-235B-A22B
    in fp8 on TP4/EP4 H100 reads 59 GB of weights per chip, about 19 ms, for 5 ms of FLOPs; 16 of
    them take 5x one, not 16x). Its capacity is m_max / t_p(m_max) prompts per second.
    """
    if most <= 1:
        return alone
    return alone + (min(prompts, most) - 1) / (most - 1) * (full - alone)


class SpeculativeTable:
    """Decode time per generated token of a worker drafting with the model's MTP module, against batch B.

    .. math:: t(B) = \\frac{k \\, t_{draft}(B) + t_{verify}(B, k + 1)}{E(a, k)}

    t_verify: the decode step with k + 1 query tokens per sequence (deployment.evaluate,
    query_tokens); t_draft: one step of the MTP module (phase "mtp") on the worker's tensor- and
    expert-parallel layout; both plus the engine's per-step and per-sequence costs. Called like
    StepTable: (t [s], 0) at batch `batch`, so that OSL - 1 tokens take (OSL - 1) t.
    """

    def __init__(self, model, hardware, layout, ceiling, engine, context, batches, speculative, link_id=None):
        k, acceptance = speculative
        self.tokens = expected_tokens_per_step(acceptance, k)
        self.batches = np.array(sorted({max(1, int(b)) for b in batches}), dtype=float)
        drafter = mtp_model(model)
        draft_layout = check_layout(drafter, Layout(layout.tp, 1, layout.ep, 1))
        times = []
        for b in self.batches:
            verify = float(evaluate("decode", model, hardware, int(b), context, layout, ceiling, link_id,
                                    query_tokens=k + 1, moe_exchange=engine.moe_exchange).cycle_time)
            draft = float(evaluate("mtp", drafter, hardware, int(b), context, draft_layout, ceiling,
                                   link_id, moe_exchange=engine.moe_exchange).cycle_time)
            fixed = host_time(engine, layout, b)
            times.append(round_time(draft + fixed, verify + fixed, k) / self.tokens)
        self.decode = np.array(times)

    def __call__(self, batch):
        return float(np.interp(batch, self.batches, self.decode)), 0.0


def disaggregated(model, hardware, prefill, decode, ceiling, engine, load, link_id=None, table=None,
                  prefill_engine=None, speculative=None):
    """Serving of `load` on x prefill workers (`prefill`: a Pool) and y decode workers (`decode`).

    `engine` runs the decode workers (its max_sequences: the most sequences one scheduler of a decode
    worker runs, one per data-parallel attention group: model.running_limit),
    `prefill_engine` (default `engine`) the prefill workers; `speculative` (k, a) drafts with the
    model's MTP module (SpeculativeTable).
    """
    decode_engine, engine = engine, prefill_engine or engine
    isl, osl, prompt, cached, decodes, held = request_shape(load, decode_engine)
    capacity = kv_capacity(model, hardware, decode.layout, decode_engine, held)[0]
    kv_capacity(model, hardware, prefill.layout, engine, isl)
    n_max = running_limit(decode_engine, decode.layout, capacity)
    chunk = min(prompt, engine.max_batched_tokens) if prompt else 0
    chunks = math.ceil(prompt / chunk) if prompt else 0
    t_prefill = t_batch = 0.0
    batch = max(1, engine.max_batched_tokens // prompt) if prompt else 1
    if prompt:
        one = float(evaluate("mixed", model, hardware, 0, MixedShape(0, chunk, cached + (prompt - chunk) / 2,
                                                                     1 / chunks), prefill.layout, ceiling,
                             link_id, moe_exchange=engine.moe_exchange).cycle_time)
        eager = engine.eager_layer_overhead * math.ceil(model.num_layers / prefill.layout.pp)
        t_prefill = chunks * (one + engine.step_overhead + engine.sequence_overhead + eager)
        t_batch = t_prefill if batch == 1 else float(evaluate(
            "mixed", model, hardware, 0, MixedShape(0, batch * prompt, cached, batch), prefill.layout, ceiling,
            link_id, moe_exchange=engine.moe_exchange).cycle_time) + host_time(engine, prefill.layout, batch) + eager
    t_kv, kv_link = kv_transfer_time(model, hardware, prefill, decode, isl, ceiling)
    per_worker = load.concurrency / decode.workers if load.closed else None
    top = min(n_max, math.ceil(per_worker)) if load.closed else n_max
    if table is None and speculative:
        table = SpeculativeTable(model, hardware, decode.layout, ceiling, decode_engine, isl + osl / 2, _grid(top),
                                 speculative, link_id)
    elif table is None:
        table = StepTable(model, hardware, decode.layout, ceiling, decode_engine, isl + osl / 2, 0, 0, _grid(top),
                          link_id)
    x = load.request_rate if not load.closed else load.concurrency / (decodes * table(top)[0] + t_prefill + 1e-9)
    t, queue, saturated, wait, cap = table(1)[0], 0.0, False, 0.0, math.inf
    handoff, hand = decode_engine.name in HANDOFF_ENGINES, 0.0
    per_round = getattr(table, "tokens", 1.0)
    for _ in range(ITERATIONS):
        xs = x if load.closed else min(x, cap)
        b = min(xs / decode.workers * decodes * t, n_max)
        t = table(max(b, 1))[0]
        rho = xs * t_batch / (batch * prefill.workers)
        wait = mgc_wait(min(rho, 0.999), prefill.workers, t_batch)
        own = prefill_step(t_prefill, t_batch, batch, 1 + (batch - 1) * min(rho, 1.0))
        if handoff:
            # the others decoding on this worker as the request arrives: all its running sequences in an
            # open loop; in a closed loop those of C - 1 clients (the arrival theorem of mean-value
            # analysis, Reiser and Lavenberg 1980: an arrival sees the network without itself)
            others = b * (load.concurrency - 1) / load.concurrency if load.closed else b
            hand = handoff_wait(t * per_round, max(others, 0.0))
        ttft_server = engine.request_overhead + wait + own + t_kv + hand
        # half a step to join the running batch; under the hand-over that wait is in `hand`, before the
        # first token, which the prebuilt batch streams
        in_decode = (0.0 if handoff else t / 2) + decodes * t
        cap = min(decode.workers * n_max / in_decode, prefill.workers * batch / t_batch if t_batch else math.inf)
        if load.closed:
            x_new = min(load.concurrency / (ttft_server + in_decode), cap)
            queue = max(load.concurrency / x_new - ttft_server - in_decode, 0.0)
            x = 0.5 * x + 0.5 * x_new
        else:
            saturated = x >= cap
            queue = math.inf if saturated else 0.0
    ttft = ttft_server + queue
    if load.requests_per_client and prompt:
        # the run's first requests reach the prefill workers all at once: S budget-full prefill steps
        clients = load.concurrency / prefill.workers
        steps = math.ceil(clients * prompt / engine.max_batched_tokens)
        step = prefill_step(t_prefill, t_batch, batch, min(clients, batch))
        first = engine.request_overhead + (steps + 1) / 2 * step + t_kv
        ttft = (1 - 1 / load.requests_per_client) * ttft + first / load.requests_per_client
    tpot = in_decode / decodes
    e2e = ttft + in_decode
    p50, p90 = _e2e_spread(ttft, tpot, load)
    x = x if load.closed else min(x, cap)
    running = min(x / decode.workers * in_decode, n_max)
    layout = (f"{prefill.workers}P x ({prefill.layout.describe()}) + {decode.workers}D x ({decode.layout.describe()})")
    return Serving(model.id, hardware.id, engine.name, "disagg", layout, prefill.chips + decode.chips, isl, osl,
                   load.concurrency, x, ttft, tpot, tpot, e2e, p50, p90, running, n_max,
                   min(running / capacity, 1.0), queue, saturated,
                   ceiling.mode, engine.source,
                   extra={"prefill_s": t_prefill, "prefill_wait_s": wait, "kv_transfer_s": t_kv, "kv_link": kv_link,
                          "handoff_s": hand})
