"""Calibrated mode: achievable ceilings and fixed costs, the physics the datasheet leaves out.

Ideal mode bounds an operator's time by datasheet peaks alone. Calibrated mode replaces them
with what a chip and its software actually reach, and adds the fixed costs a kernel sequence has:

- ``bandwidth`` [B/s]: achieved memory bandwidth of a large streaming read (copy or reduction);
  HBM parts reach 85-95% of the datasheet figure.
- ``flops`` [FLOP/s] per dtype: achieved dense matmul rate of a large GEMM. A dtype without a
  measured figure is scaled from the datasheet peak by the efficiency of the measured ones.
- ``knee`` [1]: the exponent n of the smooth maximum t = (t_compute^n + t_memory^n)^(1/n) of an
  operator near its ridge point. A hard max (n -> infinity) predicts GEMMs at the critical batch
  size 15-20% fast: tiles, waves and the memory pipeline do not overlap compute perfectly.
- ``layer_overhead`` [s]: fixed time per decoder layer per step: kernel launches and the
  serialised tails of the ~10-15 kernels of a layer (independent of batch and context).
- ``step_overhead`` [s]: fixed time per forward pass (sampling, embedding, host sync).
- ``collective_overhead`` [s]: fixed software cost of one collective (an all-reduce or all-to-all
  launch and synchronisation), on top of the link's latency and bandwidth terms.
- ``link_latency`` [s]: measured one-hop latency between chips, replacing the link spec's value
  (often an assumption) in calibrated mode.

Each value carries its source (a measurement file and the fit that produced it).
"""
from dataclasses import dataclass

from .errors import RooflineError


@dataclass(frozen=True)
class Calibration:
    bandwidth: float                      # [B/s]
    flops: dict                           # dtype -> [FLOP/s]
    knee: float = float("inf")            # [1]
    layer_overhead: float = 0.0           # [s]
    step_overhead: float = 0.0            # [s]
    collective_overhead: float = 0.0      # [s]
    link_latency: float = None            # [s] None: the link spec's latency
    source: str = ""                      # provenance: device, date, data file
    efficiency: float = 1.0               # achieved / peak matmul rate, for dtypes not measured

    def flops_for(self, dtype, peak):
        """Achievable FLOP/s of `dtype`: measured if known, else peak x measured efficiency."""
        return self.flops.get(dtype, peak * self.efficiency)


def read_calibration(reader, hardware):
    """Calibration from the spec's `achieved:` (measured ceilings) and `calibration:` (fit) blocks.

    Returns None when the spec has neither: calibrated mode then falls back to ideal with a note.
    """
    achieved = reader.sub("achieved", required=False)
    fitted = reader.sub("calibration", required=False)
    if achieved is None and fitted is None:
        return None
    bandwidth, flops = hardware.mem_bandwidth, {}
    for block in (achieved, fitted):
        if block is None:
            continue
        if block.has("bandwidth"):
            bandwidth = block.quantity("bandwidth", "bandwidth")
        if block.has("flops"):
            rates = block.sub("flops")
            for dtype in list(rates.data):
                if dtype not in hardware.peak_flops:
                    rates._fail(dtype, f"no {dtype} peak in peak_flops to calibrate against")
                flops[dtype] = rates.quantity(dtype, "flops")
            rates.finish()
    efficiencies = [flops[d] / hardware.peak_flops[d] for d in flops]
    values = {}
    if fitted is not None:
        values = dict(knee=fitted.quantity("knee", "number", required=False),
                      layer_overhead=fitted.quantity("layer_overhead", "time", required=False, allow_zero=True),
                      step_overhead=fitted.quantity("step_overhead", "time", required=False, allow_zero=True),
                      collective_overhead=fitted.quantity("collective_overhead", "time", required=False,
                                                          allow_zero=True),
                      link_latency=fitted.quantity("link_latency", "time", required=False, allow_zero=True))
        values = {k: v for k, v in values.items() if v is not None}
        fitted.finish()
    if achieved is not None:
        achieved.finish()
    source = ", ".join(sorted({f.source_key for f in reader.facts
                               if f.field.startswith(("achieved.", "calibration."))}))
    return Calibration(bandwidth=bandwidth, flops=flops, source=source,
                       efficiency=min(efficiencies) if efficiencies else 1.0, **values)


def require(hardware):
    """The chip's calibration, or RooflineError saying it has none."""
    if hardware.calibration is None:
        raise RooflineError(f"{hardware.id} has no calibration; use --mode ideal or roofline calibrate")
    return hardware.calibration
