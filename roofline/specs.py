"""Reading spec files: where they are, safe YAML, and field-by-field checks with sources.

Every spec file is a YAML mapping. A `FieldReader` walks it, converting each number to an SI
magnitude (units.to_si), remembering its provenance (a `Fact`), and collecting the first problem
as a SpecError that names the file, the field and what was expected. Unknown keys are errors.
"""
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import RooflineError, SpecError, excerpt
from .units import to_si

KINDS = {"hardware": "hardware_specs", "model": "model_specs", "link": "hardware_specs/links",
         "calibration": "hardware_specs/calibrations"}
USER_DIR_ENV = "ROOFLINE_SPECS"


@dataclass(frozen=True)
class Fact:
    """One number of a spec file with its provenance, for `roofline show`."""
    field: str
    value: float          # SI magnitude
    text: str             # as written in the file ("3.35 TB/s")
    source: str           # what the source key resolves to
    source_key: str
    derived: str = None
    note: str = None


def builtin_dir(kind):
    """Directory of the shipped specs of `kind`: inside the installed package, else the checkout."""
    sub = KINDS[kind]
    package = Path(__file__).parent
    installed = package / sub
    return installed if installed.is_dir() else package.parent / sub


def user_dirs(kind):
    """Extra spec directories: $ROOFLINE_SPECS (os.pathsep-separated roots) and the user data dir."""
    roots = [Path(p) for p in os.environ.get(USER_DIR_ENV, "").split(os.pathsep) if p]
    roots.append(user_data_root())
    return [root / KINDS[kind] for root in roots]


def user_data_root():
    """Where `roofline model import` writes: $XDG_DATA_HOME/roofline (default ~/.local/share/roofline)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "roofline"


def spec_paths(kind):
    """{id: path} of every spec of `kind`; user directories override shipped files of the same id."""
    found = {}
    for directory in [builtin_dir(kind), *user_dirs(kind)]:
        try:                # a folder that cannot be listed (too long a name, no permission) adds none
            paths = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
        except OSError:
            paths = []
        for path in paths:
            found[path.stem] = path
    return dict(sorted(found.items()))


def is_file(path):
    """Path.is_file, False also for a name the file system refuses (too long, bad bytes)."""
    try:
        return Path(path).is_file()
    except (OSError, ValueError):
        return False


def _spec_path(kind, spec_id):
    """The path spec_paths(kind) gives `spec_id`, found by looking for <id>.yaml in each directory
    (last that has it wins) instead of listing them all; None if none has it."""
    for directory in reversed([builtin_dir(kind), *user_dirs(kind)]):
        path = directory / f"{spec_id}.yaml"
        if is_file(path):
            return path
    return None


def resolve(kind, name):
    """Path of the spec `name` (an id, or a path to a .yaml file); unknown ids suggest the nearest."""
    name = str(name)
    if not name.strip():
        raise RooflineError(f"empty {kind} id; expected an id or a .yaml spec file")
    if name.endswith((".yaml", ".yml")) or os.sep in name:
        path = Path(name)
        if not is_file(path):
            raise RooflineError(f"{kind} spec file {excerpt(name)} does not exist")
        return path
    path = _spec_path(kind, name) if re.fullmatch(r"[\w.+-]+", name) else None
    if path is not None:
        return path
    paths = spec_paths(kind)
    if name in paths:
        return paths[name]
    import difflib  # only for a suggestion (20 ms of start-up otherwise)

    near = difflib.get_close_matches(name, paths, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(near)}?" if near else f"; known ids: {', '.join(paths)}"
    listing = {"model": " (roofline list models)", "hardware": " (roofline list hardware)",
               "link": " (roofline list links)"}.get(kind, "")
    raise RooflineError(f"unknown {kind} id {excerpt(name)}{hint}{listing}")


def find_any(name):
    """(kind, path) of an id or spec file of any kind; unknown ids suggest the nearest of all kinds.

    A file's kind follows its fields: `architecture` (model), `memory` or `peak_flops` (chip), else
    a link.
    """
    name = str(name)
    if name.endswith((".yaml", ".yml")) or os.sep in name:
        path = resolve("model", name)
        data = load_yaml(path)
        kind = "model" if "architecture" in data else "hardware" if {"memory", "peak_flops"} & set(data) else "link"
        return kind, path
    known = {}
    for kind in ("model", "hardware", "link"):
        paths = spec_paths(kind)
        if name in paths:
            return kind, paths[name]
        known.update({spec_id: kind for spec_id in paths})
    import difflib

    near = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(near)}?" if near else "see roofline list models|hardware|links"
    raise RooflineError(f"unknown spec id '{name}' (no model, chip or link has it); {hint}")


#: the largest spec file read [bytes]: the largest shipped one is 7 kB
MAX_SPEC_BYTES = 1_000_000
#: the most YAML nodes a spec file may hold once its aliases are expanded
MAX_SPEC_NODES = 100_000
#: the most digits of a whole number in a spec file
MAX_DIGITS = 30

_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class WrittenFloat(float):
    """A float read from a spec file that prints as it was written ("8.03e9", not 8030000000.0)."""

    def __new__(cls, value, text):
        number = super().__new__(cls, value)
        number.text = text
        return number

    def __str__(self):
        return self.text

    def __reduce__(self):          # copy and pickle: a float subclass with a field of its own
        return WrittenFloat, (float(self), self.text)


yaml.SafeDumper.add_representer(WrittenFloat, yaml.SafeDumper.represent_float)


class SpecLoader(_BASE_LOADER):
    """The safe loader with the YAML 1.2 core schema, refusing what a spec file must not hold.

    YAML 1.2 numbers: ``1:30`` is text, not 90 (YAML 1.1 base 60); ``017`` is 17, not octal 15;
    ``yes``/``on`` are text, not true; dates stay text; merge keys (``<<``) are plain keys. Refused:
    a key written twice in one mapping, a key that is not a scalar, whole numbers of more than
    MAX_DIGITS digits, and aliases that expand to more than MAX_SPEC_NODES nodes or into themselves.
    """

    yaml_implicit_resolvers = {}

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(None, None, "a key must be a plain name or number, "
                                                        f"not a {key_node.id}", key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {excerpt(key)} appears twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)

    def construct_yaml12_int(self, node):
        text = self.construct_scalar(node)
        digits = text.lstrip("+-")
        if len(digits) > MAX_DIGITS:
            raise yaml.constructor.ConstructorError(None, None, f"a whole number of {len(digits)} digits; "
                                                    f"at most {MAX_DIGITS} are read", node.start_mark)
        sign = -1 if text.startswith("-") else 1
        if digits[:2] in ("0x", "0o"):
            return sign * int(digits[2:], 16 if digits[1] == "x" else 8)
        return sign * int(digits)

    def construct_yaml12_float(self, node):
        text = self.construct_scalar(node)
        plain = text.lower().lstrip("+")
        special = {".inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}
        return WrittenFloat(special[plain] if plain in special else float(plain), text)

    def construct_yaml12_bool(self, node):
        return self.construct_scalar(node).lower() == "true"


_RESOLVERS = [
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", list("-+0123456789")),
    ("tag:yaml.org,2002:float", r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                                r"|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN", list("-+.0123456789")),
]
for _tag, _pattern, _first in _RESOLVERS:
    SpecLoader.add_implicit_resolver(_tag, re.compile(rf"^(?:{_pattern})$"), _first)
SpecLoader.add_constructor("tag:yaml.org,2002:int", SpecLoader.construct_yaml12_int)
SpecLoader.add_constructor("tag:yaml.org,2002:float", SpecLoader.construct_yaml12_float)
SpecLoader.add_constructor("tag:yaml.org,2002:bool", SpecLoader.construct_yaml12_bool)


def _expanded_size(node, limit):
    """Nodes of `node` with every alias expanded; ValueError past `limit` or on a recursive alias."""
    sizes, active = {}, set()

    def size(item):
        key = id(item)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise ValueError("an alias refers to the node that holds it")
        active.add(key)
        children = item.value if isinstance(item, yaml.SequenceNode) else \
            [n for pair in item.value for n in pair] if isinstance(item, yaml.MappingNode) else ()
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                raise ValueError(f"more than {limit} values once its aliases are expanded")
        active.discard(key)
        sizes[key] = total
        return total
    return size(node)


def parse_yaml(text, where="YAML"):
    """The value of one YAML document read with SpecLoader; SpecError naming `where` on bad input."""
    loader = SpecLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if "*" in text:           # an alias is written *name: only then can the document expand
            _expanded_size(node, MAX_SPEC_NODES)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(where, f"malformed YAML{at}: {problem}") from None
    except ValueError as exc:
        raise SpecError(where, f"refused: {exc}") from None
    except RecursionError:
        raise SpecError(where, "refused: nested too deeply") from None
    finally:
        loader.dispose()


def read_text(path, what="a spec file", limit=MAX_SPEC_BYTES):
    """The UTF-8 text of a file of at most `limit` bytes (a UTF-8 byte-order mark is dropped).

    SpecError naming the file when it cannot be read, is larger, or is not UTF-8 text.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise SpecError(path, f"cannot read: {exc.strerror or exc.__class__.__name__}") from None
    if len(raw) > limit:
        raise SpecError(path, f"larger than {limit:,} bytes, the limit for {what}")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        encoding = " (it looks like UTF-16)" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
        raise SpecError(path, f"not UTF-8 text{encoding}: byte {exc.start} cannot be decoded; "
                              f"expected {what} saved as UTF-8") from None


class _Refused(ValueError):
    """A JSON value a config must not hold (NaN, Infinity, a number too long to be a size)."""


def _json_int(text):
    if len(text.lstrip("-")) > MAX_DIGITS:
        raise _Refused(f"a whole number of {len(text.lstrip('-'))} digits; at most {MAX_DIGITS} are read")
    return int(text)


def _json_float(text):
    number = float(text)
    if not math.isfinite(number):
        raise _Refused(f"{excerpt(text)} overflows a float")
    return number


def _json_constant(text):
    raise _Refused(f"{text} is not a number JSON allows; expected a finite number")


def parse_json(text, where, what):
    """The value of JSON text; SpecError naming `where` when it is malformed, nested too deeply, or
    holds NaN, Infinity or a whole number of over MAX_DIGITS digits (plain json reads all three)."""
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except json.JSONDecodeError as exc:
        raise SpecError(where, f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
                              f"expected {what}") from None
    except _Refused as exc:
        raise SpecError(where, f"refused: {exc}") from None
    except RecursionError:
        raise SpecError(where, f"refused: nested too deeply for {what}") from None


def read_json(path, what, limit):
    """The value of a UTF-8 JSON file of at most `limit` bytes (read_text, parse_json)."""
    return parse_json(read_text(path, what, limit), path, what)


def load_yaml(path):
    """The mapping in a YAML spec file (SpecLoader); SpecError on an unreadable, oversized or
    malformed file, a repeated key or a non-mapping."""
    data = parse_yaml(read_text(path), path)
    if not isinstance(data, dict):
        raise SpecError(path, "expected a mapping of fields at the top level")
    return data


class FieldReader:
    """Reads the fields of one mapping of a spec file, checking each and recording its source.

    `sources` is the file's source map, `default_source` the key bare numbers inherit (or None:
    then a bare number is an error), `facts` a list shared by all readers of one file.
    """

    def __init__(self, data, where, sources, default_source=None, facts=None, prefix=""):
        if not isinstance(data, dict):
            raise SpecError(where, f"{prefix.rstrip('.') or 'top level'}: expected a mapping, got {excerpt(data)}")
        self.data, self.where, self.sources = data, where, sources
        self.default_source, self.prefix = default_source, prefix
        self.facts = [] if facts is None else facts
        self.seen = set()

    def _fail(self, key, what):
        raise SpecError(self.where, f"{self.prefix}{key}: {what}")

    def has(self, key):
        return self.data.get(key) is not None

    def raw(self, key, required=True, default=None):
        self.seen.add(key)
        if key not in self.data or self.data[key] is None:
            if required:
                self._fail(key, "missing required field")
            return default
        return self.data[key]

    def quantity(self, key, dimension, required=True, positive=True, allow_zero=False):
        """SI magnitude of a sourced number; records a Fact."""
        entry = self.raw(key, required)
        if entry is None:
            return None
        return self.value_of(entry, key, dimension, positive, allow_zero)

    def value_of(self, entry, key, dimension, positive=True, allow_zero=False):
        field = f"{self.prefix}{key}"
        extra = {}
        if isinstance(entry, dict):
            unknown = set(entry) - {"value", "source", "derived", "note", "stated_as"}
            if unknown:
                self._fail(key, f"unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                                "expected value, source, derived, note, stated_as")
            if entry.get("value") is None:
                self._fail(key, "missing 'value'")
            value, source_key = entry["value"], entry.get("source")
            extra = {k: str(entry[k]) for k in ("derived", "note") if entry.get(k) is not None}
            if source_key is None:
                source_key = self.default_source
        else:
            value, source_key = entry, self.default_source
        if isinstance(value, (list, dict)):
            self._fail(key, f"expected one {dimension if dimension != 'count' else 'whole number'}, got a "
                            f"{type(value).__name__}: {excerpt(value)}")
        if source_key is None:
            self._fail(key, f"{excerpt(value)} has no source; write {{value: {excerpt(value)}, source: <key of sources>}}")
        if str(source_key) not in self.sources:
            self._fail(key, f"source '{source_key}' is not defined under 'sources:'")
        try:
            magnitude = to_si(value, dimension, where=f"{self.where}: {field}")
        except RooflineError as exc:
            raise SpecError(self.where, str(exc).split(": ", 1)[1]) from None
        if dimension == "count" and magnitude != int(magnitude):
            self._fail(key, f"expected a whole number, got {excerpt(value)}")
        if positive and (magnitude < 0 or (magnitude == 0 and not allow_zero)):
            self._fail(key, f"{excerpt(value)} must be {'zero or more' if allow_zero else 'greater than zero'}")
        self.facts.append(Fact(field, magnitude, str(value), str(self.sources[str(source_key)]),
                               str(source_key), **extra))
        return magnitude

    def count(self, key, required=True, default=None, allow_zero=False, maximum=None):
        """A whole number; `maximum` (if given) is the largest accepted, said in the error."""
        value = self.quantity(key, "count", required, allow_zero=allow_zero)
        if value is not None and maximum is not None and value > maximum:
            self._fail(key, f"{value:.6g} is more than the limit of {maximum:,}")
        return default if value is None else int(value)

    def text(self, key, required=True, default=None, choices=None):
        value = self.raw(key, required)
        if value is None:
            return default
        if isinstance(value, dict) and "value" in value:
            value = value["value"]
        if not isinstance(value, str) or not value.strip():
            self._fail(key, f"expected text, got {excerpt(value)}")
        if choices and value not in choices:
            self._fail(key, f"'{value}' is not one of {', '.join(choices)}")
        return value

    def flag(self, key, default=False, required=False):
        value = self.raw(key, required=required)
        if value is None:
            return default
        if not isinstance(value, bool):
            self._fail(key, f"expected true or false, got {excerpt(value)}")
        return value

    def sub(self, key, required=True):
        """A reader for the nested mapping under `key` (None if absent and not required)."""
        value = self.raw(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            self._fail(key, f"expected a mapping, got {excerpt(value)}")
        return FieldReader(value, self.where, self.sources, self.default_source, self.facts,
                           f"{self.prefix}{key}.")

    def items(self, key, required=True):
        """Readers for each mapping of the list under `key`."""
        value = self.raw(key, required)
        if value is None:
            return []
        if not isinstance(value, list) or not value:
            self._fail(key, "expected a non-empty list")
        return [FieldReader(item, self.where, self.sources, self.default_source, self.facts,
                            f"{self.prefix}{key}[{i}].") for i, item in enumerate(value)]

    def finish(self):
        """Raise on keys nobody read (typos, fields this version does not know)."""
        unknown = [str(k)[:60] for k in self.data if k not in self.seen]
        if unknown:
            import difflib

            self._fail(unknown[0], "unknown field" + (
                f"; did you mean '{near[0]}'?" if (near := difflib.get_close_matches(
                    unknown[0], [str(k) for k in self.seen], n=1)) else ""))


def read_sources(data, where):
    """The file's `sources:` mapping {key: text}."""
    sources = data.get("sources")
    if not isinstance(sources, dict) or not sources:
        raise SpecError(where, "sources: missing; expected a mapping of source keys to URLs or documents")
    for key, text in sources.items():
        if not isinstance(text, str) or not text.strip():
            raise SpecError(where, f"sources.{key}: expected a URL or document reference")
    return {str(k): v for k, v in sources.items()}


def check_id(reader, path):
    """The spec's id, which must equal the file stem."""
    spec_id = reader.text("id")
    if Path(path).stem != spec_id:
        raise SpecError(path, f"id: '{spec_id}' must equal the file name '{Path(path).stem}'")
    return spec_id
