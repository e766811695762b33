"""What binds a step: the one definition, used by every answer (api, sweep, solver).

A step's time splits into what each part of it waits on (roofline.deployment.Evaluation.split):
memory-bound operators, compute-bound operators, fixed costs, link latency, link bandwidth. The
part with the largest share binds: making it faster shortens the step most.
"""
import numpy as np

#: the parts of a step's time, in the order that breaks ties
BOUNDS = ("memory", "compute", "overhead", "link latency", "link bandwidth")

#: what each part means when it binds
BINDING_TEXT = {
    "memory": "memory bandwidth (streaming weights and KV cache)",
    "compute": "compute (FLOP/s)",
    "overhead": "fixed costs per layer and per token (kernel launches, serial work, sampling and host path; on a "
                "wafer, each matrix-vector product crossing the cores that hold its matrix)",
    "link latency": "link latency (per hop and per collective)",
    "link bandwidth": "link bandwidth",
    "capacity": "memory capacity (weights, KV cache and activations must fit)",
}


def binding(split):
    """The label of the largest part of a split {part: seconds} ('memory' first on ties); numpy
    arrays of seconds give an array of labels."""
    values = [split.get(key, 0.0) for key in BOUNDS]
    if all(np.ndim(v) == 0 for v in values):
        return BOUNDS[max(range(len(BOUNDS)), key=lambda i: (values[i], -i))]
    shape = np.broadcast_shapes(*(np.shape(v) for v in values))
    best = np.broadcast_to(np.asarray(values[0], dtype=float), shape)
    labels = np.full(shape, BOUNDS[0], dtype=f"<U{max(map(len, BOUNDS))}")
    for key, value in zip(BOUNDS[1:], values[1:]):
        if np.ndim(value) == 0 and value == 0:
            continue        # a part of nothing never exceeds another (times are >= 0)
        larger = np.asarray(value) > best
        best = np.where(larger, value, best)
        labels[larger] = key
    return labels
