"""Measurement files: timed rows from `roofline measure` (JSON lines) and published figures (CSV).

JSON lines (one object a line, `kind` says which; the format of data/validation/h100/):

    {"kind": "device", "device": "NVIDIA H100 80GB HBM3", "torch": "2.11.0", "date": "..."}   header
    {"kind": "copy" | "read_reduce", "bytes_moved": B, "seconds": s}
    {"kind": "matmul", "m": M, "n": N, "k": K, "dtype": "bf16", "seconds": s}
    {"kind": "linear", "batch": B, "k": K, "n": N, "dtype": "bf16", "seconds": s}   (linear_fp8: dtype fp8)
    {"kind": "decode_step", "model": id, "layers": L, "batch": B, "ctx": T, "dtype": "bf16", "seconds": s}
    {"kind": "prefill", "model": id, "layers": L, "batch": B, "prompt": P, "dtype": "bf16", "seconds": s}

Each row names its `device` or inherits the header's. Rows whose kind ends in `_skipped` or
`_error` are kept as skipped rows with their reason.

CSV of published figures, one row per figure, columns (aliases of the shipped file in brackets):
model, hardware, chips [num_chips], parallelism, precision, batch [batch_or_concurrency],
context [input_len], output_len (optional), metric, value, unit, source [source_url], collectives
(optional: the engine's collective library, custom (default), nccl or rccl). Metrics:
decode_tokens_per_s_per_user and aggregate_output_tokens_per_s, in tok/s.
"""
import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import dtypes as dtype_table
from .collectives import LIBRARIES
from .errors import RooflineError, SpecError, excerpt
from .models import LIMITS, MAX_BATCH, MAX_CONTEXT, WIDTH_LIMIT
from .readers import parse_json, read_text
from .specs import is_file, spec_paths

KERNEL_KINDS = ("copy", "read_reduce", "matmul", "linear")
STEP_KINDS = ("decode_step", "prefill")
METRICS = ("decode_tokens_per_s_per_user", "aggregate_output_tokens_per_s")

#: required fields of each JSON-lines kind (besides kind, device and seconds)
_FIELDS = {"copy": ("bytes_moved",), "read_reduce": ("bytes_moved",), "matmul": ("m", "n", "k"),
           "linear": ("batch", "k", "n"), "decode_step": ("model", "batch", "ctx"), "prefill": ("model", "prompt")}
_LEGACY_KINDS = {"linear_fp8": ("linear", "fp8")}
_CSV_COLUMNS = {"model": ("model",), "hardware": ("hardware",), "chips": ("chips", "num_chips"),
                "precision": ("precision",), "batch": ("batch", "batch_or_concurrency"),
                "metric": ("metric",), "value": ("value",), "unit": ("unit",)}
#: words that mark a published figure as speculative decoding (several tokens per forward pass)
SPECULATIVE_WORDS = ("specul", "medusa", "eagle", "draft model", "lookahead")
#: the largest measurement file read [bytes] (the shipped ones are under 20 kB)
MAX_FILE_BYTES = 50_000_000
#: a timed row's seconds must lie in this range [s]: no kernel launch is shorter than 1 ns, no
#: measured step longer than 11 days
MIN_SECONDS, MAX_SECONDS = 1e-9, 1e6
#: the most bytes a copy or read row may move [B] (1 PB)
MAX_BYTES = 1e15
#: the longest cell of a CSV of published figures [characters]
MAX_CELL = 2000
#: the most chips a published row may state
MAX_CHIPS = 1_000_000
#: a published per-user speed without a stated prompt length is taken at this context [tokens]
DEFAULT_CONTEXT = 1024
_OPTIONAL_COLUMNS = {"context": ("context", "input_len"), "notes": ("notes",), "date": ("date", "source_date"),
                     "parallelism": ("parallelism",), "output_len": ("output_len",), "source": ("source", "source_url"),
                     "system": ("system",), "collectives": ("collectives",)}


@dataclass(frozen=True)
class Measurement:
    """One measured row: what ran (kind and shape), on which device, and the time or rate measured."""
    kind: str                     # copy | read_reduce | matmul | linear | decode_step | prefill | generation
    where: str                    # "FILE line N" for messages
    device: str
    seconds: float = None         # [s] timed rows
    rate: float = None            # [token/s] published rows
    metric: str = None            # published rows: one of METRICS
    model: str = None
    layers: int = None            # decoder layers run (None: the model's)
    batch: int = 1
    context: int = None           # decode_step: cached tokens; prefill: prompt; generation: prompt
    output: int = None            # generation: tokens generated (None: not stated)
    shape: tuple = ()             # kernel rows: (m, k, n) of a matmul/linear, or (bytes,) of copy/read
    dtype: str = "bf16"           # kernels: matmul dtype; steps: weights dtype
    dtypes: dict = field(default_factory=dict)   # steps: tensor-class dtypes to set on the model
    source: str = ""
    system: str = ""
    date: str = ""                # published rows: the figure's date, YYYY-MM-DD, or "undated"
    chips: int = 1                # published rows: chips used (None: not published)
    tp: int = None                # published rows: tensor-parallel width, if stated
    pp: int = None                # published rows: pipeline stages, if stated
    collectives: str = "custom"   # published rows: the engine's collective library (collectives.LIBRARIES)
    floor: bool = False           # published rows: a floor ('>N', the notes say "recorded as the ... floor"),
                                  # met by any figure at or above it

    def met_floor(self, error):
        """Whether a signed error (predicted / measured - 1) meets this row's floor: a rate at or above
        it, a time at or below it. Always False for a row that is not a floor."""
        return self.floor and (error >= 0 if self.rate is not None else error <= 0)

    @property
    def is_step(self):
        return self.kind in (*STEP_KINDS, "generation")

    @property
    def label(self):
        """Short description for tables: kind, model and shape."""
        if self.kind in ("copy", "read_reduce"):
            return f"{self.kind} {self.shape[0] / 1e9:.3g} GB"
        if self.kind in ("matmul", "linear"):
            m, k, n = self.shape
            return f"{self.kind} {self.dtype} {m}x{k}x{n}"
        layers = f"[{self.layers} layers]" if self.layers else ""
        if self.kind == "decode_step":
            return f"decode {self.model}{layers} {self.dtype} b={self.batch} ctx={self.context}"
        if self.kind == "prefill":
            return f"prefill {self.model}{layers} {self.dtype} b={self.batch} prompt={self.context}"
        out = self.output if self.output is not None else "?"
        what = "per user" if self.metric == METRICS[0] else "aggregate"
        chips = "" if self.chips == 1 else f" on {self.chips if self.chips else '?'} chips"
        return (f"{self.system or 'published'}: {self.model} {self.dtype} b={self.batch} {self.context}/{out} "
                f"{what}{chips}")


@dataclass(frozen=True)
class Skipped:
    where: str
    what: str
    reason: str


@dataclass(frozen=True)
class MeasurementFile:
    path: str
    rows: tuple                   # of Measurement
    skipped: tuple                # of Skipped
    header: dict                  # the kind=device row of a JSON-lines file ({} if none)

    @property
    def devices(self):
        return sorted({r.device for r in self.rows})


def read_measurements(path):
    """Rows of a measurement file (JSON lines or CSV); RooflineError naming the line on bad input."""
    path = Path(path)
    if not is_file(path):
        raise RooflineError(f"measurement file {excerpt(str(path))} does not exist")
    text = read_text(path, "a measurement file", MAX_FILE_BYTES)
    if path.suffix.lower() == ".csv" or not text.lstrip().startswith("{"):
        return _read_csv(path, text)
    return _read_jsonl(path, text)


# --------------------------------------------------------------------------- JSON lines
def _read_jsonl(path, text):
    rows, skipped, header = [], [], {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            data = parse_json(line, where, "a JSON object")
        except SpecError as exc:
            raise RooflineError(f"{where}: not a JSON object ({exc.what})") from None
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise RooflineError(f"{where}: expected a JSON object with a 'kind' field")
        kind = data["kind"]
        if kind == "device":
            header = data
            if not isinstance(data.get("device"), str) or not data["device"].strip():
                raise RooflineError(f"{where}: the device header row lacks 'device' (the device name)")
        elif kind.endswith(("_skipped", "_error")):
            skipped.append(Skipped(where, kind, str(data.get("reason") or data.get("error") or kind)))
        else:
            rows.append(_jsonl_row(data, where, header))
    if not rows:
        raise RooflineError(f"{path}: no measured rows (kinds: {', '.join((*KERNEL_KINDS, *STEP_KINDS))})")
    return MeasurementFile(str(path), tuple(rows), tuple(skipped), header)


def _jsonl_row(data, where, header):
    kind, dtype = data["kind"], data.get("dtype", "bf16")
    kind, dtype = _LEGACY_KINDS.get(kind, (kind, dtype))
    if kind not in _FIELDS:
        raise RooflineError(f"{where}: unknown kind '{kind}'; expected one of "
                            f"device, {', '.join(_FIELDS)} (or *_skipped / *_error)")
    needed = ("seconds", *_FIELDS[kind])
    missing = [name for name in needed if data.get(name) is None]
    if missing:
        raise RooflineError(f"{where}: {kind} row lacks {', '.join(map(repr, missing))} "
                            f"(a {kind} row needs {', '.join(needed)})")
    device = data.get("device") or header.get("device")
    if not isinstance(dtype, str):
        raise RooflineError(f"{where}: dtype must be a dtype name such as 'bf16', got {excerpt(dtype)}")
    if not isinstance(device, str) or not device.strip():
        raise RooflineError(f"{where}: no device name; give each row a 'device' or start the file with "
                            '{"kind": "device", "device": "<name>"}')
    seconds = _positive(data["seconds"], "seconds", where, MIN_SECONDS, MAX_SECONDS)
    try:
        dtype_table.check(dtype)
    except RooflineError as exc:
        raise RooflineError(f"{where}: {exc}") from None
    common = dict(where=where, device=device.strip(), seconds=seconds, dtype=dtype)
    if kind in ("copy", "read_reduce"):
        return Measurement(kind, shape=(_positive(data["bytes_moved"], "bytes_moved", where, 1, MAX_BYTES),),
                           **common)
    if kind == "matmul":
        shape = tuple(_whole(data[k], k, where) for k in ("m", "k", "n"))
        return Measurement(kind, shape=shape, **common)
    if kind == "linear":
        shape = (_whole(data["batch"], "batch", where), _whole(data["k"], "k", where), _whole(data["n"], "n", where))
        return Measurement(kind, batch=shape[0], shape=shape, **common)
    if not isinstance(data["model"], str):
        raise RooflineError(f"{where}: model must be a model id, got {excerpt(data['model'])}")
    model, layers = _model_name(data["model"])
    if data.get("layers") is not None or layers is not None:
        layers = _whole(data["layers"] if data.get("layers") is not None else layers, "layers", where,
                        LIMITS["num_layers"])
    batch = _whole(data.get("batch", 1), "batch", where, MAX_BATCH)
    context = _whole(data["ctx"] if kind == "decode_step" else data["prompt"],
                     "ctx" if kind == "decode_step" else "prompt", where, MAX_CONTEXT)
    return Measurement(kind, model=model, layers=layers, batch=batch, context=context,
                       dtypes={"weights": dtype}, **common)


def _model_name(text):
    """(model id, layers) of a measured model name: 'llama-3.1-70b[20 layers]' (a shape run with
    fewer of its layers, as measure_decode.py names it) -> ('llama-3.1-70b', 20); else (text, None)."""
    match = re.fullmatch(r"(.+?)\s*\[\s*(\d{1,9})\s*layers?\s*\]", text.strip()) \
        if len(text) <= 200 and text.rstrip().endswith("]") else None
    return (match.group(1), int(match.group(2))) if match else (text, None)


def _positive(value, name, where, low, high):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or value == float("inf"):
        raise RooflineError(f"{where}: {name} must be a number greater than zero, got {excerpt(value)}")
    if not low <= value <= high:
        raise RooflineError(f"{where}: {name} {value:g} is outside the range read, {low:g} to {high:g}")
    return float(value)


def _whole(value, name, where, maximum=WIDTH_LIMIT):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1 \
            or value == float("inf") or value != int(value):
        raise RooflineError(f"{where}: {name} must be a whole number of at least 1, got {excerpt(value)}")
    if value > maximum:
        raise RooflineError(f"{where}: {name} {value:.6g} is more than the limit of {maximum:,}")
    return int(value)


# --------------------------------------------------------------------------- published CSV
def _read_csv(path, text):
    try:
        return _read_csv_rows(path, text)
    except csv.Error as exc:
        raise RooflineError(f"{path}: not a readable CSV ({exc}); expected a CSV of published figures or "
                            "JSON lines") from None


def _read_csv_rows(path, text):
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    columns = {}
    for name, aliases in {**_CSV_COLUMNS, **_OPTIONAL_COLUMNS}.items():
        found = next((a for a in aliases if a in header), None)
        if found is None and name in _CSV_COLUMNS:
            missing = [n for n, al in _CSV_COLUMNS.items() if not any(a in header for a in al)]
            raise RooflineError(f"{path}: missing column(s) {', '.join(missing)}; a CSV of published figures needs "
                                "model, hardware, chips, precision, batch, metric, value, unit "
                                "(and optionally context, parallelism, output_len, source, notes)")
        columns[name] = found
    rows, skipped = [], []
    for number, raw in enumerate(reader, 2):
        where = f"{path} line {number}"
        cell = {name: (raw.get(col) or "").strip() if col else "" for name, col in columns.items()}
        long = next((name for name, text in cell.items() if not isinstance(text, str) or len(text) > MAX_CELL), None)
        if long is not None:
            raise RooflineError(f"{where}: the {long} cell is longer than {MAX_CELL:,} characters or not one cell")
        row_or_reason = _csv_row(cell, where)
        if isinstance(row_or_reason, Measurement):
            rows.append(row_or_reason)
        else:
            skipped.append(Skipped(where, f"{cell['model']} on {cell['chips']}x {cell['hardware']}", row_or_reason))
    if not rows and not skipped:
        raise RooflineError(f"{path}: no rows")
    return MeasurementFile(str(path), tuple(rows), tuple(skipped), {})


def _csv_row(cell, where):
    """A Measurement, or the reason (text) the row is skipped; RooflineError for a malformed value."""
    try:
        value = float(cell["value"])
    except ValueError:
        raise RooflineError(f"{where}: value {excerpt(cell['value'])} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise RooflineError(f"{where}: value must be greater than zero, got {excerpt(cell['value'])}")
    batch = _leading_int(cell["batch"]) if cell["batch"] else 1
    context = _leading_int(cell["context"]) if cell["context"] else DEFAULT_CONTEXT
    if batch is None or context is None:
        return (f"batch {excerpt(cell['batch'])} and context {excerpt(cell['context'])} must be numbers to model the row "
                "(a 'max throughput' figure does not say its concurrency)")
    if batch < 1 or context < 1:
        raise RooflineError(f"{where}: batch and context must be at least 1, got {excerpt(cell['batch'])}, "
                            f"{excerpt(cell['context'])}")
    if batch > MAX_BATCH or context > MAX_CONTEXT:
        raise RooflineError(f"{where}: batch {excerpt(cell['batch'])} or context {excerpt(cell['context'])} is "
                            f"more than the limits of {MAX_BATCH:,} sequences and {MAX_CONTEXT:,} tokens")
    chips = _leading_int(cell["chips"]) if cell["chips"] else None
    if cell["chips"] and chips is None:
        return f"chips {excerpt(cell['chips'])} is not a number"
    if chips is not None and not 1 <= chips <= MAX_CHIPS:
        raise RooflineError(f"{where}: chips {excerpt(cell['chips'])} must be from 1 to {MAX_CHIPS:,}")
    described = " ".join((cell["system"], cell["parallelism"], cell["notes"])).lower()
    if any(word in described for word in SPECULATIVE_WORDS):
        return "speculative decoding: more than one token per forward pass, not a plain decode"
    layout = _parallelism(cell["parallelism"])
    if isinstance(layout, str):
        return layout
    tp, pp = layout
    metric = cell["metric"]
    if metric == "inter_token_latency_ms" and cell["unit"].strip() == "ms":
        metric, value = METRICS[0], 1e3 / value          # one token per inter-token latency, per user
    elif metric not in METRICS:
        return f"metric '{metric}' is not one of {', '.join(METRICS)} (or inter_token_latency_ms)"
    elif cell["unit"].replace(" ", "") not in ("tok/s", "token/s", "tokens/s"):
        return f"unit '{cell['unit']}' is not tok/s"
    model = re.sub(r"\s+", "-", cell["model"].lower())
    equivalent = re.search(r"arch_equivalent=([a-z0-9.\-]+[a-z0-9])", cell["notes"])
    if model not in spec_paths("model") and equivalent:
        model = equivalent.group(1)
    if model not in spec_paths("model"):
        return f"no model spec '{model}' (roofline list models)"
    precision = _precision(cell["precision"])
    if isinstance(precision, str):
        return precision
    dtype, dtypes = precision
    output = _leading_int(cell["output_len"]) if cell["output_len"] else None
    if output is not None and not 1 <= output <= MAX_CONTEXT:
        raise RooflineError(f"{where}: output_len {excerpt(cell['output_len'])} must be a whole number of tokens "
                            f"from 1 to {MAX_CONTEXT:,}")
    library = cell["collectives"].strip().lower() or "custom"
    if library not in LIBRARIES:
        raise RooflineError(f"{where}: collectives {excerpt(cell['collectives'])} must be one of "
                            f"{', '.join(LIBRARIES)} (the engine's collective library)")
    return Measurement("generation", where, cell["hardware"], rate=value, metric=metric, model=model,
                       batch=batch, context=context, output=output, dtype=dtype, dtypes=dtypes,
                       source=cell["source"], system=cell["system"], chips=chips, tp=tp, pp=pp,
                       date=cell["date"] or "undated", collectives=library,
                       floor=bool(re.search(r"\brecorded as the\b[^.;]*\bfloor\b", cell["notes"], re.I)))


def _parallelism(text):
    """(tp, pp) stated in a parallelism cell ('TP=8', 'TP=4 PP=2', '' -> (None, None)), or a reason."""
    plain = re.sub(r"\(.*?\)", "", text).replace(" ", "").upper()
    if plain in ("", "NONE"):
        return None, None
    found = dict(re.findall(r"(TP|PP)=(\d+)", plain))
    if not found or re.sub(r"(TP|PP)=\d+|[,;/+X]", "", plain):
        return f"parallelism '{text}' is not TP=n and/or PP=n"
    return (int(found["TP"]) if "TP" in found else None), (int(found["PP"]) if "PP" in found else None)


def _leading_int(text):
    """The whole number a cell starts with ('8 (TP=8)' -> 8), None if none; over 18 digits reads as
    10**18, above every limit."""
    match = re.match(r"\s*(\d+)", text or "")
    if match is None:
        return None
    return int(match.group(1)) if len(match.group(1)) <= 18 else 10 ** 18


def _precision(text):
    """(weights dtype, tensor-class dtypes) of a precision such as 'int4 weight-only G=32', or a reason."""
    plain = re.sub(r"\(.*?\)", "", text.lower()).strip()
    if not plain or plain.startswith("not stated"):
        return "native", {}
    dtype = {"8-bit": "fp8", "16-bit": "bf16"}.get(plain.split()[0], plain.split()[0])
    group = re.search(r"\bg\s*=\s*(\d+)", plain)
    if group:
        dtype = f"{dtype}-g{group.group(1)}"
    if dtype not in dtype_table.DTYPES:
        return f"precision '{text}': unknown dtype '{dtype}'"
    if "weight-only" in plain or dtype not in ("bf16", "fp16", "fp32"):
        return dtype, {"weights": dtype}
    return dtype, {"weights": dtype, "kv_cache": dtype, "activations": dtype}


# --------------------------------------------------------------------------- row filters
FILTER_FIELDS = ("kind", "model", "batch", "context", "output", "layers", "dtype", "device", "metric", "date", "chips")
_OPERATORS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "!=": lambda a, b: a != b,
              "=": lambda a, b: a == b, "<": lambda a, b: a < b, ">": lambda a, b: a > b}


def row_filter(text):
    """A predicate on Measurement from 'FIELD OP VALUE[,FIELD OP VALUE...]', every condition holding:
    batch>=128, model=llama-2-13b, kind=decode_step,batch>=128."""
    tests = [_condition(part, text) for part in (text or "").split(",")]
    return lambda row: all(test(row) for test in tests)


def _condition(part, text):
    match = re.fullmatch(r"([a-z_]+)\s*(<=|>=|!=|=|<|>)\s*(\S.*)", part.strip()) if len(part) <= 200 else None
    if not match or match.group(1) not in FILTER_FIELDS:
        raise RooflineError(f"row filter {excerpt(text)}: expected FIELD OP VALUE such as batch>=128 or model=llama-2-13b "
                            f"(conditions joined by commas all hold); fields: {', '.join(FILTER_FIELDS)}; "
                            "operators: = != < <= > >=")
    name, op, value = match.groups()
    numeric = name in ("batch", "context", "output", "layers", "chips")
    if numeric:
        try:
            value = float(value)
        except ValueError:
            raise RooflineError(f"row filter {excerpt(text)}: {name} compares with a number, got {excerpt(value)}") from None
    elif op not in ("=", "!=") and name != "date":
        raise RooflineError(f"row filter {excerpt(text)}: {name} is text; use = or != (dates, YYYY-MM-DD, also < and >)")
    compare = _OPERATORS[op]

    def accepts(row):
        actual = getattr(row, name)
        return actual is not None and compare(actual, value)
    return accepts
