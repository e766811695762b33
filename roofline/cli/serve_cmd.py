"""`roofline serve`, `roofline serve frontier`, `roofline solve serving` and the serving rows of `validate`."""
import click

from .. import serving
from ..errors import RooflineError, excerpt
from ..serving.benchmarks import GROUPS, summary, validate_file
from ..serving.rows import read_rows
from ..serving.repeats import noise_floor
from ..serving.engines import ENGINES
from . import cli
from .output import emit_record, emit_table, format_option, parse_count, to_json
from .scenario_options import LAYOUT_ONLY, scenario_kwargs, scenario_options
from .solve_cmd import solve


def _length(text, name):
    """'1024', '1k' or '800:1k' (a uniform range) as an int or (lo, hi): counts as parse_count reads them."""
    parts = str(text).split(":")
    if len(parts) > 2:
        raise RooflineError(f"--{name} must be a whole number of tokens or a range LO:HI, got '{excerpt(text)}'")
    values = [parse_count(part, f"--{name}", minimum=None) for part in parts]
    return values[0] if len(values) == 1 else tuple(values)


def serving_options(func):
    """The options of a serving question besides the scenario's: lengths, engine, budget, prefix cache."""
    options = [
        click.option("--isl", default=None, help="Input tokens per request (8192, 8k, 8Ki), or a uniform range LO:HI."),
        click.option("--osl", default=None, help="Output tokens per request (at least 2), or a range LO:HI."),
        click.option("--engine", type=click.Choice(sorted(ENGINES)), default=serving.DEFAULT_ENGINE,
                     show_default=True, help="Serving engine: its scheduler defaults and fitted fixed costs."),
        click.option("--max-batched-tokens", type=int, default=None,
                     help="Token budget of one step (default: the engine's, 8192)."),
        click.option("--prefix-hit", type=float, default=0.0, show_default=True,
                     help="Share of prompt tokens found in the prefix cache."),
        format_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _lengths(isl, osl):
    for name, value in (("--isl", isl), ("--osl", osl)):
        if value is None:
            raise click.UsageError(f"Missing option '{name}' (tokens per request, or a range LO:HI)")
    return _length(isl, "isl"), _length(osl, "osl")


SERVE_KEYS = ["layout", "chips", "concurrency", "requests_per_s", "ttft_s", "tpot_s", "itl_s", "e2e_s",
              "e2e_p50_s", "e2e_p90_s", "interactivity_tok_s_per_user", "output_tokens_per_s_per_chip",
              "total_tokens_per_s_per_chip", "running", "max_running", "kv_cache_use", "queue_s", "saturated",
              "usd_per_mtok", "joules_per_token"]
#: what a simulated answer adds to the table
SIMULATED_KEYS = ["method", "simulated_requests", "ttft_p50_s", "ttft_p90_s", "tpot_p50_s", "tpot_p90_s"]


@cli.group(invoke_without_command=True)
@scenario_options(exclude=("microbatches",))
@serving_options
@click.option("--concurrency", type=float, default=None, help="Closed-loop clients.")
@click.option("--request-rate", type=float, default=None, help="Poisson arrivals [requests/s].")
@click.option("--replicas", type=int, default=1, show_default=True, help="Copies of the layout sharing the load.")
@click.option("--prefill-tp", type=int, default=None, help="Disaggregated: tensor parallelism of a prefill worker.")
@click.option("--prefill-ep", type=int, default=None, help="Disaggregated: expert parallelism of a prefill worker.")
@click.option("--prefill-workers", type=int, default=None, help="Disaggregated: prefill workers (x of xPyD).")
@click.option("--decode-tp", type=int, default=None, help="Disaggregated: tensor parallelism of a decode worker.")
@click.option("--decode-ep", type=int, default=None, help="Disaggregated: expert parallelism of a decode worker.")
@click.option("--decode-workers", type=int, default=None, help="Disaggregated: decode workers (y of xPyD).")
@click.option("--simulate", is_flag=True, help="Run the engine step by step (a discrete-event simulation, "
                                              "aggregated serving) instead of the mean-value model; adds percentiles.")
@click.option("--requests", type=int, default=None, help="With --simulate: requests per client (closed loop, "
                                                         "default 10) or in all (request rate, default 2000).")
@click.option("--seed", type=int, default=0, show_default=True, help="With --simulate: seed of the drawn lengths "
                                                                      "and arrivals.")
@click.pass_context
def serve(ctx, isl, osl, engine, max_batched_tokens, prefix_hit, fmt, concurrency, request_rate, replicas, prefill_tp,
          prefill_ep, prefill_workers, decode_tp, decode_ep, decode_workers, simulate, requests, seed, **params):
    """TTFT, TPOT, throughput per chip, KV-cache use, $/Mtok and J/token of a deployment under load."""
    if ctx.invoked_subcommand is not None:
        return
    options = scenario_kwargs(params)
    isl, osl = _lengths(isl, osl)
    disagg = any(v is not None for v in (prefill_tp, prefill_ep, prefill_workers, decode_tp, decode_ep,
                                         decode_workers))
    prefill = dict(tp=prefill_tp, ep=prefill_ep, workers=prefill_workers or 1) if disagg else None
    decode = dict(tp=decode_tp, ep=decode_ep, workers=decode_workers or 1) if disagg else None
    result = serving.serve(isl=isl, osl=osl, concurrency=concurrency, request_rate=request_rate, engine=engine,
                           replicas=replicas, prefill=prefill, decode=decode, prefix_hit=prefix_hit,
                           max_batched_tokens=max_batched_tokens, simulate=simulate, requests=requests, seed=seed,
                           **options)
    data = result.to_dict()
    if fmt == "json":
        click.echo(to_json(data))
        return
    if fmt == "csv":
        emit_table([[data.get(k) for k in SERVE_KEYS]], SERVE_KEYS, "csv")
        return
    pairs = [("model", data["model"]), ("hardware", data["hardware"]), ("engine", data["engine"]),
             ("mode", f"{data['mode']} ({data['ceiling_mode']})")] + [(k, data.get(k)) for k in SERVE_KEYS] \
        + [(k, data[k]) for k in SIMULATED_KEYS if k in data]
    emit_record(pairs, fmt, notes=data.get("notes", []))


FRONTIER_KEYS = ["layout", "chips", "concurrency", "interactivity_tok_s_per_user", "output_tokens_per_s_per_chip",
                 "ttft_s", "tpot_s", "requests_per_s", "kv_cache_use", "on_frontier"]


@serve.command("frontier")
@scenario_options(exclude=("microbatches", "price", "power", "pue"))
@serving_options
@click.option("--concurrency", "concurrencies", type=int, multiple=True,
              help="Concurrencies to sweep (repeat; default 1 to 512, four per doubling).")
@click.option("--search", is_flag=True, help="Every layout of every chip count dividing --chips.")
@click.option("--all-points", is_flag=True, help="Print every point, not only the frontier.")
@click.option("--plot", default=None, metavar="FILE.png|svg", help="Draw the frontier (needs matplotlib).")
def frontier_cmd(isl, osl, engine, max_batched_tokens, prefix_hit, fmt, concurrencies, search, all_points, plot,
                 **params):
    """The Pareto frontier of output tokens/s per chip against tokens/s per user, over concurrency (and layouts)."""
    options = scenario_kwargs(params)
    if plot is not None and not plot.lower().endswith((".png", ".svg")):
        raise RooflineError(f"--plot must name a .png or .svg file, got '{plot}'")
    isl, osl = _lengths(isl, osl)
    points, front = serving.frontier(isl=isl, osl=osl, concurrencies=concurrencies or serving.DEFAULT_CONCURRENCIES,
                                     engine=engine, search=search, prefix_hit=prefix_hit,
                                     max_batched_tokens=max_batched_tokens, **options)
    on = {id(p) for p in front}
    shown = points if all_points else front
    rows = [{**{k: p.to_dict().get(k) for k in FRONTIER_KEYS[:-1]}, "on_frontier": id(p) in on} for p in shown]
    if plot is not None:
        _plot(points, front, plot)
    emit_table([[r[k] for k in FRONTIER_KEYS] for r in rows], FRONTIER_KEYS, fmt, data=rows)
    if plot is not None and fmt == "table":
        click.echo(f"wrote {plot}")


def _plot(points, front, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RooflineError("--plot needs matplotlib (pip install matplotlib)") from None
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([p.interactivity for p in points], [p.output_tokens_per_s / p.chips for p in points], s=6,
               color="0.7", label="all points")
    ax.plot([p.interactivity for p in front], [p.output_tokens_per_s / p.chips for p in front], "o-", label="frontier")
    ax.set_xlabel("tokens/s per user (1 / TPOT)")
    ax.set_ylabel("output tokens/s per chip")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


@solve.command("serving")
@scenario_options(exclude=("chips", "tp", "pp", "ep", "microbatches", "price", "power", "pue", *LAYOUT_ONLY))
@serving_options
@click.option("--request-rate", type=float, required=True, help="Poisson arrivals to serve [requests/s].")
@click.option("--ttft-max", type=float, required=True, help="Highest mean TTFT allowed [s].")
@click.option("--tpot-max", type=float, required=True, help="Highest mean TPOT allowed [s].")
@click.option("--max-chips", type=int, default=64, show_default=True, help="Largest deployment searched.")
@click.option("--aggregated-only", is_flag=True, help="Leave disaggregated (xPyD) deployments out.")
def solve_serving_cmd(isl, osl, engine, max_batched_tokens, prefix_hit, fmt, request_rate, ttft_max, tpot_max, max_chips,
                      aggregated_only, **params):
    """The fewest chips (and the layout, aggregated or disaggregated) meeting a TTFT and a TPOT limit."""
    options = scenario_kwargs(params)
    isl, osl = _lengths(isl, osl)
    plan = serving.solve_serving(isl=isl, osl=osl, request_rate=request_rate, ttft_max=ttft_max, tpot_max=tpot_max,
                                 max_chips=max_chips, engine=engine, disaggregated_too=not aggregated_only,
                                 prefix_hit=prefix_hit, max_batched_tokens=max_batched_tokens, **options)
    data = plan.to_dict()
    if fmt == "json":
        click.echo(to_json(data))
    elif fmt == "csv":
        emit_table([[data["chips"], data["feasible"], data["binding"], data["plan"]]],
                   ["chips", "feasible", "binding", "plan"], "csv")
    elif plan.feasible:
        r = plan.result
        emit_record([("chips", plan.chips), ("feasible", True), ("plan", plan.plan), ("binding", plan.binding),
                     ("ttft_s", r.ttft_s), ("tpot_s", r.tpot_s),
                     *((f"margin: {k}", f"{100 * v:.1f}%") for k, v in plan.margins.items())], fmt)
    else:
        emit_record([("chips", "not reachable"), ("feasible", False)], fmt)
    if not plan.feasible:
        click.echo(f"why: {plan.why}", err=fmt != "table")
        raise click.exceptions.Exit(1)


def validate_serving(measurements, mode, fmt, simulate=False):
    """`roofline validate` for a serving CSV: predicted against measured TTFT and TPOT per row."""
    predictions, skipped = validate_file(measurements, mode=mode, simulate=simulate)
    if not predictions:
        reasons = "; ".join(sorted({why for _, why in skipped})) or "no rows"
        raise RooflineError(f"{measurements}: no row to validate ({reasons})")
    stats = {name: summary(predictions, key) for name, key in GROUPS.items()}
    floor = noise_floor(read_rows(measurements))
    if fmt == "json":
        click.echo(to_json({"rows": [p.to_dict() for p in predictions],
                            "skipped": [{"id": i, "reason": why} for i, why in skipped],
                            "summary": {"rows": len(predictions), "skipped": len(skipped), **stats},
                            "noise_floor": floor}))
        return
    headers = ["id", "engine", "model", "mode", "isl", "osl", "concurrency", "ttft_s", "measured_ttft_s",
               "ttft_error", "tpot_s", "measured_tpot_s", "tpot_error"]
    rows = [[p.to_dict()[k] for k in headers] for p in predictions]
    if fmt == "csv":
        emit_table(rows, headers, fmt)
        return
    emit_table([r[:9] + [f"{100 * r[9]:+.1f}%"] + r[10:12] + [f"{100 * r[12]:+.1f}%"] for r in rows], headers, fmt)
    for name, table in stats.items():
        click.echo()
        emit_table([[g, s["rows"], f"{100 * s['tpot_median']:.1f}%", f"{100 * s['tpot_signed']:+.1f}%",
                     f"{100 * s['ttft_median']:.1f}%", f"{100 * s['ttft_signed']:+.1f}%"] for g, s in table.items()],
                   [name, "rows", "TPOT median abs error", "TPOT median signed", "TTFT median abs error",
                    "TTFT median signed"], fmt)
    click.echo()
    emit_table([[mode, f["rows"], f["repeated"], f["differing"], f"{100 * f['tpot_floor_mean']:.1f}%",
                 f"{100 * f['ttft_floor_mean']:.1f}%"] for mode, f in floor.items()],
               ["noise floor (rows of one configuration)", "rows", "configurations listed twice or more",
                "with differing measurements", "TPOT mean error of the best model", "TTFT mean error of the best model"],
               fmt)
    if skipped:
        click.echo()
        emit_table([[i, why] for i, why in skipped], ["skipped", "reason"], fmt)
