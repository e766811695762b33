"""`roofline plot roofline|breakdown|sweep|frontier|kv ... --output FILE.png|svg|pdf`: charts of
roofline's answers (roofline.plots; matplotlib from the notebooks extra)."""
import click

from .. import api, plots
from ..sweep import sweep as run_sweep
from . import cli
from .analysis_cmd import parse_values
from .output import COUNT, DTYPE, DTYPE_LIST, Progress, quiet_option
from .run_cmd import apply_sets


def _output(func):
    return click.option("--output", "-o", required=True, metavar="FILE.png|svg|pdf",
                        help="File to write; its extension picks the format (png, svg, pdf).")(func)


def _mode(func):
    return click.option("--mode", type=click.Choice(["ideal", "calibrated"]), default=None,
                        help="ideal: datasheet peaks; calibrated: achieved ceilings and fixed costs (default "
                             "where the chip has a calibration).")(func)


def _step_options(func):
    """The question of one step: model, chip, phase, batch, length, dtypes, layout, what-if."""
    options = [
        click.option("--model", "-m", required=True, help="Model id (roofline list models) or spec file."),
        click.option("--hardware", "--chip", "-c", "hardware", required=True, help="Chip id or spec file."),
        click.option("--phase", type=click.Choice(["decode", "prefill"]), default="decode", show_default=True,
                     help="A decode step or a prefill."),
        click.option("--batch", "-b", type=COUNT, default=1, show_default=True,
                     help="Sequences decoded (or prompts prefilled) together."),
        click.option("--context", type=COUNT, default=1024, show_default=True,
                     help="Decode: tokens in each KV cache. Prefill: prompt length."),
        _mode,
        click.option("--weights-dtype", type=DTYPE, default=None, help="Storage dtype of the weights."),
        click.option("--kv-dtype", type=DTYPE, default=None, help="Storage dtype of the KV cache."),
        click.option("--chips", "-n", type=COUNT, default=1, show_default=True, help="Chips."),
        click.option("--tp", type=int, default=None, help="Tensor-parallel chips per stage."),
        click.option("--pp", type=int, default=None, help="Pipeline stages."),
        click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE",
                     help="What-if override of a model field or hardware.FIELD."),
        _output,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _step(model, hardware, phase, batch, context, mode, weights_dtype, kv_dtype, chips, tp, pp, sets):
    """(result, chip) of the step the options describe."""
    from ..hardware import load_hardware
    overrides, hardware, _ = apply_sets(hardware, sets)
    chip = hardware if not isinstance(hardware, str) else load_hardware(hardware)
    common = dict(batch=batch, mode=mode, weights_dtype=weights_dtype, kv_dtype=kv_dtype, overrides=overrides,
                  chips=chips, tp=tp, pp=pp)
    if phase == "prefill":
        return api.prefill(model, chip, prompt=context, **common), chip
    return api.decode(model, chip, context=context, **common), chip


def _write(draw, output, size=(8, 5.5)):
    """Check the file name first (nothing is computed for a bad one), draw, write, say where."""
    plots.save_check(output)
    figure, ax = plots.new_figure(size)
    draw(ax)
    plots.save(figure, output)
    click.echo(f"wrote {output}", err=True)


@cli.group("plot")
def plot():
    """Charts to a PNG, SVG or PDF file (needs matplotlib: pip install 'roofline[notebooks]')."""


@plot.command("roofline")
@_step_options
def plot_roofline(output, **question):
    """The roofline chart of a step: each operator's intensity and achieved FLOP/s under the chip's roofs."""
    plots.require("matplotlib")
    result, chip = _step(**question)
    _write(lambda ax: plots.roofline_chart(result, chip, ax=ax), output)


@plot.command("breakdown")
@_step_options
def plot_breakdown(output, **question):
    """Time of a step by operator, fixed costs and link time, with each one's share."""
    plots.require("matplotlib")
    result, chip = _step(**question)
    _write(lambda ax: plots.breakdown_chart(result, chip, ax=ax), output)


@plot.command("sweep")
@click.option("--model", "-m", required=True, help="Model id or spec file.")
@click.option("--hardware", "--chip", "-c", "hardware", required=True, help="Chip id or spec file.")
@click.option("--batch", "-b", default="1:4096:x2", show_default=True,
              help="Batch sizes: a list and/or ranges, e.g. 1,8,64 or 1:1024:x2.")
@click.option("--context", default="1024,8192", show_default=True, help="Contexts, same syntax.")
@click.option("--weights-dtype", type=DTYPE_LIST, default=None, help="Weight dtypes, comma-separated.")
@_mode
@click.option("--set", "sets", multiple=True, metavar="FIELD=VALUE", help="What-if override.")
@_output
def plot_sweep(model, hardware, batch, context, weights_dtype, mode, sets, output):
    """Aggregate decode throughput against batch, one line per context (and weights dtype)."""
    plots.require("matplotlib")
    overrides, hardware, _ = apply_sets(hardware, sets)
    dtypes = None if weights_dtype is None else weights_dtype.split(",")
    grid = run_sweep(model, hardware, batch=parse_values(batch, "batch"), context=parse_values(context, "context"),
                     weights_dtype=dtypes, mode=mode, overrides=overrides)
    _write(lambda ax: plots.sweep_chart(grid, None if isinstance(hardware, str) else hardware, ax=ax), output)


@plot.command("frontier")
@click.option("--model", "-m", required=True, help="Model id or spec file.")
@click.option("--hardware", "--chip", "-c", "hardware", multiple=True, required=True,
              help="Chip id or spec file; repeat for several chips.")
@click.option("--context", type=COUNT, default=4096, show_default=True, help="Tokens in each KV cache.")
@click.option("--batch", "-b", default="1:1024:x2", show_default=True, help="Batch sizes along each curve.")
@click.option("--mode", type=click.Choice(["ideal", "calibrated"]), default="ideal", show_default=True,
              help="ideal compares chips on their datasheets; calibrated where each chip has a calibration.")
@click.option("--weights-dtype", type=DTYPE, default=None, help="Storage dtype of the weights.")
@_output
@quiet_option
def plot_frontier(model, hardware, context, batch, mode, weights_dtype, output, quiet):
    """Per-user decode speed against aggregate throughput as the batch grows, per chip; stars at the
    critical batch, hollow markers where the batch does not fit."""
    plots.require("matplotlib")
    batches = parse_values(batch, "batch")
    with Progress("decoding", total=len(hardware) * len(batches), quiet=quiet) as progress:
        _write(lambda ax: plots.frontier_chart(model, list(hardware), context=context, batches=batches, mode=mode,
                                               ax=ax, progress=progress.advance, weights_dtype=weights_dtype), output)


@plot.command("kv")
@click.option("--model", "-m", "models", multiple=True, required=True, help="Model id or spec file; repeat.")
@click.option("--hardware", "--chip", "-c", "hardware", default=None, help="Chip whose memory to draw as a line.")
@click.option("--batch", "-b", type=COUNT, default=1, show_default=True, help="Sequences.")
@click.option("--context", default=None, help="Contexts (default 512 to ~160k); list or ranges.")
@_output
def plot_kv(models, hardware, batch, context, output):
    """KV cache against context for one or more models, each to its maximum context."""
    plots.require("matplotlib")
    contexts = None if context is None else sorted(parse_values(context, "context"))
    _write(lambda ax: plots.kv_chart(list(models), contexts, hardware=hardware, batch=batch, ax=ax), output)
