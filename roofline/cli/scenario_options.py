"""The options that describe a question, declared once for every command that answers one.

`scenario_options` adds them to a command (the sqlite-utils pattern: the same names and help text
everywhere); `scenario_kwargs` takes them out of the command's parameters as keyword arguments of
roofline.scenario.build. The point of the question (batch, context or prompt) is each command's
own: a sweep takes ranges, a serving question lengths and a load. OPTIONS also drives the
generated bad-input tests (tests/test_cli_options.py): each row carries a bad value and the words
its one-line error must contain.
"""
from dataclasses import dataclass

import click

from ..dtypes import DTYPES
from ..errors import RooflineError
from ..hardware import split_overrides
from ..units import to_si
from .output import COUNT

_DTYPE_LIST = ", ".join(DTYPES)


@dataclass(frozen=True)
class Option:
    """One scenario option: its parameter name, flags, click settings, and a bad value with the words
    of the error it must give."""
    name: str
    flags: tuple
    help: str
    type: object = str
    default: object = None
    multiple: bool = False
    metavar: str = None
    choices: tuple = None
    bad: str = ""
    error: str = ""

    def decorator(self):
        kind = click.Choice(self.choices) if self.choices else self.type
        return click.option(*self.flags, self.name, type=kind, default=self.default, multiple=self.multiple,
                            metavar=self.metavar, help=self.help,
                            show_default=self.default not in (None, ()))


OPTIONS = (
    Option("model", ("--model", "-m"), "Model id (roofline list models) or spec file.",
           bad="no-such-model", error="unknown model id"),
    Option("hardware", ("--hardware", "--chip", "-c"), "Chip id (roofline list hardware) or spec file.",
           bad="no-such-chip", error="unknown hardware id"),
    Option("mode", ("--mode",), "ideal: datasheet peaks, a lower bound on time. calibrated: achieved ceilings "
           "and fixed costs (the default where the chip has a calibration).", choices=("ideal", "calibrated"),
           bad="fast", error="'fast' is not one of"),
    Option("calibration", ("--calibration",), "Calibration id or file replacing the chip's default "
           "(roofline calibrate writes one).", bad="no-such-calibration", error="no-such-calibration"),
    Option("weights_dtype", ("--weights-dtype",), f"Storage dtype of the weights (and experts): {_DTYPE_LIST}.",
           metavar="DTYPE", bad="fp7", error="'fp7'"),
    Option("experts_dtype", ("--experts-dtype",), f"Storage dtype of the routed experts (MoE): {_DTYPE_LIST}.",
           metavar="DTYPE", bad="fp7", error="'fp7'"),
    Option("kv_dtype", ("--kv-dtype",), f"Storage dtype of the KV cache: {_DTYPE_LIST}.", metavar="DTYPE",
           bad="fp7", error="'fp7'"),
    Option("activations_dtype", ("--activations-dtype",), f"Dtype of activations: {_DTYPE_LIST}.",
           metavar="DTYPE", bad="fp7", error="'fp7'"),
    Option("memory_tier", ("--memory-tier",), "Memory tier that holds the weights (default: the chip's first).",
           bad="no-such-tier", error="no memory tier"),
    Option("sets", ("--set",), "Override a model field, or a chip field as hardware.FIELD, for a what-if: "
           "--set num_layers=20, --set hardware.memory_bandwidth='6 TB/s' (chip fields: memory_bandwidth, "
           "memory_capacity, power, price, peak_flops.DTYPE, each with its unit).",
           multiple=True, metavar="FIELD=VALUE", default=(), bad="num_layers", error="expected FIELD=VALUE"),
    Option("chips", ("--chips", "-n"), "Chips to spread the model over; without --tp/--pp/--ep the fastest "
           "layout is chosen.", type=COUNT, default=1, bad="0", error="chips must be a whole number"),
    Option("tp", ("--tp",), "Tensor-parallel chips per pipeline stage.", type=int, bad="0",
           error="tp must be a whole number"),
    Option("pp", ("--pp",), "Pipeline stages.", type=int, bad="0", error="pp must be a whole number"),
    Option("ep", ("--ep",), "Expert-parallel chips per stage (MoE): 1, equal to --tp (experts over the TP "
           "group), or a multiple of --tp dividing the experts (ep/tp data-parallel attention groups; chips = "
           "ep x pp).", type=int, bad="0", error="ep must be a whole number"),
    Option("moe_tp", ("--moe-tp",), "Chips each routed expert is split over (MoE tensor parallelism, with --tp): "
           "the tp / moe-tp expert groups are the MoE expert parallelism (MoE TP x MoE EP = TP).", type=int,
           bad="0", error="moe-tp must be a whole number"),
    Option("redundant_experts", ("--redundant-experts",), "Copies of hot routed experts added so that experts + "
           "copies divide over the --ep ranks (EPLB: 256 + 32 = 288 slots over EP48).", type=int, default=0,
           bad="-1", error="redundant experts must be a whole number"),
    Option("microbatches", ("--microbatches",), "Micro-batches in flight in a pipeline (default: min(pp, "
           "batch)).", type=int, bad="0", error="microbatches must be a whole number"),
    Option("link", ("--link",), "Link id between chips (default: scale-up inside its domain, else scale-out; "
           "roofline list links).", bad="no-such-link", error="no-such-link"),
    Option("collectives", ("--collectives",), "The engine's collective library: custom (the one-shot/two-shot "
           "all-reduce kernels of vLLM, SGLang, TensorRT-LLM), nccl or rccl (rings of 2(n-1) steps: PyTorch, "
           "lmdeploy TurboMind until 2024, vLLM on ROCm in 2024).", default="custom",
           choices=("custom", "nccl", "rccl"), bad="mpi", error="'mpi' is not one of"),
    Option("overlap", ("--overlap",), "Computation-communication overlap: moe runs the MoE all-to-all "
           "(dispatch, combine) under the shared experts, as DeepEP does; calibrated mode only (ideal mode adds "
           "them).", default="off", choices=("off", "moe"), bad="all", error="'all' is not one of"),
    Option("price", ("--price",), "Rental price per chip, e.g. '2.5 USD/hour' (default: the chip spec's).",
           metavar="USD/HOUR", bad="2.5", error="price"),
    Option("power", ("--power",), "Power per chip, e.g. '700 W' (default: the chip spec's).", metavar="W",
           bad="700", error="power"),
    Option("pue", ("--pue",), "Facility overhead (PUE, >= 1) multiplying the chips' power.", default="1",
           metavar="FACTOR", bad="0.5", error="pue"),
)

BY_NAME = {option.name: option for option in OPTIONS}
#: options that shape a layout the user gives (commands that search layouts, solve serving, do not take them)
LAYOUT_ONLY = ("moe_tp", "redundant_experts")


def scenario_options(func=None, *, exclude=()):
    """Add every scenario option (but those named in `exclude`) to a click command."""
    def add(command):
        names = tuple(option.name for option in OPTIONS if option.name not in exclude)
        for option in reversed(OPTIONS):
            if option.name in names:
                command = option.decorator()(command)
        command.scenario_options = names     # tests/test_cli_options.py finds the commands by it
        return command
    return add(func) if func is not None else add


def parse_sets(values):
    """--set FIELD=VALUE pairs as a dict; RooflineError for a pair without '='."""
    overrides = {}
    for text in values:
        field, sep, value = text.partition("=")
        if not sep or not field.strip():
            raise RooflineError(f"--set {text!r}: expected FIELD=VALUE, e.g. --set num_layers=20")
        overrides[field.strip()] = value.strip()
    return overrides


def given(params):
    """The flags of the scenario options in `params` that differ from their defaults."""
    return [BY_NAME[name].flags[0] for name, value in params.items()
            if name in BY_NAME and value not in (None, (), BY_NAME[name].default)]


def scenario_kwargs(params):
    """The scenario options in `params` (a command's keyword arguments), removed from it, as keyword
    arguments of roofline.scenario.build (model and hardware included); RooflineError when the
    model or the chip is missing."""
    kwargs = {name: params.pop(name) for name in list(params) if name in BY_NAME}
    for name, listing in (("model", "models"), ("hardware", "hardware")):
        if name in kwargs and kwargs[name] is None:
            raise RooflineError(f"missing {BY_NAME[name].flags[0]}: give an id (roofline list {listing}) or a "
                                "spec file")
    for name, dimension in (("price", "price"), ("power", "power"), ("pue", "number")):
        if kwargs.get(name) is not None:
            to_si(kwargs[name], dimension, BY_NAME[name].flags[0])   # an error names the option
    if "overlap" in kwargs:
        kwargs["overlap"] = kwargs["overlap"] == "moe"
    if "sets" in kwargs:
        kwargs["overrides"] = parse_sets(kwargs.pop("sets"))
        if split_overrides(kwargs["overrides"])[1] and "hardware" not in kwargs:
            raise RooflineError("--set hardware.FIELD: this command takes several chips; change a chip in a spec "
                                "file of its own (roofline show CHIP --format yaml)")
    return kwargs
