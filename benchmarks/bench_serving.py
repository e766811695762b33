"""Speed of the serving model, printed as one JSON line per benchmark (never asserted in tests).

1. serving_answer: compute time of one serving answer (roofline.serving.model.aggregated: the step
   table and the mean-value fixed point; specs already loaded), next to one decode step
   (deployment.evaluate) of the same deployment, and their ratio. Median of 5. Target: < 50 ms.
2. serving_frontier: roofline.serving.frontier over 64 concurrencies (1-64) x every layout of
   every chip count dividing 8 (--search), specs loaded inside (the whole call). Median of 5.
   Target: < 2 s.
3. serving_simulation: one answer by the discrete-event simulation (roofline.serving.simulate, 64
   closed-loop clients x 10 requests of 1024/1024), next to the mean-value answer of the same
   question measured beside it, and their ratio. Median of 5. No target: it is an option.

    python benchmarks/bench_serving.py
"""
import json
import os
import platform

import numpy as np
from timing import RUNS, median_call

from roofline import serving
from roofline.scenario import resolve_hardware, resolve_model
from roofline.deployment import evaluate
from roofline.parallel import Layout
from roofline.serving.engines import load_engine
from roofline.serving.model import Pool, aggregated, workload
from roofline.serving.simulate import simulate
from roofline.step import ceilings

CASES = [("llama-3.1-70b", "h100-sxm", Layout(8), "fp8"), ("deepseek-v3", "h200", Layout(8, 1, 8), None),
         ("qwen3-235b-a22b", "h100-sxm", Layout(4, 1, 4), "fp8")]


def emit(**fields):
    print(json.dumps({**fields, "machine": platform.machine(), "python": platform.python_version(),
                      "numpy": np.__version__, "cpus": os.cpu_count()}), flush=True)


def main():
    for model_id, chip_id, layout, weights in CASES:
        model, hw = resolve_model(model_id, weights_dtype=weights), resolve_hardware(chip_id)
        ceiling, engine = ceilings(hw, "calibrated"), load_engine("vllm", hw.id)
        load = workload(model, 1024, 1024, concurrency=64)
        answer = median_call(lambda: aggregated(model, hw, Pool(layout), ceiling, engine, load))
        step = median_call(lambda: evaluate("decode", model, hw, 64, 1536, layout, ceiling))
        emit(benchmark="serving_answer", model=model_id, hardware=chip_id, layout=layout.describe(),
             median_s=round(answer, 4), decode_step_median_s=round(step, 5),
             ratio_to_decode_step=round(answer / step, 1), target_s=0.05, runs=RUNS)
        simulated = median_call(lambda: simulate(model, hw, Pool(layout), ceiling, engine, load))
        emit(benchmark="serving_simulation", model=model_id, hardware=chip_id, layout=layout.describe(),
             requests=640, median_s=round(simulated, 4), ratio_to_mean_value_answer=round(simulated / answer, 1),
             runs=RUNS)
    for model_id, chip_id, weights in (("llama-3.1-70b", "h100-sxm", "fp8"), ("deepseek-v3", "h200", None)):
        points = {}

        def sweep():
            points["n"] = len(serving.frontier(model_id, chip_id, 1024, 1024, concurrencies=range(1, 65), chips=8,
                                               search=True, weights_dtype=weights)[0])
        seconds = median_call(sweep)
        emit(benchmark="serving_frontier", model=model_id, hardware=chip_id, concurrencies=64,
             layouts=points["n"] // 64, points=points["n"], median_s=round(seconds, 3), target_s=2.0, runs=RUNS)


if __name__ == "__main__":
    main()
