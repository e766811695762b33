"""Decode over a grid of batch sizes, contexts and weight dtypes, in one vectorised evaluation.

    >>> from roofline.sweep import sweep
    >>> grid = sweep("llama-3.1-8b", "h100-sxm", batch=[1, 8, 64, 512], context=[1024, 8192])
    >>> grid["step_time_s"], grid.to_frame()

The grid is a Scenario whose batch is a column (B, 1) and context a row (1, C) of a numpy array,
evaluated by the same path as api.decode (roofline.scenario.evaluate): the weight GEMMs, which
do not depend on context, are evaluated once per batch size, and only attention and the KV cache
once per grid point. Each weights dtype changes the operators' dtypes (and so the peak that
bounds them): it is one such evaluation per dtype. On several chips the layout is given
(tp, pp, ep); with `chips` alone it is chosen per point, as api.decode would choose it.
"""
from dataclasses import replace

import numpy as np

from .binding import binding
from .errors import RooflineError
from .scenario import build, evaluate, whole_numbers

#: the largest grid one call evaluates (about 300 B of memory per point while it runs)
MAX_POINTS = 20_000_000
COLUMNS = ("batch", "context", "dtype", "step_time_s", "tokens_per_s_per_user", "tokens_per_s", "bound",
           "kv_cache_bytes", "fits")


class SweepResult(dict):
    """Columns of a sweep, {name: 1-D numpy array}, one entry per grid point (dtype, batch, context
    in row-major order); `notes` holds warnings (context beyond the model's maximum, default mode)."""

    def __init__(self, columns, model, hardware, mode, notes, calibration_source=None):
        super().__init__(columns)
        self.model, self.hardware, self.mode, self.notes = model, hardware, mode, notes
        self.calibration_source = calibration_source

    def __len__(self):
        return len(self["step_time_s"])

    def rows(self):
        """The grid as a list of row lists in COLUMNS order (plain Python values)."""
        return [list(row) for row in zip(*(self[c].tolist() for c in COLUMNS))]

    def to_frame(self):
        """The grid as a pandas DataFrame (pandas must be installed)."""
        from .optional import require
        pd = require("pandas")
        return pd.DataFrame({c: self[c] for c in COLUMNS})


def decode_grid(scenario):
    """Step time, bound, KV-cache bytes per chip and fit of a scenario whose batch has shape (B, 1)
    and context (1, C): {name: array of shape (B, C)}."""
    ev = evaluate(scenario)
    memory = ev.per_chip_memory
    shape = np.broadcast_shapes(np.shape(scenario.batch), np.shape(scenario.length))
    return {"step_time_s": np.broadcast_to(ev.cycle_time, shape),
            "bound": np.broadcast_to(binding(ev.split), shape),
            "kv_cache_bytes": np.broadcast_to(memory["kv_cache"], shape),
            "fits": np.broadcast_to(memory["total"] <= scenario.hardware.mem_capacity, shape)}


def _dtype_grid(model, hardware, batch, context, options):
    """(columns of one weights dtype over batch x context, the scenario of its first batch size)."""
    auto = options.get("chips", 1) not in (None, 1) and all(options.get(k) is None for k in ("tp", "pp", "ep"))
    if not auto:
        scenario = build(model, hardware, "decode", batch=batch, context=context, **options)
        return decode_grid(_as_grid(scenario)), scenario
    scenarios = [build(model, hardware, "decode", batch=b, context=c, **options)
                 for b in batch.tolist() for c in context.tolist()]
    points = [decode_grid(_as_grid(s)) for s in scenarios]
    return {key: np.concatenate([p[key] for p in points]).reshape(batch.size, context.size)
            for key in points[0]}, scenarios[0]


def _as_grid(scenario):
    """The scenario with batch as a column (B, 1) and context as a row (1, C)."""
    return replace(scenario, batch=np.atleast_1d(scenario.batch).astype(float)[:, None],
                   length=np.atleast_1d(scenario.length).astype(float)[None, :])


def sweep(model, hardware, batch, context, weights_dtype=None, **options):
    """Decode steps over every (weights dtype, batch, context) of the grid; a SweepResult.

    batch, context: whole numbers >= 1 (scalars or sequences). weights_dtype: a dtype name, a list
    of them, or None (the model's). `options` are roofline.scenario.build's (mode, kv_dtype,
    chips, tp, pp, ep, calibration, overrides, ...). Each point equals api.decode at the same
    inputs. Columns: batch, context, dtype, step_time_s, tokens_per_s_per_user = 1 / t_step,
    tokens_per_s = batch / t_step, bound, kv_cache_bytes (per chip), fits.
    """
    batch = np.atleast_1d(whole_numbers(batch, "batch"))
    context = np.atleast_1d(whole_numbers(context, "context"))
    dtypes = [weights_dtype] if weights_dtype is None or isinstance(weights_dtype, str) else list(weights_dtype)
    if not dtypes:
        raise RooflineError("weights_dtype: expected at least one dtype")
    points = batch.size * context.size * len(dtypes)
    if points > MAX_POINTS:
        raise RooflineError(f"a grid of {points:,} points exceeds the limit of {MAX_POINTS:,}; split it")
    parts, scenarios = [], []
    for dtype in dtypes:
        columns, first = _dtype_grid(model, hardware, batch, context, {**options, "weights_dtype": dtype})
        parts.append(columns)
        scenarios.append(first)
    columns = {key: np.concatenate([p[key].ravel() for p in parts]) for key in parts[0]}
    points = batch.size * context.size
    columns["batch"] = np.tile(np.repeat(batch, context.size), len(dtypes))
    columns["context"] = np.tile(context, batch.size * len(dtypes))
    columns["dtype"] = np.repeat(np.array([s.model.dtypes["weights"] for s in scenarios]), points)
    step = columns["step_time_s"]
    columns["tokens_per_s_per_user"] = 1 / step
    columns["tokens_per_s"] = columns["batch"] / step
    first = scenarios[0]
    return SweepResult({c: columns[c] for c in COLUMNS}, first.model.id, first.hardware.id, first.mode,
                       list(first.notes), first.calibration_source)
