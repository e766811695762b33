"""`roofline calibrate` and `roofline validate`: from measurements (roofline measure) to calibrated mode."""
from dataclasses import replace
from pathlib import Path

import click

from .. import calibrate as calibration_fit
from .. import transfer as transfer_lib
from ..calibration import read_calibration, write_calibration
from ..errors import RooflineError
from ..hardware import load_hardware
from ..measurements import read_measurements, row_filter
from ..specs import KINDS, user_data_root
from ..step import ceilings
from ..validate import validate as validate_rows
from . import cli
from ..display import si_text
from .output import Progress, echo_wrapped, emit_record, emit_table, format_option, quiet_option


def _percent(value):
    return None if value is None else f"{100 * value:+.1f}%"


def _summary_text(stats):
    if stats is None:
        return "none"
    return f"median {100 * stats['median']:.1f}%, largest {100 * stats['max']:.1f}% over {stats['rows']} rows"


@cli.group(invoke_without_command=True)
@click.option("--hardware", "--chip", "-c", "hardware", default=None, help="Chip id (roofline list hardware) or spec file.")
@click.option("--measurements", "-i", default=None, help="JSON lines from roofline measure, or a CSV of published figures.")
@click.option("--output", "-o", default=None,
              help="Calibration file to write (default: the chip's calibration in the user data directory, "
                   "which later queries on the chip then use).")
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@click.option("--hold-out", "hold_out", multiple=True, metavar="FIELD OP VALUE",
              help="Leave rows out of the fit and report them apart, e.g. --hold-out 'kind=decode_step,batch>=128' "
                   "(commas: all conditions hold) or --hold-out model=llama-2-13b (repeat: a row matching any is "
                   "held out). Kernel rows match too: hold them out only on purpose.")
@click.option("--note", default=None, help="A remark kept in the file's provenance (power cap, engine, ...).")
@click.option("--max-iterations", type=click.IntRange(1, 10000), default=100, show_default=True,
              help="Iteration limit of the least-squares fit.")
@format_option
@quiet_option
@click.pass_context
def calibrate(ctx, hardware, measurements, output, force, hold_out, note, max_iterations, fmt, quiet):
    """Fit calibrated mode (bandwidth, FLOP/s, knee, fixed costs) to measurements and write it.

    Prints the error before (ideal mode and the chip's current calibration) and after the fit.
    `roofline calibrate transfer` carries a calibration to another chip instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    if hardware is None or measurements is None:
        raise RooflineError("roofline calibrate needs --hardware and --measurements (or the subcommand "
                            "'transfer': roofline calibrate transfer --from CHIP --to CHIP)")
    chip = load_hardware(hardware)
    filters = [row_filter(text) for text in hold_out]
    data = read_measurements(measurements)
    path = Path(output) if output else user_data_root() / KINDS["calibration"] / f"{chip.id}.yaml"
    if path.exists() and not force:
        raise RooflineError(f"{path} exists; use --force to replace it or --output to write elsewhere")
    steps, kernels, held_models, other = calibration_fit.prepare(data, chip, filters)
    with Progress("fitting: residual evaluations", quiet=quiet) as progress:
        fit = calibration_fit.calibrate(steps, kernels, chip, held_models, max_iterations=max_iterations,
                                        progress=progress.advance)
    current = ceilings(chip, "calibrated") if chip.calibration is not None else None
    doc, comment = calibration_fit.document(fit, data, current, hold_out, note=note)
    write_calibration(path, doc, comment, chip, force=force)
    _report(fit, current, doc, other, path, fmt, chip)


def _count(reasons):
    counts = {}
    for reason in reasons:
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def _report(fit, current, doc, other, path, fmt, chip):
    ideal = ceilings(fit.hardware, "ideal")
    rows, units = [], []
    for label, models in (("fit", fit.fit_models), ("held out", fit.held_out_models)):
        for m in models:
            units.append("s" if m.rate_numerator is None else "tok/s")
            rows.append([label, m.row.label, m.measured, m.figure(ideal) / m.measured - 1,
                         None if current is None else m.figure(current) / m.measured - 1,
                         m.figure(fit.ceiling) / m.measured - 1])
    headers = ["set", "row", "measured", "ideal_error", "current_error", "fitted_error"]
    stats = calibration_fit.before_after(fit, current)
    if fmt != "table":
        if fmt == "json":
            emit_record([], fmt, data={"calibration": doc, "written": str(path), "rows": [
                dict(zip(headers, r)) for r in rows]})
        else:
            emit_table(rows, headers, fmt)
        return
    emit_table([[r[0], r[1], si_text(r[2], unit), *map(_percent, r[3:])] for r, unit in zip(rows, units)],
               ["set", "row", "measured", "ideal", "current", "fitted"], fmt)
    click.echo()
    current_name = chip.calibration.path if chip.calibration is not None else "none"
    for label, summaries in stats.items():
        click.echo(f"{label} rows, error before: ideal {_summary_text(summaries['ideal'])}; "
                   f"current calibration ({current_name}) {_summary_text(summaries['current'])}")
        click.echo(f"{label} rows, error after:  {_summary_text(summaries['fitted'])}")
    c = fit.ceiling
    click.echo(f"bandwidth {c.bandwidth / 1e12:.4g} TB/s; "
               + "; ".join(f"{d} {c.flops[d] / 1e12:.4g} TFLOP/s" for d in fit.derived)
               + f"; knee {c.knee:.3g}; layer overhead {c.layer_overhead * 1e6:.3g} us; "
                 f"step overhead {c.step_overhead * 1e6:.3g} us ({fit.iterations} iterations)")
    for name, why in fit.held.items():
        click.echo(f"held {name}: {why}")
    if fit.at_bound:
        click.echo(f"ended on a bound (upper: the best kernel or the datasheet; lower: zero): {', '.join(fit.at_bound)}")
    for reason, count in sorted(_count(s.reason for s in other).items()):
        click.echo(f"skipped {count} row{'s' if count > 1 else ''}: {reason}")
    click.echo(f"wrote {path}")


@calibrate.command("transfer")
@click.option("--from", "source", default=None, help="Chip whose calibration is carried (e.g. h100-sxm).")
@click.option("--to", "target", default=None, help="Chip to calibrate (e.g. h200).")
@click.option("--calibration", default=None,
              help="Calibration file or id to start from (default: the --from chip's own calibration).")
@click.option("--output", "-o", default=None,
              help="File to write (default: the target's calibration in the user data directory).")
@click.option("--all", "every", is_flag=True,
              help="Write the calibration of every chip planned in hardware_specs/published/microbenchmarks.yaml "
                   "(transfer, published or assumed) into --output-dir.")
@click.option("--output-dir", default=None, help="Directory for --all (default: the user data directory's).")
@click.option("--published", default=None,
              help="Published microbenchmarks and plans (default: hardware_specs/published/microbenchmarks.yaml).")
@click.option("--force", is_flag=True, help="Replace existing files.")
def transfer_command(source, target, calibration, output, every, output_dir, published, force):
    """Carry a calibration to a chip of the same kind and software stack and write it.

    Scales the achieved bandwidth and FLOP/s by the ratio of the chips' peaks (or of their published
    microbenchmarks of one suite, and a TDP limit within one microarchitecture) and keeps the knee
    and fixed costs; the file records every derivation (roofline/transfer.py).
    """
    figures = transfer_lib.load_published(published)
    if every:
        if source or target or calibration or output:
            raise RooflineError("--all writes every planned chip; it takes only --output-dir and --force")
        directory = Path(output_dir) if output_dir else user_data_root() / KINDS["calibration"]
        for chip, path in transfer_lib.regenerate(directory, figures, force=force):
            click.echo(f"wrote {_shown(path)}")
        return
    if not source or not target:
        raise RooflineError("roofline calibrate transfer needs --from CHIP and --to CHIP (or --all)")
    source_chip, target_chip = load_hardware(source), load_hardware(target)
    transfer_lib.check_related(source_chip, target_chip)
    if calibration is not None:
        from ..specs import resolve
        try:
            path = resolve("calibration", calibration)
        except RooflineError:
            raise RooflineError(f"--calibration '{calibration}' is neither a file nor a known calibration id") from None
        source_chip = replace(source_chip, calibration=read_calibration(path, source_chip))
    if source_chip.calibration is None:
        raise RooflineError(f"{source_chip.id} has no calibration to transfer; fit one with roofline calibrate")
    path = Path(output) if output else user_data_root() / KINDS["calibration"] / f"{target_chip.id}.yaml"
    if path.exists() and not force:
        raise RooflineError(f"{path} exists; use --force to replace it or --output to write elsewhere")
    result = transfer_lib.transferred(source_chip.calibration, source_chip, target_chip, figures)
    date = None
    if source_chip.calibration.path:
        from ..specs import load_yaml
        date = load_yaml(source_chip.calibration.path).get("date")
    written = transfer_lib.write_transferred(result, source_chip, target_chip, path, force=force, date=date)
    click.echo(result.calibration.note)
    click.echo(f"wrote {_shown(written)}")


def _shown(path):
    """`path` relative to the working directory where it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@cli.command()
@click.option("--measurements", "-i", required=True, help="JSON lines from roofline measure, or a CSV of published figures.")
@click.option("--hardware", "--chip", "-c", "hardware", default=None,
              help="Chip to predict on (default: the chip each row's device names).")
@click.option("--mode", type=click.Choice(["ideal", "calibrated"]), default="calibrated", show_default=True,
              help="Mode of the predictions (calibrated falls back to ideal on a chip without calibration).")
@click.option("--calibration", default=None, help="Calibration file or id replacing the chip's default.")
@click.option("--leave-one-model-out", "leave_out", is_flag=True,
              help="Also refit the chip's calibration without each model's rows and predict them (the rows the "
                   "chip's calibration file held out stay out of every fit), with each fitted fixed cost's effect "
                   "at +-20%. Needs --hardware.")
@click.option("--simulate", is_flag=True, help="Serving CSV: predict the aggregated rows by the discrete-event "
                                              "simulation (serve --simulate) instead of the mean-value model.")
@format_option
@quiet_option
def validate(measurements, hardware, mode, calibration, leave_out, simulate, fmt, quiet):
    """Predicted against measured for every row of a measurement file, with error statistics."""
    if calibration is not None and hardware is None:
        raise RooflineError("--calibration needs --hardware (a calibration belongs to one chip)")
    if leave_out and hardware is None:
        raise RooflineError("--leave-one-model-out needs --hardware (the fit it repeats belongs to one chip)")
    if leave_out and fmt == "csv":
        raise RooflineError("--leave-one-model-out adds a second table, which CSV cannot hold; use --format json, "
                            "table or markdown")
    from ..serving.rows import is_serving_csv
    if is_serving_csv(measurements):
        if hardware is not None:
            raise RooflineError("a serving CSV names each row's system; --hardware and --calibration do not apply")
        from .serve_cmd import validate_serving
        return validate_serving(measurements, mode, fmt, simulate)
    if simulate:
        raise RooflineError("--simulate applies to a serving CSV (TTFT and TPOT rows); this file has step rows")
    data = read_measurements(measurements)
    with Progress("validating rows", total=len(data.rows), quiet=quiet) as progress:
        result = validate_rows(data, hardware, mode, calibration, progress=progress.advance)
    left = _left_out(data, hardware, calibration) if leave_out else None
    headers = ["row", "hardware", "mode", "unit", "measured", "predicted", "error", "ideal", "ideal_is_bound"]
    rows = [[c.row.label, c.hardware, c.mode, c.unit, c.measured, c.predicted, c.error, c.ideal, c.ideal_is_bound]
            for c in result.rows]
    summary = [list(s) for s in result.summary()]
    skipped = [[s.where, s.what, s.reason] for s in result.skipped]
    if fmt == "json":
        emit_record([], fmt, data={
            "rows": [dict(zip(headers, r)) for r in rows],
            "summary": [dict(zip(["group", "rows", "median_abs_error", "max_abs_error", "ideal_not_bound"], s))
                        for s in summary],
            "skipped": [dict(zip(["where", "row", "reason"], s)) for s in skipped],
            **({"leave_one_model_out": left} if left is not None else {})})
        return
    if fmt == "csv":
        emit_table(rows, headers, fmt)
        return
    emit_table([[r[0], r[1], r[2], r[3], si_text(r[4], r[3]), si_text(r[5], r[3]), _percent(r[6]),
                 si_text(r[7], r[3]), "yes" if r[8] else "NO"] for r in rows],
               ["row", "hardware", "mode", "unit", "measured", "predicted", "error", "ideal", "ideal <= time"], fmt)
    click.echo()
    emit_table([[g, n, f"{100 * med:.1f}%", f"{100 * top:.1f}%", bad] for g, n, med, top, bad in summary],
               ["rows", "count", "median |error|", "largest |error|", "ideal not a bound"], fmt)
    for c in result.not_bounds:
        echo_wrapped(f"ideal mode is not a lower bound on time: {c.row.label} ({c.row.where}): ideal "
                     f"{si_text(c.ideal, c.unit)}, measured {si_text(c.measured, c.unit)}", indent="  ")
    if skipped:
        click.echo()
        emit_table(skipped, ["skipped", "row", "reason"], fmt)
    if left is not None:
        _print_left_out(left, fmt)


def _left_out(data, hardware, calibration):
    """The leave-one-model-out section as plain data (validate.leave_one_model_out), holding out of
    every fit the rows the chip's calibration file held out."""
    from ..specs import load_yaml
    from ..validate import leave_one_model_out, shown_costs
    chip = transfer_lib.with_calibration(load_hardware(hardware), calibration)
    held = []
    if chip.calibration is not None and chip.calibration.path:
        held = list((load_yaml(chip.calibration.path).get("fit") or {}).get("held_out_rows") or [])
    results, whole = leave_one_model_out(data, chip, held)
    return {"hardware": chip.id, "held_out_of_every_fit": held,
            "fit_of_every_row": {c: getattr(whole.ceiling, c) for c in shown_costs(whole)},
            "models": [{"model": r.model, "rows": r.rows, "measured": list(r.measured),
                        "in_sample_errors": list(r.in_sample), "left_out_errors": list(r.left_out),
                        "constants_s": r.constants,
                        "sensitivity": {k: {"minus_20": v[0], "plus_20": v[1]} for k, v in r.sensitivity.items()}}
                       for r in results]}


def _print_left_out(left, fmt):
    import statistics
    click.echo()
    held = ", ".join(left["held_out_of_every_fit"]) or "none"
    click.echo(f"leave one model out on {left['hardware']} (rows held out of every fit: {held}):")
    names = {"step_overhead": "per step", "layer_overhead": "per layer", "mesh_traversal": "per mesh",
             "link_latency": "per hop"}
    names = {k: v for k, v in names.items() if k in left["fit_of_every_row"]}
    table = []
    for m in left["models"]:
        c = m["constants_s"]
        table.append([m["model"], m["rows"], " ".join(f"{100 * e:+.0f}%" for e in m["in_sample_errors"]),
                      " ".join(f"{100 * e:+.0f}%" for e in m["left_out_errors"]),
                      " / ".join("-" if c[k] is None else f"{c[k] * 1e6:.3g}" for k in names),
                      " ".join(f"{names[k].split()[1]} {100 * v['plus_20']:+.0f}%/{100 * v['minus_20']:+.0f}%"
                               for k, v in m["sensitivity"].items())])
    emit_table(table, ["model", "rows", "in sample", "left out",
                       "refit: " + " / ".join(v.split()[1] for v in names.values()) + " us",
                       "answer at +20%/-20% of the constant"], fmt)
    inside = [abs(e) for m in left["models"] for e in m["in_sample_errors"]]
    outside = [abs(e) for m in left["models"] for e in m["left_out_errors"]]
    click.echo(f"in sample: median {100 * statistics.median(inside):.1f}%, largest {100 * max(inside):.1f}%; "
               f"left out: median {100 * statistics.median(outside):.1f}%, largest {100 * max(outside):.1f}% "
               f"over {len(outside)} rows of {len(left['models'])} models")
