"""Fitting the engines' fixed costs to serving-benchmark rows, and checking them on rows held out.

Per engine four constants (engines.Engine): tau_step [s per step], tau_seq [s per scheduled
sequence per step], tau_eager [s per decoder layer of a step carrying prompt tokens] and tau_req
[s per request before its first token]. The forward pass is the chip's calibrated step; what the
rows add beyond it is host work, so the fit is linear: with the decode batch B of each row's fixed
point and g = d TPOT / d tau_eager of its prediction (a finite difference: the share of steps
that carry a chunk times the layers, as the model counts it),

.. math:: TPOT \\approx TPOT_0 + \\tau_{step} + B \\, \\tau_{seq} + g \\, \\tau_{eager}

is fitted by least squares on the relative TPOT error (the constants kept >= 0), then tau_req as
the offset minimising the median relative TTFT error (>= 0), and the rows re-predicted.
Only rows passing `train` are used; the others are reported apart (held out).

    python -m roofline.serving.fit --measurements FILE.csv --output FILE.yaml [--train 'concurrency<=64,mode=agg']

The shipped constants are fitted on the aggregated rows with concurrency <= 64: the disaggregated
rows carry costs the model lacks (docs/serving.md, "Where the model breaks": start-up and
transfer-setup costs of seconds), which a fit would push into the engines' host constants.
"""
import argparse
import datetime
import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import yaml

from .benchmarks import find_model, layout_of, summary, validate_file
from .rows import client_concurrency, read_rows
from .engines import ALIASES, ENGINES, load_engine

#: passes of (TPOT fit, TTFT fit, re-prediction)
PASSES = 2

#: step of tau_eager for the finite difference of TPOT [s per layer]
PROBE = 50e-6


def row_filter(text):
    """A predicate on CSV rows from 'concurrency<=64', 'model!=qwen3-32b', 'engine=vllm', 'mode=agg', or
    several of them joined by commas (all must hold)."""
    clauses = [_clause(part) for part in text.split(",")]
    return lambda row: all(clause(row) for clause in clauses)


def _clause(text):
    import operator
    import re
    found = re.fullmatch(r"\s*(concurrency|model|engine|mode|isl|osl)\s*(<=|>=|!=|=|<|>)\s*(\S+)\s*", text)
    if not found:
        raise ValueError(f"--train '{text}': expected FIELD OP VALUE with FIELD one of concurrency, model, engine, "
                         "mode, isl, osl")
    name, op, value = found.groups()
    ops = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt, "=": operator.eq,
           "!=": operator.ne}

    def get(row):
        if name == "concurrency":
            return client_concurrency(row) or 0
        if name == "model":
            return find_model(row["model_path"]) or row["model_path"]
        if name == "engine":
            return ALIASES.get(row["backend"].lower(), row["backend"])
        if name in ("isl", "osl"):
            return int(float(row[name]))
        return row.get("mode") or "agg"
    numeric = name in ("concurrency", "isl", "osl")
    return lambda row: ops[op](get(row), int(value) if numeric else value)


def fit_engines(rows, chip_id="h100-sxm"):
    """{engine: Engine with fitted fixed costs} from `rows` (dicts of a serving CSV)."""
    engines = {name: replace(load_engine(name, chip_id), step_overhead=0.0, sequence_overhead=0.0,
                             request_overhead=0.0, eager_layer_overhead=0.0, source="fit") for name in ENGINES}
    by_id = {row["id"]: row for row in rows}
    for _ in range(PASSES):
        predictions, _ = validate_file(None, engines=engines, rows=rows)
        for name, engine in engines.items():
            mine = [p for p in predictions if p.engine == name]
            if len(mine) < 3:
                continue
            running = np.array([_running(by_id[p.id], p) for p in mine])
            probe = replace(engine, eager_layer_overhead=engine.eager_layer_overhead + PROBE)
            probed = {p.id: p.tpot_s for p in validate_file(None, engines={**engines, name: probe},
                                                             rows=[by_id[p.id] for p in mine])[0]}
            eager = np.array([(probed.get(p.id, p.tpot_s) - p.tpot_s) / PROBE for p in mine])
            base = np.array([p.tpot_s for p in mine]) - engine.step_overhead - running * engine.sequence_overhead \
                - eager * engine.eager_layer_overhead
            measured = np.array([p.measured_tpot_s for p in mine])
            step, seq, per_layer = _nonnegative_lstsq(
                np.stack([1 / measured, running / measured, eager / measured], axis=1), 1 - base / measured)
            trial = replace(engine, step_overhead=step, sequence_overhead=seq, eager_layer_overhead=per_layer)
            again, _ = validate_file(None, engines={**engines, name: trial}, rows=[by_id[p.id] for p in mine])
            engines[name] = replace(trial, request_overhead=_best_offset(
                np.array([p.ttft_s - engine.request_overhead for p in again]),
                np.array([p.measured_ttft_s for p in again])))
    return engines


def _best_offset(predicted, measured):
    """The tau_req >= 0 minimising the median |relative TTFT error| of predicted + tau_req [s]
    (a scan of 2000 values up to the largest measured TTFT: the median is not smooth)."""
    candidates = np.linspace(0.0, float(np.max(measured)), 2001)
    errors = [np.median(np.abs((predicted + c) / measured - 1)) for c in candidates]
    return float(candidates[int(np.argmin(errors))])


def _running(row, prediction):
    """Sequences one scheduler runs at a row's fixed point: about its concurrency per decode worker
    and per data-parallel attention group (model.host_time)."""
    side = "decode_" if prediction.mode == "disagg" else ""
    workers = int(float(row.get("decode_num_workers") or 1)) if prediction.mode == "disagg" else 1
    return prediction.concurrency / workers / layout_of(row, side).attention_groups


def _nonnegative_lstsq(a, b):
    """Least squares with every unknown >= 0 (the active set of a few unknowns, by enumeration)."""
    best = None
    n = a.shape[1]
    for mask in itertools.product((1, 0), repeat=n):
        cols = [i for i in range(n) if mask[i]]
        x = np.zeros(n)
        if cols:
            x[cols] = np.linalg.lstsq(a[:, cols], b, rcond=None)[0]
        if (x < 0).any():
            continue
        cost = float(np.sum((a @ x - b) ** 2))
        if best is None or cost < best[0]:
            best = (cost, x)
    return tuple(float(v) for v in best[1])


def document(engines, path, train_text, fitted, held):
    """The engine-costs file's mapping, with its provenance and the errors on fitted and held-out rows."""
    def entry(value, note, unit="us", scale=1e6):
        return {"value": f"{value * scale:.4g} {unit}", "source": "fit", "note": note}
    return {
        "hardware": "h100-sxm",
        "date": datetime.date.today().isoformat(),
        "measurements": f"data/validation/serving/{Path(path).name}",
        "engines": {name: {"step_overhead": entry(e.step_overhead, "host time per scheduler step"),
                           "sequence_overhead": entry(e.sequence_overhead, "per scheduled sequence per step"),
                           "eager_layer_overhead": entry(e.eager_layer_overhead, "per decoder layer of a step "
                                                         "carrying prompt tokens (launched without CUDA graphs)"),
                           "request_overhead": entry(e.request_overhead, "per request before its first token",
                                                     "ms", 1e3)}
                    for name, e in engines.items()},
        "fit": {"method": "roofline.serving.fit: least squares on relative TPOT error, median TTFT shortfall",
                "train": train_text or "all rows", "error_fitted": fitted, "error_held_out": held},
        "sources": {"fit": "the rows of the measurements file named above, with the chip's calibrated step"},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description="Fit engine fixed costs to serving-benchmark rows.")
    parser.add_argument("--measurements", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--train", default=None, help="FIELD OP VALUE: rows to fit on (the rest held out)")
    args = parser.parse_args(argv)
    rows = read_rows(args.measurements)
    keep = row_filter(args.train) if args.train else (lambda row: True)
    train = [r for r in rows if keep(r)]
    test = [r for r in rows if not keep(r)]
    engines = fit_engines(train)
    fitted, _ = validate_file(None, engines=engines, rows=train)
    held, _ = validate_file(None, engines=engines, rows=test) if test else ([], [])
    group = lambda p: f"{p.engine} {p.mode}"  # noqa: E731
    doc = document(engines, args.measurements, args.train, _plain(summary(fitted, group)),
                   _plain(summary(held, group)) if held else {})
    text = "# Engine fixed costs for serving (roofline.serving.engines), written by python -m roofline.serving.fit\n"
    Path(args.output).write_text(text + yaml.safe_dump(doc, sort_keys=False, width=10000), encoding="utf-8")
    for name, e in engines.items():
        print(f"{name}: step {e.step_overhead * 1e6:.1f} us, sequence {e.sequence_overhead * 1e6:.2f} us, "
              f"eager layer {e.eager_layer_overhead * 1e6:.1f} us, "
              f"request {e.request_overhead * 1e3:.1f} ms")
    for label, preds in (("fitted", fitted), ("held out", held)):
        for key, stats in summary(preds, group).items():
            print(f"{label:9s} {key:14s} rows {stats['rows']:4d}  TPOT median {100 * stats['tpot_median']:.1f}%  "
                  f"TTFT median {100 * stats['ttft_median']:.1f}%")


def _plain(stats):
    return {k: {kk: (round(float(vv), 4) if isinstance(vv, float) else vv) for kk, vv in v.items()}
            for k, v in stats.items()}


if __name__ == "__main__":
    main()
