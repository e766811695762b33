"""The roofline of a forward pass: each operator's time, their sum, and the verdict.

.. math:: t_{op} = \\max\\left(\\frac{F_{op}}{P_{dtype}}, \\frac{Q_{op}}{BW}\\right), \\qquad
          t_{step} = \\sum_{op} n_{op} \\, t_{op} + L \\, t_{layer} + t_{step,0}

(Williams, Waterman & Patterson, "Roofline", CACM 2009.) Summing per-operator maxima, not one
maximum over the step's totals, matters: the weight GEMMs of a large batch are compute-bound while
attention stays memory-bound, and they run one after the other.

Ideal mode uses datasheet peaks, no fixed costs and no latency between chips: a lower bound on time. Calibrated mode uses
the chip's achievable ceilings, a smooth knee and fixed per-layer and per-step costs
(roofline.calibration).
"""
from dataclasses import MISSING, dataclass

import numpy as np

from .calibration_params import PARAMETERS, with_parameter_fields
from .mathops import is_symbolic, smooth_max

MODES = ("ideal", "calibrated")


@with_parameter_fields(lambda row: (row.ceiling_field, MISSING if row.required else row.ceiling_default))
class Ceilings:
    """What bounds operators in one mode: after `mode`, one field per calibration parameter
    (calibration_params.PARAMETERS) in SI units: bandwidth [B/s], FLOP/s per dtype, knee, fixed
    costs [s], dequant_time [s per weight], attention's share of the matmul rate. Ideal mode leaves
    every field but bandwidth and flops at its default; link_latency None means each link's own.
    After them, how the engine runs its collectives: `collectives` (its library,
    roofline.collectives.LIBRARIES) and `overlap` (MoE all-to-all under the shared experts:
    deployment.hidden_by_overlap), set by a Scenario's options."""
    mode: str
    collectives: str = "custom"
    overlap: bool = False

    def latency_of(self, chip_link):
        """One-hop latency of a link in this mode [s]: none in ideal mode (the link specs' latencies
        are assumptions that include software, and ideal mode stays a lower bound:
        roofline.collectives), the fitted one or the link's own in calibrated mode."""
        if self.mode == "ideal":
            return 0.0
        return chip_link.link.latency if self.link_latency is None else self.link_latency


def ceilings(hardware, mode):
    """Ceilings of a chip in `mode` ('ideal' or 'calibrated'; calibrated needs a calibration)."""
    if mode == "ideal" or hardware.calibration is None:
        return Ceilings("ideal", hardware.mem_bandwidth, dict(hardware.peak_flops))
    cal = hardware.calibration
    values = {row.name: getattr(cal, row.name) for row in PARAMETERS}
    values["flops"] = {dtype: cal.flops_for(dtype, peak) for dtype, peak in hardware.peak_flops.items()}
    return calibrated_ceilings(values, hardware.peak_flops)


def calibrated_ceilings(values, peak_flops):
    """Calibrated Ceilings from parameter values {name: SI value} (an absent one: its default).

    Where a ceiling holds a quantity derived from a parameter, it is computed here:
    dequant_time from dequant_ops and the datasheet fp32 peak (`peak_flops`).
    """
    fields = {row.ceiling_field: values.get(row.name, row.default) for row in PARAMETERS}
    fields["dequant_time"] = dequant_time(values.get("dequant_ops", 0.0), peak_flops)
    return Ceilings("calibrated", **fields)


def dequant_time(ops_per_weight, peak_flops):
    """Time to dequantize one weight-only quantized weight on the vector units [s].

    .. math:: t_{dq} = c / P_{fp32}

    c [ops per weight]: unpack, scale (and zero point) of each weight before the matmul, run on
    the non-tensor fp32 units (P_fp32 [FLOP/s], the chip's `fp32` peak). Zero without an fp32
    peak or a fitted c: ideal mode leaves it out (a lower bound).
    """
    if not ops_per_weight or "fp32" not in peak_flops:
        return 0.0
    return ops_per_weight / peak_flops["fp32"]


def critical_batch(peak_flops, bandwidth, bytes_per_weight):
    """Batch at which a weight GEMM turns compute-bound [tokens].

    .. math:: B^* = \\frac{P \\, b_w}{2 \\, BW}

    2 FLOPs per weight per token against b_w bytes per weight: 295 for an H100 at bf16
    (989.4 TFLOP/s, 3.35 TB/s, 2 B); scaling-book's "inference" chapter gives ~240 for TPU v5e.
    """
    return peak_flops * bytes_per_weight / (2 * bandwidth)


def ridge_point(peak_flops, bandwidth):
    """Arithmetic intensity at which an operator turns compute-bound [FLOP/B]: P / BW."""
    return peak_flops / bandwidth


@dataclass(frozen=True)
class OperatorTiming:
    """One operator of a step with its time (per occurrence) and bound."""
    name: str
    group: str
    kind: str
    count: int
    flops: object
    bytes: object
    time: object          # [s] per occurrence
    compute_time: object  # [s] F / P
    memory_time: object   # [s] Q / BW

    @property
    def total_time(self):
        return self.count * self.time

    @property
    def bound(self):
        """'compute' where F/P exceeds Q/BW, else 'memory' (arrays give arrays of labels)."""
        return np.where(np.asarray(self.compute_time) > np.asarray(self.memory_time), "compute", "memory") \
            if not is_symbolic(self.compute_time) else "symbolic"

    @property
    def intensity(self):
        """Arithmetic intensity [FLOP/B]."""
        return self.flops / self.bytes


def time_operators(operators, ceiling):
    """OperatorTiming of each operator under `ceiling`: its roofline time [s].

    .. math:: t = \\left( (F/P)^n + (Q/BW)^n \\right)^{1/n} \\; [+ \\, W \\, t_{dq}]
              \\to \\max(F/P, Q/BW) \\; (n \\to \\infty)

    F [FLOP] at the matmul rate P of the operator's dtype [FLOP/s] (times the attention share for
    attention), Q [B] at the bandwidth BW [B/s], knee n; weight-only quantized GEMMs add the
    dequantization of their W weights (step.dequant_time).
    """
    timed = []
    for op in operators:
        peak = ceiling.flops[op.dtype]
        if op.kind == "attention" and ceiling.attention_efficiency != 1:
            peak = peak * ceiling.attention_efficiency
        compute = op.flops / peak
        memory = op.bytes / ceiling.bandwidth
        time = smooth_max(compute, memory, ceiling.knee)
        if op.dequantized and ceiling.dequant_time:
            time = time + op.weights * ceiling.dequant_time
        timed.append(OperatorTiming(op.name, op.group, op.kind, op.count, op.flops, op.bytes, time, compute, memory))
    return timed


def fixed_time(ceiling, num_layers, mesh_span=0.0):
    """Fixed costs of one forward pass: L t_layer + S t_mesh + t_step [s] (S: the wafer's mesh
    crossings of a token, roofline.wafer.mesh_span; 0 off a wafer)."""
    return num_layers * ceiling.layer_overhead + mesh_span * ceiling.mesh_traversal + ceiling.step_overhead
