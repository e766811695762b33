"""Result records: plain fields in SI units, shown as tables in a terminal and in Jupyter.

Each result converts to a dict (the CLI's JSON), to a pandas DataFrame when pandas is installed,
and to pint quantities on request (`quantity("step_time_s")`).
"""
from dataclasses import dataclass, field, fields

#: unit of each field, by name suffix, for quantity() and tables
_UNITS = {"_s": "s", "_bytes": "B", "tokens_per_s": "token/s", "_per_user": "token/s", "_w": "W",
          "_usd_per_mtok": "USD", "_j_per_token": "J/token"}


def unit_of(name):
    for suffix, unit in _UNITS.items():
        if name.endswith(suffix):
            return unit
    return ""


class Record:
    """Mixin: dict, table, DataFrame and pint views of a dataclass of plain values."""

    def to_dict(self):
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.startswith("_"):
                continue
            out[f.name] = [v.to_dict() if isinstance(v, Record) else v for v in value] \
                if isinstance(value, (list, tuple)) else value
        return out

    def summary_rows(self):
        """(field, value) rows of the scalar fields, for tables."""
        return [(k, v) for k, v in self.to_dict().items() if not isinstance(v, (list, dict))]

    def quantity(self, name):
        """A field as a pint quantity of roofline's registry."""
        from .units import Q_
        return Q_(getattr(self, name), unit_of(name) or None)

    def to_frame(self):
        """A one-row pandas DataFrame (pandas must be installed)."""
        import pandas as pd
        return pd.DataFrame([dict(self.summary_rows())])

    def __str__(self):
        from tabulate import tabulate
        return tabulate(self.summary_rows(), tablefmt="plain", floatfmt=".4g")

    def _repr_html_(self):
        from tabulate import tabulate
        return tabulate(self.summary_rows(), headers=["field", "value"], tablefmt="html", floatfmt=".4g")


@dataclass
class OperatorRow(Record):
    name: str
    group: str
    count: int
    flops: float
    bytes: float
    intensity: float          # [FLOP/B]
    time_s: float             # all occurrences
    bound: str


@dataclass
class StepResult(Record):
    """A decode step or a prefill: times, rates, the bound, and the memory it needs."""
    phase: str                # decode | prefill
    model: str
    hardware: str
    mode: str
    batch: int
    context: int              # decode: cached tokens per sequence; prefill: prompt length
    time_s: float
    tokens_per_s_per_user: float
    tokens_per_s: float
    bound: str                # memory | compute | overhead | link latency | link bandwidth
    weight_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    memory_needed_bytes: float
    capacity_bytes: float
    fits: bool
    memory_time_s: float      # in memory-bound operators
    compute_time_s: float     # in compute-bound operators
    overhead_time_s: float    # fixed costs
    link_latency_time_s: float = 0.0    # link latency and collective fixed costs
    link_bandwidth_time_s: float = 0.0  # bytes over links
    chips: int = 1
    tp: int = 1
    pp: int = 1
    ep: int = 1
    microbatches: int = 1
    token_latency_s: float = None       # one token through every pipeline stage
    stage_time_s: float = None          # busiest stage, per micro-batch
    tp_link: str = None
    pp_link: str = None
    dtypes: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    operators: list = field(default_factory=list)

    @property
    def step_time_s(self):
        return self.time_s

    def to_dict(self):
        out = super().to_dict()
        if self.phase == "decode":
            out = {"step_time_s": self.time_s, **out}
        return out
