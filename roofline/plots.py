"""Charts of roofline's answers with matplotlib: the roofline chart of a step's operators, the time
breakdown of a step, a sweep, the latency / throughput frontier of chips, and KV-cache growth.

matplotlib is optional (pip install 'roofline[notebooks]'); it is imported only when a chart is
drawn, and its absence is one RooflineError naming the extra. Each function draws on `ax` when
given (a notebook's subplot) or on a new figure, labels both axes with their units, titles the
chart with the model, the chip, the mode and where its calibration comes from, and returns the
Figure (`save(figure, path)` writes PNG, SVG or PDF).
"""
import numpy as np

from .errors import RooflineError
from .optional import require

FORMATS = ("png", "svg", "pdf")


def _axes(ax, figsize=(8, 5)):
    """(figure, axes): `ax` and its figure, or a new figure (through pyplot, so that notebooks show it)."""
    require("matplotlib")
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt
    figure, ax = plt.subplots(figsize=figsize)
    return figure, ax


def new_figure(figsize=(8, 5)):
    """A figure and axes outside pyplot (for writing files from the command line: no display)."""
    require("matplotlib")
    from matplotlib.figure import Figure
    figure = Figure(figsize=figsize, layout="constrained")
    return figure, figure.add_subplot()


def save_check(path):
    """RooflineError unless `path` ends in .png, .svg or .pdf."""
    suffix = str(path).rsplit(".", 1)[-1].lower() if "." in str(path) else ""
    if suffix not in FORMATS:
        raise RooflineError(f"--output {path}: expected a file name ending in .png, .svg or .pdf")


def save(figure, path):
    """Write `figure` to `path` (.png, .svg or .pdf); RooflineError for another extension or an unwritable path."""
    save_check(path)
    try:
        figure.savefig(path, dpi=150)
    except OSError as exc:
        raise RooflineError(f"--output {path}: cannot write ({exc.strerror})") from None
    return path


def calibration_text(hardware, mode):
    """Where a chart's ceilings come from: 'datasheet peaks' (ideal) or the calibration's origin
    ('fitted', 'transferred from h100-sxm', 'published', 'assumed efficiency')."""
    if mode != "calibrated" or hardware is None or hardware.calibration is None:
        return "datasheet peaks"
    return f"calibration {hardware.calibration.origin}"


def title(model, chip, mode, hardware=None, detail=""):
    """A chart title: what (detail), the model, the chip, the mode and the calibration source."""
    import textwrap
    head = f"{model} on {chip}" + (f", {detail}" if detail else "")
    return "\n".join([head] + textwrap.wrap(f"{mode} mode ({calibration_text(hardware, mode)})", 80))


def _hardware(result, hardware):
    if hardware is not None:
        return hardware
    from .hardware import load_hardware
    return load_hardware(result.hardware)


def roofline_chart(result, hardware=None, ax=None, dtypes=("bf16", "fp8")):
    """The roofline chart of a step: each operator with FLOPs at (intensity [FLOP/B], achieved FLOP/s)
    under the chip's roofs min(BW x I, P) (Williams, Waterman & Patterson, CACM 2009).

    Datasheet roofs for `dtypes` the chip has, the calibrated roof where the result is calibrated;
    blue points are memory-bound operators, red compute-bound. Labels stay inside the axes.
    """
    hardware = _hardware(result, hardware)
    figure, ax = _axes(ax, (8, 5.5))
    placed = [op for op in result.operators if op.flops > 0 and op.time_s > 0]
    x = np.array([op.intensity for op in placed])
    y = np.array([op.flops / op.time_s for op in placed])
    low = min([0.1] + list(x / 3))
    high = max([1e4] + list(x * 30))
    intensity = np.logspace(np.log10(low), np.log10(high), 200)
    for dtype in [d for d in dtypes if d in hardware.peak_flops]:
        peak = hardware.peak_flops[dtype]
        ax.loglog(intensity, np.minimum(hardware.mem_bandwidth * intensity, peak),
                  label=f"{dtype} datasheet roof, ridge {peak / hardware.mem_bandwidth:.0f} FLOP/B")
    if result.mode == "calibrated" and hardware.calibration is not None:
        cal = hardware.calibration
        achieved = cal.flops_for("bf16", hardware.peak_flops.get("bf16", max(hardware.peak_flops.values())))
        ax.loglog(intensity, np.minimum(cal.bandwidth * intensity, achieved), "k--", lw=0.8,
                  label="bf16 calibrated roof (achieved)")
    colors = ["tab:red" if op.bound == "compute" else "tab:blue" for op in placed]
    ax.scatter(x, y, c=colors, zorder=3, label="operators (blue: memory-bound, red: compute-bound)")
    middle = np.sqrt(low * high)  # labels right of a point in the left half, left of it in the right half
    for names, (px, py) in _clusters(placed, x, y):
        right = px > middle
        ax.annotate(names, (px, py), xytext=(-5 if right else 5, -12), textcoords="offset points", fontsize=8,
                    ha="right" if right else "left", clip_on=True)
    ax.set_xlim(low, high)
    ax.set_xlabel("arithmetic intensity [FLOP/B]")
    ax.set_ylabel("achieved rate [FLOP/s]")
    ax.set_title(title(result.model, result.hardware, result.mode, hardware, _step_text(result)), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    return figure


def _step_text(result):
    """'decode, batch 1, context 1024' (and the layout on several chips)."""
    length = "prompt" if result.phase == "prefill" else "context"
    layout = f", {result.chips} chips (TP={result.tp}, PP={result.pp})" if result.chips > 1 else ""
    return f"{result.phase}, batch {result.batch}, {length} {result.context}{layout}"


def _clusters(placed, x, y):
    """(label, point) of operators within a factor of 2 in intensity, which share one label."""
    groups = []
    for i in np.argsort(x):
        if groups and x[i] < 2 * x[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [(", ".join(placed[i].name for i in group), (x[group[0]], y[group[0]])) for group in groups]


def breakdown_chart(result, hardware=None, ax=None):
    """Time of a step by operator, with fixed costs and link time as bars of their own [ms]."""
    figure, ax = _axes(ax, (8, 5))
    items = [(op.name, op.time_s, "tab:red" if op.bound == "compute" else "tab:blue") for op in result.operators]
    items += [(name, value, color) for name, value, color in (
        ("fixed costs", result.overhead_time_s, "tab:gray"), ("link latency", result.link_latency_time_s, "tab:olive"),
        ("link bandwidth", result.link_bandwidth_time_s, "tab:green")) if value]
    names, times, colors = zip(*items)
    times_ms = np.array(times) * 1e3
    ax.barh(range(len(names)), times_ms, color=colors)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    total = times_ms.sum()
    for i, value in enumerate(times_ms):
        ax.annotate(f"{100 * value / total:.1f}%", (value, i), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=7)
    ax.set_xlim(0, times_ms.max() * 1.15)
    ax.set_xlabel("time per step [ms] (blue: memory-bound, red: compute-bound, grey: fixed)")
    ax.set_ylabel("operator")
    ax.set_title(title(result.model, result.hardware, result.mode, _hardware(result, hardware),
                       f"{_step_text(result)}: {result.time_s * 1e3:.4g} ms"), fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    return figure


def sweep_chart(grid, hardware=None, ax=None):
    """Aggregate decode throughput [tokens/s] against batch, one line per context (and weights dtype);
    hollow markers where the batch does not fit in memory."""
    figure, ax = _axes(ax, (8, 5))
    hardware = hardware if hardware is not None else _load(grid.hardware)
    for dtype in dict.fromkeys(grid["dtype"].tolist()):
        for context in dict.fromkeys(grid["context"].tolist()):
            pick = (grid["dtype"] == dtype) & (grid["context"] == context)
            order = np.argsort(grid["batch"][pick])
            batch, rate, fits = (grid[c][pick][order] for c in ("batch", "tokens_per_s", "fits"))
            line, = ax.loglog(batch, rate, label=f"context {context}, {dtype}")
            ax.scatter(batch[fits], rate[fits], color=line.get_color(), s=14, zorder=3)
            ax.scatter(batch[~fits], rate[~fits], facecolors="none", edgecolors=line.get_color(), s=14, zorder=3)
    if not grid["fits"].all():
        ax.scatter([], [], facecolors="none", edgecolors="black", s=14, label="does not fit in memory")
    ax.set_xlabel("batch [sequences]")
    ax.set_ylabel("aggregate decode throughput [tokens/s]")
    ax.set_title(title(grid.model, grid.hardware, grid.mode, hardware, "decode sweep"), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def _load(chip):
    from .hardware import Hardware, load_hardware
    return chip if isinstance(chip, Hardware) else load_hardware(chip)


def frontier(model, chips, context=4096, batches=None, mode="ideal", progress=None, **options):
    """{chip id: [decode results over `batches`]} and {chip id: the result at its critical batch}.

    `progress`, if given, is called after each decode evaluated."""
    from .api import decode
    from .dtypes import bytes_per_value, matmul_dtype
    from .step import critical_batch
    batches = [int(b) for b in (2 ** np.arange(0, 11) if batches is None else batches)]
    curves, stars = {}, {}
    for chip in chips:
        hardware = _load(chip)
        curves[hardware.id] = []
        for b in batches:
            curves[hardware.id].append(decode(model, hardware, batch=b, context=context, mode=mode, **options))
            if progress is not None:
                progress()
        used = curves[hardware.id][0].dtypes
        peak = hardware.peak_flops[matmul_dtype(used["weights"], used["activations"], hardware.peak_flops)]
        star = max(1, int(round(critical_batch(peak, hardware.mem_bandwidth, bytes_per_value(used["weights"])))))
        stars[hardware.id] = decode(model, hardware, batch=star, context=context, mode=mode, **options)
    return curves, stars


def frontier_chart(model, chips, context=4096, batches=None, mode="ideal", ax=None, progress=None, **options):
    """Per-user decode speed against aggregate throughput [tokens/s] as the batch grows, per chip.

    Filled markers: the batch fits in memory; hollow: it does not. Stars: the critical batch, where
    a weight GEMM turns compute-bound (step.critical_batch).
    """
    curves, stars = frontier(model, chips, context, batches, mode, progress, **options)
    figure, ax = _axes(ax, (8, 5.5))
    for chip, results in curves.items():
        aggregate = np.array([r.tokens_per_s for r in results])
        per_user = np.array([r.tokens_per_s_per_user for r in results])
        fits = np.array([r.fits for r in results])
        line, = ax.loglog(aggregate, per_user, label=chip)
        ax.scatter(aggregate[fits], per_user[fits], color=line.get_color(), s=18)
        ax.scatter(aggregate[~fits], per_user[~fits], facecolors="none", edgecolors=line.get_color(), s=18)
        star = stars[chip]
        ax.scatter([star.tokens_per_s], [star.tokens_per_s_per_user], marker="*", s=220, color=line.get_color(),
                   edgecolors="black", zorder=4)
    ax.scatter([], [], color="gray", s=18, label="batch fits in memory")
    ax.scatter([], [], facecolors="none", edgecolors="gray", s=18, label="batch does not fit")
    ax.scatter([], [], marker="*", s=160, color="gray", edgecolors="black", label="critical batch")
    first = next(iter(curves.values()))
    batch_text = f"batch {first[0].batch} to {first[-1].batch}"
    hardware = _load(chips[0]) if len(chips) == 1 else None
    chip_text = ", ".join(curves) if len(curves) <= 3 else f"{len(curves)} chips"
    ax.set_xlabel("aggregate decode throughput [tokens/s]")
    ax.set_ylabel("per-user decode speed [tokens/s]")
    ax.set_title(title(first[0].model, chip_text, first[0].mode, hardware, f"context {context}, {batch_text}"),
                 fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return figure


def kv_chart(models, contexts=None, hardware=None, batch=1, ax=None):
    """KV cache of `batch` sequences [GB] against context [tokens] for each model (id or Model), each
    curve ending at the model's maximum context; with `hardware`, its memory capacity as a line."""
    from .memory import kv_cache_bytes
    from .models import load_model
    figure, ax = _axes(ax, (8, 5.5))
    contexts = np.unique(np.logspace(9, 17.3, 60, base=2).astype(int)) if contexts is None else np.asarray(contexts)
    styles = ["-", "--", "-.", ":"]
    for i, model in enumerate(models):
        model = model if hasattr(model, "max_context") else load_model(model)
        ctx = contexts[contexts <= model.max_context]
        # distinct dash patterns: models with equal caches (Llama-3.1-8B and Mistral-7B) stay visible
        ax.loglog(ctx, kv_cache_bytes(model, batch, ctx) / 1e9, styles[i % len(styles)], lw=1.6,
                  label=f"{model.id} ({model.dtypes['kv_cache']})")
    if hardware is not None:
        chip = _load(hardware)
        ax.axhline(chip.mem_capacity / 1e9, color="black", lw=0.8, label=f"{chip.id} memory ({chip.mem_capacity / 1e9:.4g} GB)")
    ax.set_xlabel("context [tokens]")
    ax.set_ylabel(f"KV cache of {batch} sequence{'s' if batch > 1 else ''} [GB]")
    ax.set_title(f"KV cache against context, batch {batch}" + (f", on {_load(hardware).id}" if hardware else "")
                 + "\nmode-independent (bytes stored, native KV dtype)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return figure
