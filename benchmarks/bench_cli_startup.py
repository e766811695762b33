"""Wall time of `roofline list models` next to `python -c "import numpy"` on the same machine.

Prints one JSON line: the median of 5 runs of each (after one untimed warm-up run of each, so both
read from a warm file cache), and their ratio. The issue asks that `roofline list models` return
in well under a second; numpy's import is the floor any numpy-based CLI pays.

    python benchmarks/bench_cli_startup.py
"""
import json
import os
import sys

from timing import RUNS, median_wall, roofline_command


def main():
    roofline = median_wall(roofline_command() + ["list", "models"])
    numpy = median_wall([sys.executable, "-c", "import numpy"])
    print(json.dumps({"runs": RUNS, "roofline_list_models_s": round(roofline, 4),
                      "python_import_numpy_s": round(numpy, 4), "ratio": round(roofline / numpy, 2),
                      "python": sys.version.split()[0], "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
