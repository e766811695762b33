"""What the roofline predicts for a measured row, under any set of ceilings.

Each measured row becomes a `RowModel`: the forward passes it ran (roofline.deployment.ForwardPass,
the one step-time path of roofline.api, on one chip or several), with how many times each ran,
and how the measured figure follows from their time:

.. math:: t = \\sum_{p} w_p \\, t_p

- kernel rows (copy, read_reduce, matmul, linear): one operator timed alone, no fixed costs of a
  step (a GEMM kernel pays its own launch and tail, `kernel_overhead`).
- decode_step, prefill: one pass (a decode step's time is its cycle time; a prefill's the time of
  its tokens through every stage).
- published generation rows: the prefill of the prompt and (output - 1) decode steps at the mean
  context, prompt + output / 2 (the step time is close to linear in context); the figure is
  output / t per user (batch x that in aggregate). With no stated output length, one decode step
  at the prompt length.

Building the passes once and evaluating them under many ceilings is what lets a fit evaluate the
model thousands of times.
"""
from dataclasses import dataclass

from . import dtypes
from .deployment import forward_pass
from .errors import RooflineError
from .models import load_model, with_dtypes
from .operators import elementwise, gemm
from .parallel import make_layout
from .step import time_operators


@dataclass(frozen=True)
class RowModel:
    """A measured row as forward passes ((weight, ForwardPass), ...) or one kernel operator, and how
    its figure follows from their time: seconds (`rate_numerator` None) or rate_numerator / seconds."""
    row: object
    passes: tuple = ()
    kernel: object = None         # the Operator of a kernel row
    rate_numerator: float = None

    def time(self, ceiling):
        """Predicted time of the row under `ceiling` (roofline.step.Ceilings) [s]."""
        if self.kernel is not None:
            overhead = ceiling.kernel_overhead if self.row.kind in ("matmul", "linear") else 0.0
            return overhead + float(time_operators([self.kernel], ceiling)[0].time)
        total = 0.0
        for weight, forward in self.passes:
            ev = forward.evaluate(ceiling)
            total += weight * float(ev.cycle_time if forward.phase == "decode" else ev.token_time)
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

    @property
    def layouts(self):
        """The layouts of the row's passes (one chip: Layout())."""
        return [forward.layout for _, forward in self.passes]


def row_model(row, hardware):
    """The RowModel of a Measurement on chip `hardware` (its peaks pick each GEMM's dtype)."""
    peaks = hardware.peak_flops
    if row.kind in ("copy", "read_reduce"):
        return RowModel(row, kernel=elementwise(row.kind, row.shape[0], "bf16", 1, "kernel"))
    if row.kind in ("matmul", "linear"):
        if row.dtype not in peaks:
            raise RooflineError(f"{row.where}: {hardware.id} has no {row.dtype} peak to predict this {row.kind} by")
        m, k, n = row.shape
        size = dtypes.bytes_per_value(row.dtype)
        return RowModel(row, kernel=gemm(row.kind, m, k, n, size, size, row.dtype, 1, "kernel"))
    model = _model(row)
    layout = _layout(row, model, hardware) if row.chips != 1 else make_layout(model, row.batch)

    def step(phase, length):
        return forward_pass(phase, model, hardware, row.batch, length, layout, collectives=row.collectives)

    if row.kind == "decode_step":
        return RowModel(row, ((1, step("decode", row.context)),))
    if row.kind == "prefill":
        return RowModel(row, ((1, step("prefill", row.context)),))
    scale = row.batch if row.metric == "aggregate_output_tokens_per_s" else 1
    if row.output is None:
        return RowModel(row, ((1, step("decode", row.context)),), rate_numerator=scale)
    passes = [(1, step("prefill", row.context))]
    if row.output > 1:
        passes.append((row.output - 1, step("decode", row.context + row.output / 2)))
    return RowModel(row, tuple(passes), rate_numerator=scale * row.output)


def _layout(row, model, hardware):
    """The layout of a multi-chip row: as published (TP/PP), the fastest split of the published
    chip count, or, where the count is not published, the fewest chips that hold the model
    (placement.fewest_chips_layout). Chosen once, in ideal mode, so a fit does not move it."""
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
