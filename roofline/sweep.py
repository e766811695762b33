"""Decode over a grid of batch sizes, contexts and weight dtypes, in one vectorised evaluation.

    >>> from roofline.sweep import sweep
    >>> grid = sweep("llama-3.1-8b", "h100-sxm", batch=[1, 8, 64, 512], context=[1024, 8192])
    >>> grid["step_time_s"], grid.to_frame()

The grid goes through the same functions as api.decode (operators.decode_operators,
step.time_operators, step.pass_time, memory.footprint) with batch as a column (B, 1) and context
as a row (1, C) of a numpy array: the weight GEMMs, which do not depend on context, are
evaluated once per batch size, and only attention and the KV cache once per grid point. Each
weights dtype changes the operators' dtypes (and so the peak that bounds them): it is one such
evaluation per dtype.
"""
import numpy as np

from .api import choose_mode, resolve_hardware, resolve_model
from .errors import RooflineError
from .models import MAX_BATCH, MAX_CONTEXT
from .memory import footprint
from .operators import decode_operators
from .step import bound_times, ceilings, pass_time, step_bound, time_operators

#: the largest grid one call evaluates (about 300 B of memory per point while it runs)
MAX_POINTS = 20_000_000
COLUMNS = ("batch", "context", "dtype", "step_time_s", "tokens_per_s_per_user", "tokens_per_s", "bound",
           "kv_cache_bytes", "fits")


class SweepResult(dict):
    """Columns of a sweep, {name: 1-D numpy array}, one entry per grid point (dtype, batch, context
    in row-major order); `notes` holds warnings (context beyond the model's maximum, default mode)."""

    def __init__(self, columns, model, hardware, mode, notes):
        super().__init__(columns)
        self.model, self.hardware, self.mode, self.notes = model, hardware, mode, notes

    def __len__(self):
        return len(self["step_time_s"])

    def rows(self):
        """The grid as a list of row lists in COLUMNS order (plain Python values)."""
        return [list(row) for row in zip(*(self[c].tolist() for c in COLUMNS))]

    def to_frame(self):
        """The grid as a pandas DataFrame (pandas must be installed)."""
        import pandas as pd
        return pd.DataFrame({c: self[c] for c in COLUMNS})


def whole_numbers(values, name, maximum=None):
    """`values` as a 1-D int64 array of whole numbers from 1 to `maximum` (default: the limit of
    `name`, MAX_BATCH or MAX_CONTEXT), or RooflineError naming `name` and the limit."""
    maximum = maximum or (MAX_CONTEXT if "context" in name else MAX_BATCH)
    try:
        array = np.atleast_1d(np.asarray(values))
    except (OverflowError, ValueError):
        raise RooflineError(f"{name} must be whole numbers from 1 to {maximum:,}") from None
    if array.dtype.kind in "iuf" and array.size and np.any(array > maximum):
        raise RooflineError(f"{name} {array.max():.6g} is more than the limit of {maximum:,}")
    if array.ndim != 1 or array.size == 0:
        raise RooflineError(f"{name} must be one or more whole numbers of at least 1, got {values!r}")
    if array.dtype.kind not in "iuf" or not np.all(np.isfinite(array)) or np.any(array < 1) \
            or np.any(array != np.floor(array)):
        bad = next((v for v in array.tolist() if not (isinstance(v, (int, float)) and v >= 1 and v == int(v))),
                   values)
        raise RooflineError(f"{name} must be whole numbers of at least 1, got {bad!r}")
    return array.astype(np.int64)


def decode_grid(model, hardware, mode, batch, context):
    """Step time, bound, KV-cache bytes and fit of one model on one chip over batch x context.

    `batch` has shape (B, 1) and `context` (1, C); returns {name: array of shape (B, C)}.
    """
    ceiling = ceilings(hardware, mode)
    operators = decode_operators(model, batch, context, hardware.peak_flops)
    timed = time_operators(operators, ceiling)
    step = pass_time(timed, ceiling, model.num_layers)
    memory = footprint(model, batch, context + 1)
    shape = np.broadcast_shapes(np.shape(batch), np.shape(context))
    return {"step_time_s": np.broadcast_to(step, shape),
            "bound": np.broadcast_to(step_bound(bound_times(timed, ceiling, model.num_layers)), shape),
            "kv_cache_bytes": np.broadcast_to(memory["kv_cache"], shape),
            "fits": np.broadcast_to(memory["total"] <= hardware.mem_capacity, shape)}


def sweep(model, hardware, batch, context, weights_dtype=None, mode=None, kv_dtype=None, activations_dtype=None,
          overrides=None, memory_tier=None):
    """Decode steps over every (weights dtype, batch, context) of the grid; a SweepResult.

    batch, context: whole numbers >= 1 (scalars or sequences). weights_dtype: a dtype name, a list
    of them, or None (the model's). Each point equals api.decode at the same inputs.
    Columns: batch, context, dtype, step_time_s, tokens_per_s_per_user = 1 / t_step,
    tokens_per_s = batch / t_step, bound, kv_cache_bytes, fits.
    """
    batch = whole_numbers(batch, "batch")
    context = whole_numbers(context, "context")
    dtypes = [weights_dtype] if weights_dtype is None or isinstance(weights_dtype, str) else list(weights_dtype)
    if not dtypes:
        raise RooflineError("weights_dtype: expected at least one dtype")
    points = batch.size * context.size * len(dtypes)
    if points > MAX_POINTS:
        raise RooflineError(f"a grid of {points:,} points exceeds the limit of {MAX_POINTS:,}; split it")
    hardware = resolve_hardware(hardware, memory_tier)
    mode, note = choose_mode(hardware, mode)
    models = [resolve_model(model, overrides, d, kv_dtype, activations_dtype) for d in dtypes]
    b = batch.astype(float)[:, None]
    c = context.astype(float)[None, :]
    parts = [decode_grid(m, hardware, mode, b, c) for m in models]
    columns = {key: np.concatenate([p[key].ravel() for p in parts]) for key in parts[0]}
    points = batch.size * context.size
    columns["batch"] = np.tile(np.repeat(batch, context.size), len(models))
    columns["context"] = np.tile(context, batch.size * len(models))
    columns["dtype"] = np.repeat(np.array([m.dtypes["weights"] for m in models]), points)
    step = columns["step_time_s"]
    columns["tokens_per_s_per_user"] = 1 / step
    columns["tokens_per_s"] = columns["batch"] / step
    notes = [note] if note else []
    top = models[0].max_context
    if context.max() + 1 > top:
        notes.append(f"warning: context {context.max()} exceeds {models[0].id}'s maximum of {top} tokens; "
                     "answered as if the model allowed it")
    return SweepResult({c: columns[c] for c in COLUMNS}, models[0].id, hardware.id, mode, notes)
