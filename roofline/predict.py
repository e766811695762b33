"""What the roofline predicts for a measured row, under any set of ceilings.

Each measured row becomes a `RowModel`: the forward passes it ran (operators from
roofline.operators, with how many times each pass ran) and how the measured figure follows from
their time. The prediction is then the same sum of per-operator rooflines as roofline.api:

.. math:: t = \\sum_{p} w_p \\left( \\sum_{op \\in p} n_{op} t_{op} + L_p t_{layer} + t_{step} \\right)

- kernel rows (copy, read_reduce, matmul, linear): one operator, no fixed costs.
- decode_step, prefill: one pass.
- published generation rows: the prefill of the prompt and (output - 1) decode steps at the mean
  context, prompt + output / 2 (the step time is close to linear in context); the figure is
  output / t per user (batch x that in aggregate). With no stated output length, one decode step
  at the prompt length.

Building the operators once and timing them under many ceilings is what lets a fit evaluate the
model thousands of times.
"""
from dataclasses import dataclass, replace

from . import dtypes
from .errors import RooflineError
from .models import load_model, with_dtypes
from .operators import decode_operators, elementwise, gemm, prefill_operators
from .step import pass_time, time_operators


@dataclass(frozen=True)
class RowModel:
    """A measured row as forward passes: ((weight, operators, layers), ...), and how its figure
    follows from their time: seconds (`rate_numerator` None) or rate_numerator / seconds."""
    row: object
    passes: tuple
    fixed_costs: bool = True
    rate_numerator: float = None

    def time(self, ceiling):
        """Predicted time of the row under `ceiling` (roofline.step.Ceilings) [s]."""
        if not self.fixed_costs:
            ceiling = replace(ceiling, layer_overhead=0.0, step_overhead=0.0)
        total = 0.0
        for weight, operators, layers in self.passes:
            total += weight * float(pass_time(time_operators(operators, ceiling), ceiling, layers))
        return total

    def figure(self, ceiling):
        """The predicted counterpart of the measured figure: seconds, or tokens/s for rate rows."""
        t = self.time(ceiling)
        return t if self.rate_numerator is None else self.rate_numerator / t

    @property
    def measured(self):
        return self.row.seconds if self.rate_numerator is None else self.row.rate

    @property
    def measured_time(self):
        """The measured figure as a time [s] (rate rows: rate_numerator / rate)."""
        return self.row.seconds if self.rate_numerator is None else self.rate_numerator / self.row.rate


def row_model(row, hardware):
    """The RowModel of a Measurement on chip `hardware` (its peaks pick each GEMM's dtype)."""
    peaks = hardware.peak_flops
    if row.kind in ("copy", "read_reduce"):
        return RowModel(row, ((1, [elementwise(row.kind, row.shape[0], "bf16", 1, "kernel")], 0),), False)
    if row.kind in ("matmul", "linear"):
        if row.dtype not in peaks:
            raise RooflineError(f"{row.where}: {hardware.id} has no {row.dtype} peak to predict this {row.kind} by")
        m, k, n = row.shape
        size = dtypes.bytes_per_value(row.dtype)
        return RowModel(row, ((1, [gemm(row.kind, m, k, n, size, size, row.dtype, 1, "kernel")], 0),), False)
    model = _model(row)
    layers = model.num_layers
    if row.kind == "decode_step":
        return RowModel(row, ((1, decode_operators(model, row.batch, row.context, peaks), layers),))
    if row.kind == "prefill":
        return RowModel(row, ((1, prefill_operators(model, row.batch, row.context, peaks), layers),))
    scale = row.batch if row.metric == "aggregate_output_tokens_per_s" else 1
    if row.output is None:
        return RowModel(row, ((1, decode_operators(model, row.batch, row.context, peaks), layers),),
                        rate_numerator=scale)
    passes = [(1, prefill_operators(model, row.batch, row.context, peaks), layers)]
    if row.output > 1:
        mean_context = row.context + row.output / 2
        passes.append((row.output - 1, decode_operators(model, row.batch, mean_context, peaks), layers))
    return RowModel(row, tuple(passes), rate_numerator=scale * row.output)


def _model(row):
    """The row's model spec with its layer count and dtypes."""
    try:
        model = load_model(row.model)
        if row.layers is not None and row.layers != model.num_layers:
            model = load_model(row.model, {"num_layers": str(row.layers)})
        return with_dtypes(model, **{k: v for k, v in row.dtypes.items()})
    except RooflineError as exc:
        raise RooflineError(f"{row.where}: {exc}") from None
