"""Wall time of `roofline list models` next to `python -c "import numpy"` on the same machine.

Prints one JSON line: the median of 5 runs of each (after one untimed warm-up run of each, so both
read from a warm file cache), and their ratio. The issue asks that `roofline list models` return
in well under a second; numpy's import is the floor any numpy-based CLI pays.

    python benchmarks/bench_cli_startup.py
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

RUNS = 5


def roofline_command():
    """The installed `roofline` console script (next to this interpreter first), else the module."""
    script = os.path.join(os.path.dirname(sys.executable), "roofline")
    if os.path.exists(script):
        return [script]
    if shutil.which("roofline"):
        return [shutil.which("roofline")]
    return [sys.executable, "-c", "from roofline.cli import main; main()"]


def median_wall_time(command):
    subprocess.run(command, check=True, capture_output=True)  # warm-up, untimed
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    roofline = median_wall_time(roofline_command() + ["list", "models"])
    numpy = median_wall_time([sys.executable, "-c", "import numpy"])
    print(json.dumps({"runs": RUNS, "roofline_list_models_s": round(roofline, 4),
                      "python_import_numpy_s": round(numpy, 4), "ratio": round(roofline / numpy, 2),
                      "python": sys.version.split()[0], "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
