"""Result records: plain fields in SI units, shown as tables in a terminal and in Jupyter.

Each result converts to a dict (the CLI's JSON), to a pandas DataFrame when pandas is installed,
and to pint quantities on request (`quantity("step_time_s")`).
"""
from dataclasses import dataclass, field, fields

#: unit of each field, by name suffix, for quantity() and tables
_UNITS = {"tokens_per_s": "token/s", "_per_user": "token/s", "_s": "s", "_bytes": "B", "_w": "W",
          "usd_per_mtok": "USD/Mtok", "joules_per_token": "J/token", "tokens_per_kwh": "token/kWh"}


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
        value = getattr(self, name)
        if value is None:
            from .errors import RooflineError
            raise RooflineError(f"{name} has no value in this result (see its notes)")
        return Q_(value, unit_of(name) or None)

    def to_frame(self):
        """A one-row pandas DataFrame of the scalar fields (pandas must be installed)."""
        return frame([self])

    def _display_rows(self):
        """(field, text) of the scalar fields with a value: units, SI prefixes, 4 significant digits."""
        from .display import cell, field_unit
        return [(k, cell(v, field_unit(k))) for k, v in self.summary_rows() if v is not None and v != ""]

    def __str__(self):
        from tabulate import tabulate
        return tabulate(self._display_rows(), tablefmt="plain", disable_numparse=True)

    def _repr_html_(self):
        from tabulate import tabulate
        return tabulate(self._display_rows(), headers=["field", "value"], tablefmt="html", disable_numparse=True)


def frame(records):
    """A pandas DataFrame with one row per record (its scalar fields): results of a loop, say.

    RooflineError naming pip install 'roofline[notebooks]' where pandas is not installed."""
    from .optional import require
    pd = require("pandas")
    return pd.DataFrame([dict(r.summary_rows()) for r in records])


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
    moe_tp: int = None                  # MoE models: chips each routed expert is split over (MoE TP)
    moe_ep: int = None                  # MoE models: expert groups the routed experts spread over (MoE EP)
    collectives: str = "custom"         # the engine's collective library (roofline.collectives.LIBRARIES)
    microbatches: int = 1
    token_latency_s: float = None       # one token through every pipeline stage
    stage_time_s: float = None          # busiest stage, per micro-batch
    tp_link: str = None
    pp_link: str = None
    calibration_source: str = None      # fitted | transferred from <chip> | published; None in ideal mode
    usd_per_mtok: float = None          # [USD per 1e6 tokens], all chips; None: no price for the chip
    joules_per_token: float = None      # [J/token], all chips; None: no power for the chip
    tokens_per_kwh: float = None        # [token/kWh]
    power_w: float = None               # [W] all chips (x PUE)
    dtypes: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    operators: list = field(default_factory=list)

    @property
    def step_time_s(self):
        return self.time_s

    def _repr_html_(self):
        """In Jupyter: the sections of the CLI's table (answer, time, memory, layout, cost, assumptions)."""
        from .display import sections_html, step_sections
        return sections_html(step_sections(self))

    def breakdown_frame(self):
        """The operators as a pandas DataFrame: FLOPs, bytes, intensity, time, share of the step, bound."""
        table = frame(self.operators)
        table["share"] = table["time_s"] / self.time_s
        return table

    def to_dict(self):
        out = super().to_dict()
        if self.phase == "decode":
            out = {"step_time_s": self.time_s, **out}
        return out
