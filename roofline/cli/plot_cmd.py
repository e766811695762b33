"""`roofline plot roofline|breakdown|sweep|frontier|kv ... --output FILE.png|svg|pdf`: charts of
roofline's answers (roofline.plots; matplotlib from the notebooks extra)."""
import click

from .. import api, plots
from ..sweep import sweep as run_sweep
from . import cli
from .analysis_cmd import parse_values
from .output import COUNT, DTYPE, DTYPE_LIST, Progress, quiet_option
from .scenario_options import scenario_kwargs, scenario_options


def _output(func):
    return click.option("--output", "-o", required=True, metavar="FILE.png|svg|pdf",
                        help="File to write; its extension picks the format (png, svg, pdf).")(func)


def _mode(func):
    return click.option("--mode", type=click.Choice(["ideal", "calibrated"]), default=None,
                        help="ideal: datasheet peaks; calibrated: achieved ceilings and fixed costs (default "
                             "where the chip has a calibration).")(func)


def _step_options(func):
    """The question of one step: the scenario options, the phase, batch and length, the output file."""
    options = [
        click.option("--phase", type=click.Choice(["decode", "prefill"]), default="decode", show_default=True,
                     help="A decode step or a prefill."),
        click.option("--batch", "-b", type=COUNT, default=1, show_default=True,
                     help="Sequences decoded (or prompts prefilled) together."),
        click.option("--context", type=COUNT, default=1024, show_default=True,
                     help="Decode: tokens in each KV cache. Prefill: prompt length."),
        _output,
    ]
    for option in reversed(options):
        func = option(func)
    return scenario_options(func)


def _step(phase, batch, context, params):
    """The Scenario of the step the options describe and its StepResult."""
    from ..scenario import build
    length = {"prompt": context} if phase == "prefill" else {"context": context}
    scenario = build(phase=phase, batch=batch, **length, **scenario_kwargs(params))
    return scenario, api.step_result(scenario)


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
def plot_roofline(phase, batch, context, output, **params):
    """The roofline chart of a step: each operator's intensity and achieved FLOP/s under the chip's roofs."""
    plots.require("matplotlib")
    plots.save_check(output)
    scenario, result = _step(phase, batch, context, params)
    _write(lambda ax: plots.roofline_chart(result, scenario.hardware, ax=ax), output)


@plot.command("breakdown")
@_step_options
def plot_breakdown(phase, batch, context, output, **params):
    """Time of a step by operator, fixed costs and link time, with each one's share."""
    plots.require("matplotlib")
    plots.save_check(output)
    scenario, result = _step(phase, batch, context, params)
    _write(lambda ax: plots.breakdown_chart(result, scenario.hardware, ax=ax), output)


@plot.command("sweep")
@click.option("--batch", "-b", default="1:4096:x2", show_default=True,
              help="Batch sizes: a list and/or ranges, e.g. 1,8,64 or 1:1024:x2.")
@click.option("--context", default="1024,8192", show_default=True, help="Contexts, same syntax.")
@_output
@scenario_options(exclude=("weights_dtype",))
@click.option("--weights-dtype", type=DTYPE_LIST, default=None, help="Weight dtypes to sweep, comma-separated.")
def plot_sweep(batch, context, output, weights_dtype, **params):
    """Aggregate decode throughput against batch, one line per context (and weights dtype)."""
    plots.require("matplotlib")
    plots.save_check(output)
    options = scenario_kwargs(params)
    dtypes = None if weights_dtype is None else [d.strip() for d in weights_dtype.split(",")]
    grid = run_sweep(batch=parse_values(batch, "batch"), context=parse_values(context, "context"),
                     weights_dtype=dtypes, **options)
    _write(lambda ax: plots.sweep_chart(grid, ax=ax), output)


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
