"""What binds: the one definition of which term of a step's time (or which constraint of an
answer) is the limit, and what each one means in words.

A step's time splits into the seconds spent in memory-bound operators, compute-bound operators,
fixed costs, link latency and link bandwidth (deployment.Evaluation.split, step.bound_times); the
term that binds is the largest, the first in that order on a tie. The roofline model reads the
bound off the largest term of the sum (Williams, Waterman and Patterson, "Roofline", CACM 2009).
"""
import numpy as np

#: what each time term or constraint means when it binds
BINDING_TEXT = {
    "memory": "memory bandwidth (streaming weights and KV cache)",
    "compute": "compute (FLOP/s)",
    "overhead": "fixed costs per layer and per token (kernel launches, serial work, sampling and host path)",
    "link latency": "link latency (per hop and per collective)",
    "link bandwidth": "link bandwidth",
    "capacity": "memory capacity (the weights, KV cache and activations must fit)",
    "tokens_per_s_per_user": "the per-user speed target",
    "tokens_per_s": "the aggregate speed target",
    "max_usd_per_mtok": "the cost limit",
}


def binding(split):
    """The key of the largest term of `split` [s] (a dict, or anything with a `.split` dict):
    a str for floats, an array of str for numpy arrays (elementwise); the first key wins a tie."""
    split = getattr(split, "split", split)
    keys = list(split)
    values = [split[key] for key in keys]
    if all(np.ndim(v) == 0 for v in values):
        floats = [float(v) for v in values]
        return keys[floats.index(max(floats))]
    stacked = np.stack(np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values)))
    return np.asarray(keys)[np.argmax(stacked, axis=0)]
