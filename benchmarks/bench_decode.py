"""Speed of roofline, printed as one JSON line per benchmark (never asserted in tests).

1. cli_decode: wall time of `roofline decode --model llama-3.1-8b --hardware h100-sxm` next to
   `python -c "import numpy"` on the same machine (a new process each; one untimed warm-up, then
   the median of 5), and their ratio.
2. sweep_grid: decode scenarios per second of roofline.sweep.sweep over a 1024 x 1024 grid of
   batch x context (one model, one chip), in ideal and calibrated mode: the whole call, output
   columns included. Median of 5.
3. sweep_points: the same for 2^20 unrelated (batch, context) points, where no operator can be
   shared between points (decode_grid of a Scenario whose batch and context are two paired 1-D
   arrays). Median of 5.

    python benchmarks/bench_decode.py [--model ID] [--hardware ID]
"""
import argparse
import json
import os
import platform
import sys

import numpy as np
from timing import RUNS, median_call, median_wall, roofline_command

from roofline.scenario import build, resolve_hardware, resolve_model
from roofline.sweep import decode_grid, sweep


def emit(**fields):
    print(json.dumps({**fields, "machine": platform.machine(), "python": platform.python_version(),
                      "numpy": np.__version__, "cpus": os.cpu_count()}), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="llama-3.1-8b")
    parser.add_argument("--hardware", default="h100-sxm")
    args = parser.parse_args()

    cli = median_wall(roofline_command() + ["decode", "--model", "llama-3.1-8b", "--hardware", "h100-sxm"])
    numpy_import = median_wall([sys.executable, "-c", "import numpy"])
    emit(benchmark="cli_decode", command="roofline decode --model llama-3.1-8b --hardware h100-sxm",
         median_s=round(cli, 4), numpy_import_median_s=round(numpy_import, 4),
         ratio_to_numpy_import=round(cli / numpy_import, 2), runs=RUNS)

    model, hardware = resolve_model(args.model), resolve_hardware(args.hardware)
    batch = np.arange(1, 1025)
    context = np.arange(1, 1025) * 128
    rng = np.random.default_rng(0)
    points = 1 << 20
    paired_batch = rng.integers(1, 1025, points)
    paired_context = rng.integers(1, 131073, points)
    for mode in ("ideal", "calibrated"):
        seconds = median_call(lambda: sweep(model, hardware, batch, context, mode=mode))
        emit(benchmark="sweep_grid", model=model.id, hardware=hardware.id, mode=mode,
             grid=f"{batch.size} batch x {context.size} context", scenarios=batch.size * context.size,
             median_s=round(seconds, 4), scenarios_per_s=round(batch.size * context.size / seconds))
        paired = build(model, hardware, batch=paired_batch, context=paired_context, mode=mode)
        seconds = median_call(lambda: decode_grid(paired))
        emit(benchmark="sweep_points", model=model.id, hardware=hardware.id, mode=mode, scenarios=points,
             median_s=round(seconds, 4), scenarios_per_s=round(points / seconds))


if __name__ == "__main__":
    main()
