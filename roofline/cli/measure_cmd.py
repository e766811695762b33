"""`roofline measure`: time kernels and whole steps of a model's shape on this machine's accelerator
(roofline.measure, which needs PyTorch: pip install 'roofline[measure]')."""
import click

from ..errors import RooflineError
from ..optional import require
from . import cli
from .output import quiet_option


@cli.command()
@click.option("--model", "-m", required=True, help="Model id (roofline list models) or spec file whose shape to run.")
@click.option("--out", "--output", "-o", "out", default=None, metavar="FILE",
              help="JSON-lines file to write (default: measure_<model>.jsonl).")
@click.option("--tiny", is_flag=True, help="Tiny kernel shapes and sweeps: checks the script on a CPU in seconds.")
@click.option("--budget-s", type=click.FloatRange(min=0, min_open=True), default=600.0, show_default=True,
              metavar="SECONDS", help="Stop starting new shapes after this many seconds.")
@click.option("--layers", type=click.IntRange(min=1), default=None, help="Decoder layers to build (default: all that fit).")
@click.option("--reps", type=click.IntRange(min=1), default=30, show_default=True, help="Timed replays per shape.")
@click.option("--skip-kernels", is_flag=True, help="Measure whole steps only.")
@quiet_option
def measure(model, out, tiny, budget_s, layers, reps, skip_kernels, quiet):
    """Measure this machine's accelerator for `roofline calibrate` (needs PyTorch: pip install 'roofline[measure]').

    Writes JSON lines: the device, memory bandwidth (copy, reduction), matmul rates per dtype, a
    linear-layer sweep, then decode steps and prefills of the model's shape (random weights) over
    batch and context. Each row is printed as it is measured (not with --quiet).
    """
    try:
        require("torch")
    except RooflineError:
        raise RooflineError("roofline measure needs PyTorch; install it with pip install 'roofline[measure]'") from None
    from .. import measure as measuring
    return measuring.run(measuring.Options(model=model, out=out, tiny=tiny, budget_s=budget_s, layers=layers,
                                           reps=reps, skip_kernels=skip_kernels, quiet=quiet))
