"""Start-up: wall time of `roofline decode` and `roofline list models` next to `python -c "import numpy"`.

Prints one JSON line: the median of 5 runs of each command, the runs interleaved (numpy, decode,
list, numpy, ...) after one untimed warm-up run of each, so that all read from a warm file cache
and a busy machine slows all alike; and each roofline command's ratio to numpy's import, the
floor any numpy-based CLI pays. Issue 9 asks that `roofline decode` take at most 2.5 times
numpy's import.

    python benchmarks/bench_cli_startup.py
"""
import json
import os
import statistics
import subprocess
import sys
import time

from timing import RUNS, roofline_command

COMMANDS = {"python_import_numpy": [sys.executable, "-c", "import numpy"],
            "roofline_decode": roofline_command() + ["decode", "-m", "llama-3.1-8b", "-c", "h100-sxm"],
            "roofline_list_models": roofline_command() + ["list", "models"]}


def wall(command):
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    for command in COMMANDS.values():
        wall(command)
    times = {name: [] for name in COMMANDS}
    for _ in range(RUNS):
        for name, command in COMMANDS.items():
            times[name].append(wall(command))
    median = {name: statistics.median(values) for name, values in times.items()}
    numpy = median["python_import_numpy"]
    print(json.dumps({"runs": RUNS, **{f"{name}_s": round(value, 4) for name, value in median.items()},
                      "decode_ratio": round(median["roofline_decode"] / numpy, 2),
                      "list_models_ratio": round(median["roofline_list_models"] / numpy, 2),
                      "python": sys.version.split()[0], "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
