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
from .deployment import evaluate
from .step import pass_time, time_operators


@dataclass(frozen=True)
class RowModel:
    """A measured row as forward passes: ((weight, operators, layers), ...), and how its figure
    follows from their time: seconds (`rate_numerator` None) or rate_numerator / seconds."""
    row: object
    passes: tuple
    fixed_costs: bool = True
    rate_numerator: float = None
    deployment: tuple = None      # (model, hardware, layout) of a multi-chip decode row

    def time(self, ceiling):
        """Predicted time of the row under `ceiling` (roofline.step.Ceilings) [s]."""
        if self.deployment is not None:
            return self._deployment_time(ceiling)
        total = 0.0
        if not self.fixed_costs:
            # a kernel timed on its own: no layer or step costs, its own launch and tail if a GEMM
            total = ceiling.kernel_overhead if self.row.kind in ("matmul", "linear") else 0.0
            ceiling = replace(ceiling, layer_overhead=0.0, step_overhead=0.0)
        for weight, operators, layers in self.passes:
            total += weight * float(pass_time(time_operators(operators, ceiling), ceiling, layers))
        return total

    def _deployment_time(self, ceiling):
        """A multi-chip row: one decode step, or (with an output length) the prefill of the prompts
        and output - 1 decode steps at the mean context, like the single-chip rows."""
        model, hardware, layout = self.deployment
        row = self.row
        if row.output is None:
            return evaluate("decode", model, hardware, row.batch, row.context, layout, ceiling).cycle_time
        total = evaluate("prefill", model, hardware, row.batch, row.context, layout, ceiling).token_time
        if row.output > 1:
            mean_context = int(row.context + row.output / 2)
            step = evaluate("decode", model, hardware, row.batch, mean_context, layout, ceiling).cycle_time
            total += (row.output - 1) * step
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
    if row.chips != 1:
        numerator = scale if row.output is None else scale * row.output
        return RowModel(row, (), rate_numerator=numerator,
                        deployment=(model, hardware, _layout(row, model, hardware)))
    if row.output is None:
        return RowModel(row, ((1, decode_operators(model, row.batch, row.context, peaks), layers),),
                        rate_numerator=scale)
    passes = [(1, prefill_operators(model, row.batch, row.context, peaks), layers)]
    if row.output > 1:
        mean_context = row.context + row.output / 2
        passes.append((row.output - 1, decode_operators(model, row.batch, mean_context, peaks), layers))
    return RowModel(row, tuple(passes), rate_numerator=scale * row.output)


def _layout(row, model, hardware):
    """The layout of a multi-chip row: as published (TP/PP), the fastest split of the published
    chip count, or, where the count is not published, the fewest chips that hold the model
    (placement.fewest_chips_layout). Chosen once, in ideal mode, so a fit does not move it."""
    from .parallel import make_layout
    from .placement import fewest_chips_layout, fastest_layout
    try:
        if row.tp or row.pp:
            tp, pp = row.tp or 1, row.pp or 1
            if row.chips and tp * pp != row.chips:
                raise RooflineError(f"TP={tp} x PP={pp} is not {row.chips} chips")
            return make_layout(model, row.batch, tp=tp, pp=pp)
        if row.chips:
            return fastest_layout(model, hardware, row.chips, row.batch, row.context)
        return fewest_chips_layout(model, hardware, row.batch, row.context)
    except RooflineError as exc:
        raise RooflineError(f"{row.where}: {exc}") from None


def _model(row):
    """The row's model spec with its layer count and dtypes."""
    try:
        model = load_model(row.model)
        if row.layers is not None and row.layers != model.num_layers:
            model = load_model(row.model, {"num_layers": str(row.layers)})
        return with_dtypes(model, **{k: v for k, v in row.dtypes.items()})
    except RooflineError as exc:
        raise RooflineError(f"{row.where}: {exc}") from None


def placeable(rows, hardware):
    """(rows whose model can be placed on `hardware`, Skipped for the others): a multi-chip row
    whose model no layout of these chips holds is reported, not fitted or validated."""
    from .measurements import Skipped
    kept, skipped = [], []
    for row in rows:
        try:
            if row.is_step and row.chips != 1:
                row_model(row, hardware)
            kept.append(row)
        except RooflineError as exc:
            skipped.append(Skipped(row.where, row.label, str(exc).split(": ", 1)[-1]))
    return kept, skipped
