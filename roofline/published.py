"""Published microbenchmarks of chips, and how each chip without a fitted calibration gets one.

hardware_specs/published/microbenchmarks.yaml holds figures measured by others (achieved read
bandwidth, best GEMM rate per dtype), each with its suite, kernel, source and date, and a plan per
chip (transfer from a measured sibling, published figures, or an assumed efficiency); the
transfer of calibrations (roofline.transfer) reads them here.
"""
from dataclasses import dataclass
from pathlib import Path

from .errors import SpecError
from .specs import FieldReader, builtin_dir, load_yaml, read_sources

METHODS = ("transfer", "published", "assumed")
FIGURES = ("read_bandwidth",)   # and gemm_<dtype>


@dataclass(frozen=True)
class Figure:
    """A published microbenchmark figure of one chip: read bandwidth [B/s] or GEMM rate [FLOP/s]."""
    chip: str
    figure: str       # read_bandwidth | gemm_<dtype>
    value: float
    suite: str
    kernel: str
    source: str       # the source text (document, URL)
    date: str


@dataclass(frozen=True)
class Plan:
    """How a chip without a fitted calibration gets one: method, the measured chip it leans on, why."""
    chip: str
    method: str
    source_chip: str
    why: str


@dataclass(frozen=True)
class Published:
    figures: tuple    # of Figure
    plans: dict       # chip id -> Plan
    path: str

    def figure(self, chip, name):
        return next((f for f in self.figures if f.chip == chip and f.figure == name), None)


def published_path():
    """The shipped file of published microbenchmarks and calibration plans."""
    return builtin_dir("hardware").joinpath("published", "microbenchmarks.yaml")


def load_published(path=None):
    """The Published figures and plans in `path` (default: the shipped file); SpecError on bad rows.

    Every figure needs a chip, a figure name, a value with its unit, a suite, a source (a key of the
    file's `sources`) and a date; every plan a method (transfer, published or assumed) and the
    measured chip it leans on.
    """
    path = Path(path) if path else published_path()
    data = load_yaml(path)
    sources = read_sources(data, path)
    reader = FieldReader(data, path, sources)
    reader.seen.add("sources")
    figures = []
    for i, row in enumerate(reader.raw("figures")):
        if not isinstance(row, dict):
            raise SpecError(path, f"figures[{i}]: expected a mapping, got {row!r}")
        item = FieldReader(row, path, sources, default_source=row.get("source"), prefix=f"figures[{i}].")
        name = item.text("figure")
        if name not in FIGURES and not name.startswith("gemm_"):
            item._fail("figure", f"'{name}' is not read_bandwidth or gemm_<dtype>")
        if row.get("source") is None:
            item._fail("source", "missing: every published figure names its source (a key of 'sources:')")
        value = item.quantity("value", "bandwidth" if name == "read_bandwidth" else "flops")
        figures.append(Figure(chip=item.text("chip"), figure=name, value=value, suite=item.text("suite"),
                              kernel=item.text("kernel", required=False, default=""),
                              source=sources[str(row["source"])], date=str(item.text("date"))))
        item.seen.add("source")
        item.finish()
    plans = {}
    for chip, entry in (reader.raw("calibrations") or {}).items():
        item = FieldReader(entry, path, sources, prefix=f"calibrations.{chip}.")
        plans[chip] = Plan(chip, item.text("method", choices=METHODS), item.text("from"), item.text("why"))
        item.finish()
    reader.finish()
    return Published(tuple(figures), plans, str(path))
