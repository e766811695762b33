"""Discrete-event simulation of continuous batching: the option beside the mean-value model.

`serving.model.aggregated` closes the loop with means (Little's law). This module runs the same
engine step by step instead, for one replica:

- the scheduler admits waiting requests first come, first served while the running-sequence limit
  and the KV cache allow (n_max = min(engine limit, sequences the cache holds), as in the
  mean-value model);
- a step carries the decodes of the B running sequences and prompt chunks, first come, first
  served, up to the token budget N (an engine that does not mix prefill into decode steps runs a
  prefill step of its own, up to N prompt tokens, whenever prompts wait);
- its time is the mean-value model's StepTable, read per token:
  t = t_dec(B) + p Delta(B) / P + E [p > 0], p the step's prompt tokens, P the mean prompt,
  E the eager launch cost of a step with prompt tokens;
- a prompt's first token comes with the step that ends its prefill; each decode step after it
  gives one token; a request of OSL tokens ends OSL - 1 decode steps later;
- closed-loop clients all send at time 0 and each sends its next request when the last ends
  (`requests_per_client` each, 10 by default as InferenceMAX runs them); open-loop requests arrive
  as a Poisson process. A request reaches the scheduler tau_req after it is sent.

Lengths are drawn uniform in the workload's ranges (seeded: the same inputs give the same
answer). Reported are the benchmarks' statistics over all requests: mean TTFT, mean of each
request's TPOT = (E2E - TTFT) / (OSL - 1), E2E, with their medians and 90th percentiles; the
queue is the time from reaching the scheduler to admission (the step in progress included). What the
simulation adds over the mean-value model is the order of events: same-length prompts that
arrive together and wait for each other, the start-up wave, and the spread of the latencies.
In steady state (a long open-loop run below saturation) the two agree (tests/test_simulate.py).
"""
import heapq
import math
from collections import deque

import numpy as np

from ..errors import RooflineError
from .model import Serving, StepTable, frontier_grid, held_tokens, kv_capacity, running_limit

#: closed-loop requests per client when the workload does not say (InferenceMAX's benchmark client)
REQUESTS_PER_CLIENT = 10
#: open-loop requests simulated when none are asked for; the first tenth is left out as warm-up
OPEN_LOOP_REQUESTS = 2000
#: an open-loop run serving this share less than the offered rate is saturated (its waits grow with
#: the run's length); 3% is above the sampling noise of 2000 Poisson arrivals (1/sqrt(2000) = 2.2%)
SATURATION_SHORTFALL = 0.03
#: the most requests one simulation may run (a larger run is a typo, and would take minutes)
MAX_REQUESTS = 200_000


def step_costs(table, top, prompt):
    """(t_dec, per prompt token) [s] for decode batches 0..top, read from a StepTable.

    A step of B decodes and p prompt tokens takes t_dec[B] + p per_token[B] (+ the eager cost when
    p > 0); per_token is one prompt's increment Delta(B) spread over its P tokens. Batch 0 (a step
    of prompt chunks alone) is priced as batch 1: the table starts there.
    """
    batches = np.maximum(np.arange(top + 1), 1)
    t_dec = np.interp(batches, table.batches, table.decode)
    per_token = np.interp(batches, table.batches, table.increment) / prompt if prompt else np.zeros(top + 1)
    return t_dec, per_token


def _lengths(rng, span, count):
    lo, hi = span
    return rng.integers(lo, hi + 1, size=count) if hi > lo else np.full(count, lo)


def simulate(model, hardware, pool, ceiling, engine, load, link_id=None, requests=None, seed=0):
    """Serving of `load` on `pool.workers` replicas of `pool.layout`, simulated step by step (one
    replica, its share of the clients or of the arrivals). `requests`: requests to simulate
    (closed loop: per client, default the workload's or 10; open loop: in all, default 2000)."""
    replicas = pool.workers
    isl, osl = load.mean_isl, load.mean_osl
    hit = load.prefix_hit
    capacity = kv_capacity(model, hardware, pool.layout, engine, held_tokens(load, engine))[0]
    n_max = running_limit(engine, pool.layout, capacity)
    if load.closed:
        clients = max(1, round(load.concurrency / replicas))
        per_client = requests or load.requests_per_client or REQUESTS_PER_CLIENT
        total = int(clients * per_client)
        top = min(n_max, clients)
    else:
        clients, total, top = 0, int(requests or OPEN_LOOP_REQUESTS), n_max
    if not 1 <= total <= MAX_REQUESTS:
        raise RooflineError(f"a simulation of {total:,} requests is outside 1 to {MAX_REQUESTS:,}; "
                            "ask for fewer requests or clients")
    prompt_mean = isl * (1 - hit)
    table = StepTable(model, hardware, pool.layout, ceiling, engine, isl + osl / 2, prompt_mean, isl * hit,
                      frontier_grid(max(top, 1)), link_id)
    t_dec, per_token = step_costs(table, top, prompt_mean)
    rng = np.random.default_rng(seed)
    prompts = np.maximum(1, np.round(_lengths(rng, load.isl, total) * (1 - hit))).astype(int)
    outputs = _lengths(rng, load.osl, total)
    run = _Run(engine, n_max, top, t_dec, per_token, table.eager, prompts, outputs)
    if load.closed:
        run.sent[:clients] = 0.0
        arrivals = [(engine.request_overhead, i) for i in range(clients)]
    else:
        gaps = rng.exponential(replicas / load.request_rate, size=total)
        run.sent[:] = np.cumsum(gaps)
        arrivals = [(s + engine.request_overhead, i) for i, s in enumerate(run.sent)]
    heapq.heapify(arrivals)
    run.execute(arrivals, clients)
    return run.result(model, hardware, pool, load, engine, ceiling, capacity, warmup=0 if load.closed else total // 10)


class _Run:
    """The state of one simulated replica: requests by index, the queues, the clock."""

    def __init__(self, engine, n_max, top, t_dec, per_token, eager, prompts, outputs):
        self.engine, self.n_max, self.top = engine, n_max, top
        self.t_dec, self.per_token, self.eager = t_dec, per_token, eager
        self.prompts, self.outputs = prompts, outputs
        total = len(prompts)
        self.sent = np.full(total, np.nan)
        self.first = np.full(total, np.nan)
        self.done = np.full(total, np.nan)
        self.admitted = np.full(total, np.nan)
        self.clock = 0.0
        self.busy_batch = 0.0      # integral of the decode batch over time [sequence s]

    def execute(self, arrivals, clients):
        """Run steps until every request has ended; closed loop when `clients` > 0."""
        engine, budget = self.engine, self.engine.max_batched_tokens
        waiting, prefilling, left = deque(), [], {}  # ids; ids with prompt tokens left; id -> prompt tokens left
        ending = {}                                # decode step index -> ids that end with it
        running, step, next_id, finished = 0, 0, clients, 0
        total = len(self.prompts)
        while finished < total:
            while arrivals and arrivals[0][0] <= self.clock:
                waiting.append(heapq.heappop(arrivals)[1])
            if not (running or prefilling or waiting):
                self.clock = arrivals[0][0]
                continue
            while waiting and running + len(prefilling) < self.n_max:
                i = waiting.popleft()
                self.admitted[i] = self.clock
                prefilling.append(i)
                left[i] = int(self.prompts[i])
            batch = min(running, self.top)
            decode_step = engine.mixed_prefill or not prefilling
            room = budget - (running if engine.mixed_prefill else 0)
            tokens, ended_prefill = 0, []
            if not decode_step or engine.mixed_prefill:
                for i in prefilling:
                    if room <= tokens:
                        break
                    take = min(left[i], room - tokens)
                    tokens += take
                    left[i] -= take
                    if not left[i]:
                        ended_prefill.append(i)
            if decode_step:
                t = self.t_dec[batch] + tokens * self.per_token[batch]
            else:
                t = tokens * self.per_token[0]
            t += self.eager if tokens else 0.0
            self.clock += t
            self.busy_batch += running * t
            if decode_step and running:
                step += 1
                for i in ending.pop(step, ()):
                    self.done[i] = self.clock
                    running -= 1
                    finished += 1
                    if clients and next_id < total:
                        self.sent[next_id] = self.clock
                        heapq.heappush(arrivals, (self.clock + engine.request_overhead, next_id))
                        next_id += 1
            for i in ended_prefill:
                prefilling.remove(i)
                del left[i]
                self.first[i] = self.clock
                decodes = int(self.outputs[i]) - 1
                ending.setdefault(step + decodes, []).append(i)
                running += 1

    def result(self, model, hardware, pool, load, engine, ceiling, capacity, warmup):
        keep = slice(warmup, None)
        sent, first, done = self.sent[keep], self.first[keep], self.done[keep]
        ttft, e2e = first - sent, done - sent
        queue = self.admitted[keep] - sent - engine.request_overhead
        tpot = (e2e - ttft) / (self.outputs[keep] - 1)
        span = done.max() - self.sent[:warmup + 1].max() if warmup else done.max() - sent.min()
        served = len(sent) / span * pool.workers if span > 0 else math.inf
        running = self.busy_batch / self.clock if self.clock > 0 else 0.0
        # an open-loop run that serves visibly less than is offered has a queue that grows with the run
        saturated = not load.closed and served < (1 - SATURATION_SHORTFALL) * load.request_rate
        pct = lambda values, q: float(np.percentile(values, q))  # noqa: E731
        layout = pool.layout.describe()
        return Serving(model.id, hardware.id, engine.name, "agg",
                       f"{pool.workers} x ({layout})" if pool.workers > 1 else layout, pool.chips,
                       load.mean_isl, load.mean_osl, load.concurrency, served,
                       float(ttft.mean()), float(tpot.mean()), float(tpot.mean()), float(e2e.mean()),
                       pct(e2e, 50), pct(e2e, 90), running, self.n_max, min(running / capacity, 1.0),
                       float(queue.mean()), saturated, ceiling.mode, engine.source,
                       extra={"method": "discrete-event simulation", "simulated_requests": len(sent),
                              "ttft_p50_s": pct(ttft, 50), "ttft_p90_s": pct(ttft, 90),
                              "tpot_p50_s": pct(tpot, 50), "tpot_p90_s": pct(tpot, 90)})
