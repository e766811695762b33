"""Reading spec files: where they are, safe YAML, and field-by-field checks with sources.

Every spec file is a YAML mapping. A `FieldReader` walks it, converting each number to an SI
magnitude (units.to_si), remembering its provenance (a `Fact`), and collecting the first problem
as a SpecError that names the file, the field and what was expected. Unknown keys are errors.
"""
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import RooflineError, SpecError, excerpt
from .readers import read_spec
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
    near = near_ids(name, paths)
    hint = f"; did you mean {', '.join(near)}?" if near else f"; known ids: {', '.join(paths)}"
    listing = {"model": " (roofline list models)", "hardware": " (roofline list hardware)",
               "link": " (roofline list links)"}.get(kind, "")
    raise RooflineError(f"unknown {kind} id {excerpt(name)}{hint}{listing}")


def near_ids(name, ids, n=3):
    """Up to `n` ids close to `name`, best first: ids that start with it, then ids that contain it,
    then the rest by similarity (difflib ratio >= 0.5); ties by similarity, so `h100` offers
    h100-sxm and h100-pcie before h200."""
    import difflib  # only for a suggestion (20 ms of start-up otherwise)

    name = name.lower()

    def rank(spec_id):
        ratio = difflib.SequenceMatcher(None, name, spec_id.lower()).ratio()
        return (not spec_id.lower().startswith(name), name not in spec_id.lower(), -ratio)

    scored = [(rank(i), i) for i in ids]
    close = [item for item in scored if item[0][1] is False or -item[0][2] >= 0.5]
    return [spec_id for _, spec_id in sorted(close)[:n]]


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
    near = near_ids(name, known)
    hint = f"did you mean {', '.join(near)}?" if near else "see roofline list models|hardware|links"
    raise RooflineError(f"unknown spec id '{name}' (no model, chip or link has it); {hint}")


def load_yaml(path):
    """The mapping in a YAML spec file (readers.load_spec_text: YAML 1.2, bounded, cached); SpecError
    on an unreadable, oversized or malformed file, a repeated key or a non-mapping."""
    data = read_spec(path)
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


def _in_spec_directory(path):
    folder = Path(path).resolve().parent
    for kind in KINDS:
        for directory in [builtin_dir(kind), *user_dirs(kind)]:
            if directory.is_dir() and folder == directory.resolve():
                return True
    return False


def file_reader(data, path):
    """The FieldReader of a spec file's top level, with its `sources:` and its optional file-level
    `source:` (the default source of bare values such as `power: 700 W`)."""
    sources = read_sources(data, path)
    default = data.get("source")
    if default is not None and str(default) not in sources:
        raise SpecError(path, f"source: '{default}' is not defined under 'sources:'")
    reader = FieldReader(data, path, sources, default_source=None if default is None else str(default))
    reader.seen.update({"sources", "source"})
    return reader


def check_id(reader, path):
    """The spec's id, which must equal the file stem inside a spec directory (ids resolve to files
    there by name); a file given by its path elsewhere may carry any id, so that
    `roofline show h100-sxm --format yaml > mychip.yaml` loads back as it was."""
    spec_id = reader.text("id")
    if Path(path).stem != spec_id and _in_spec_directory(path):
        raise SpecError(path, f"id: '{spec_id}' must equal the file name '{Path(path).stem}'")
    return spec_id
