"""Reading input files safely: bounded UTF-8 text, YAML 1.2 spec files, strict JSON, and a cache;
and writing output files all at once or not at all (`write_atomically`).

Every file roofline reads goes through here: its size is bounded before it is read, it must be
UTF-8, YAML is read with the 1.2 core schema and refuses what a spec file must not hold (repeated
or non-scalar keys, alias blow-ups, numbers too long), JSON refuses NaN, Infinity and numbers too
long. Spec files parsed once are cached by content (`read_spec`), so a command does not import
PyYAML or parse a file it read before. Errors are SpecError naming the file.
"""
import hashlib
import json
import math
import os
import re
from functools import lru_cache
from pathlib import Path

from .errors import RooflineError, SpecError, excerpt

#: the largest spec file read [bytes]: the largest shipped one is 7 kB
MAX_SPEC_BYTES = 1_000_000
#: the most YAML nodes a spec file may hold once its aliases are expanded
MAX_SPEC_NODES = 100_000
#: the most digits of a whole number in a spec file
MAX_DIGITS = 30


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


#: implicit types of the YAML 1.2 core schema: (tag, pattern, first characters)
_RESOLVERS = [
    ("tag:yaml.org,2002:null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"true|True|TRUE|false|False|FALSE", list("tTfF")),
    ("tag:yaml.org,2002:int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", list("-+0123456789")),
    ("tag:yaml.org,2002:float", r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                                r"|[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN", list("-+.0123456789")),
]


@lru_cache(maxsize=1)
def _spec_loader():
    """The YAML loader class of spec files, built on first use (PyYAML is imported only then)."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class SpecLoader(base):
        """The safe loader with the YAML 1.2 core schema, refusing what a spec file must not hold.

        YAML 1.2 numbers: ``1:30`` is text, not 90 (YAML 1.1 base 60); ``017`` is 17, not octal 15;
        ``yes``/``on`` are text, not true; dates stay text; merge keys (``<<``) are plain keys.
        Refused:
        a key written twice in one mapping, a key that is not a scalar, whole numbers of more than
        MAX_DIGITS digits, and aliases that expand past MAX_SPEC_NODES nodes or into themselves.
        """

        yaml_implicit_resolvers = {}

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise yaml.constructor.ConstructorError(
                        None, None, f"a key must be a plain name or number, not a {key_node.id}", key_node.start_mark)
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
                raise yaml.constructor.ConstructorError(
                    None, None, f"a whole number of {len(digits)} digits; at most {MAX_DIGITS} are read",
                    node.start_mark)
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

    for tag, pattern, first in _RESOLVERS:
        SpecLoader.add_implicit_resolver(tag, re.compile(rf"^(?:{pattern})$"), first)
    SpecLoader.add_constructor("tag:yaml.org,2002:int", SpecLoader.construct_yaml12_int)
    SpecLoader.add_constructor("tag:yaml.org,2002:float", SpecLoader.construct_yaml12_float)
    SpecLoader.add_constructor("tag:yaml.org,2002:bool", SpecLoader.construct_yaml12_bool)
    yaml.SafeDumper.add_representer(WrittenFloat, yaml.SafeDumper.represent_float)
    return SpecLoader


def _expanded_size(node, limit):
    """Nodes of `node` with every alias expanded; ValueError past `limit` or on a recursive alias."""
    import yaml

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
    import yaml

    loader = _spec_loader()(text)
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




#: bump when the reading of YAML changes (what a cached parse means): it is part of the cache key
_CACHE_FORMAT = "roofline-spec-1"
_FLOAT = "\u0000float"        # marks a WrittenFloat in a cache file: no key of a YAML mapping has it
#: the most parsed files the cache keeps: the shipped specs are about 120 files, so this leaves room
#: for a user's own and for edits (each edit is a new entry); beyond it the oldest entries go
CACHE_ENTRIES = 1000


def cache_dir():
    """Where parsed spec files are kept: $XDG_CACHE_HOME/roofline/specs (default ~/.cache/...)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "roofline" / "specs"


def read_spec(path):
    """The value of a YAML spec file (read_text, parse_yaml), from the cache when a file of the same
    bytes was parsed before. The cache is a convenience: a missing, broken or unwritable cache
    changes nothing but the time taken (every failure to use it falls back to parsing)."""
    text = read_text(path)
    key = hashlib.sha256(f"{_CACHE_FORMAT}\n{text}".encode("utf-8", "surrogatepass")).hexdigest()
    cached = _cache_get(key)
    if cached is not None:
        return cached
    value = parse_yaml(text, path)
    _cache_put(key, value)
    return value


def _cache_get(key):
    try:
        with open(cache_dir() / f"{key}.json", encoding="utf-8") as handle:
            return json.load(handle, object_hook=_decode_float)
    except Exception:      # noqa: BLE001  (absent, unreadable or corrupt: parse the file instead)
        return None


def _cache_put(key, value):
    try:
        text = json.dumps(_encode_floats(value), allow_nan=True)
        folder = cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        scratch = folder / f".{key}.{os.getpid()}.part"
        scratch.write_text(text, encoding="utf-8")
        os.replace(scratch, folder / f"{key}.json")
        _prune(folder)
    except Exception:      # noqa: BLE001  (unwritable, or a value JSON cannot hold: simply not cached)
        pass


def _prune(folder, keep=None):
    """Remove the oldest-written entries beyond `keep` (CACHE_ENTRIES) parsed files: run only when
    an entry is written, so a cache that already holds every file it is asked for costs nothing."""
    keep = CACHE_ENTRIES if keep is None else keep
    entries = list(folder.glob("*.json"))
    if len(entries) <= keep:
        return
    entries.sort(key=lambda entry: entry.stat().st_mtime)
    for entry in entries[:len(entries) - keep]:
        entry.unlink(missing_ok=True)


def _encode_floats(value):
    """`value` with each WrittenFloat as {_FLOAT: [number, text]}; TypeError for what JSON would
    change (a key that is not text, or the marker itself)."""
    if isinstance(value, WrittenFloat):
        return {_FLOAT: [float(value), value.text]}
    if isinstance(value, dict):
        if any(not isinstance(k, str) or k == _FLOAT for k in value):
            raise TypeError("a key JSON would change")
        return {k: _encode_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode_floats(v) for v in value]
    return value


def _decode_float(mapping):
    return WrittenFloat(*mapping[_FLOAT]) if len(mapping) == 1 and _FLOAT in mapping else mapping


def write_atomically(path, write, check=None, where=None):
    """Write a text file whole or not at all.

    write(handle) fills a scratch file beside `path`; check(scratch path), if given, may refuse
    what was written (by raising); then the scratch file replaces `path`. An OS error is one
    RooflineError naming `where` (default: the path); on any error nothing is left behind.
    """
    import tempfile
    target = Path(path)
    name = excerpt(str(where or path))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor, scratch = tempfile.mkstemp(prefix=".roofline-", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise RooflineError(f"{name}: cannot write there ({exc.strerror or exc.__class__.__name__})") from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            write(handle)
        if check is not None:
            check(scratch)
        os.replace(scratch, target)
    except OSError as exc:
        raise RooflineError(f"{name}: cannot write ({exc.strerror or exc.__class__.__name__})") from None
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return target
