"""Timing helpers shared by the benchmarks: median wall time of a new process or of a call."""
import os
import shutil
import statistics
import subprocess
import sys
import time

RUNS = 5


def median_wall(command, runs=RUNS):
    """Median wall time [s] of `command` run as a new process, after one untimed warm-up run."""
    subprocess.run(command, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_call(func, runs=RUNS):
    """Median wall time [s] of calling `func()`, after one untimed warm-up call."""
    func()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def roofline_command():
    """The installed `roofline` console script beside this Python, else the same entry via -c."""
    script = os.path.join(os.path.dirname(sys.executable), "roofline")
    if os.path.exists(script):
        return [script]
    if shutil.which("roofline"):
        return [shutil.which("roofline")]
    return [sys.executable, "-c", "from roofline.cli import main; main()"]
