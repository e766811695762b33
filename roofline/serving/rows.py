"""Reading a serving-benchmark CSV (the aiconfigurator silicon format): its columns, its cells as
numbers, and the client concurrency each row ran at."""
import csv
import math
import re

from ..errors import RooflineError

#: columns a serving CSV must have (detected by the first three)
REQUIRED = ("id", "backend", "model_path", "system", "precision", "mode", "isl", "osl", "batch_size", "tp_size",
            "silicon_ttft_ms", "silicon_tpot_ms")


def is_serving_csv(path):
    """True when the file's header has the serving columns (id, backend, model_path, silicon_ttft_ms)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError):
        return False
    return {"backend", "model_path", "silicon_ttft_ms"} <= set(header)


def read_rows(path):
    """The rows of a serving CSV as dicts; RooflineError naming the missing columns."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise RooflineError(f"{path}: a serving CSV needs the columns {', '.join(missing)} (missing)")
            return list(reader)
    except OSError as exc:
        raise RooflineError(f"cannot read {path}: {exc.strerror}") from None


def number_in(row, key, default=None):
    """The number in column `key` of `row` (an int when whole), `default` when empty; RooflineError naming
    the column when it is not a finite number."""
    text = (row.get(key) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise RooflineError(f"column {key}: expected a number, got '{text}'")
    return int(value) if value == int(value) else value


def client_concurrency(row):
    """The run's client concurrency: `silicon_concurrency=` in the source, else `batch_size` (agg rows:
    the README's concurrent clients). None for a disaggregated row that does not record it: its
    decode_batch_size is the decode pool's batch per worker, a configuration, not the load (the
    dynamo runs of Qwen3 measured 8.75 ms TPOT at a nominal 224 sequences of 5k tokens per TP4
    decode worker, where the decode step alone takes 31 ms; about 8 ran)."""
    found = re.search(r"silicon_concurrency=(\d+)", row.get("silicon_data_source") or "")
    if found:
        return int(found.group(1))
    if (row.get("mode") or "agg") == "disagg":
        return None
    return number_in(row, "batch_size")
