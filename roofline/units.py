"""One pint registry for the package, and the conversion of quantities at the edges.

Quantities enter as text with units ("3.35 TB/s") or as pint quantities; each is checked against
the dimension its field needs and converted to a plain SI magnitude (B, B/s, FLOP/s, s, W, USD/s).
Everything inside roofline computes on those magnitudes (pint's own docs measure a function at
286 us with quantities and 1.1 us with plain numbers). The registry is built lazily from
units.txt, so commands that never parse a unit do not pay for it.
"""
import math
import re
from functools import lru_cache
from pathlib import Path

from .errors import RooflineError, excerpt

#: SI unit of each dimension a spec field can have, as text for pint.
DIMENSIONS = {
    "bytes": "B",
    "bandwidth": "B/s",
    "flops": "FLOP/s",
    "time": "s",
    "power": "W",
    "energy": "J",
    "price": "USD/s",
    "count": "",
    "number": "",
}


@lru_cache(maxsize=1)
def registry():
    """The package's pint UnitRegistry, built once from units.txt."""
    import pint

    ureg = pint.UnitRegistry(None)
    ureg.load_definitions(str(Path(__file__).with_name("units.txt")))
    ureg.formatter.default_format = "~P"
    return ureg


def Q_(value, unit=None):
    """A pint quantity of the package registry: ``Q_("3.35 TB/s")`` or ``Q_(3.35, "TB/s")``."""
    ureg = registry()
    return ureg.Quantity(value, unit) if unit is not None else ureg.Quantity(value)


#: decimal and binary prefixes of units.txt, as factors
_PREFIXES = {"": 1.0, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
             "P": 1e15, "E": 1e18, "Ki": 2.0 ** 10, "Mi": 2.0 ** 20, "Gi": 2.0 ** 30, "Ti": 2.0 ** 40,
             "Pi": 2.0 ** 50}
_PER_TIME = {"s": 1.0, "min": 60.0, "h": 3600.0, "hr": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}


def _fast_units():
    """{unit text: (dimension, SI factor)} of the units spec files and options use, read without pint.

    Each entry means what units.txt gives pint (tests/test_hostile.py checks every one against
    pint); any other unit is handed to pint.
    """
    table = {}
    for prefix, factor in _PREFIXES.items():
        for base, scale in (("B", 1.0), ("b", 0.125)):
            table[f"{prefix}{base}"] = ("bytes", factor * scale)
            table[f"{prefix}{base}/s"] = ("bandwidth", factor * scale)
        if "i" in prefix:
            continue
        for base in ("FLOP", "OP", "flop", "op"):
            table[f"{prefix}{base}/s"] = ("flops", factor)
        table[f"{prefix}W"] = ("power", factor)
        table[f"{prefix}J"] = ("energy", factor)
        table[f"{prefix}Wh"] = ("energy", factor * 3600.0)
        table[f"{prefix}s"] = ("time", factor)
    for name, seconds in _PER_TIME.items():
        if name != "s":
            table[name] = ("time", seconds)
        for currency in ("USD", "dollar"):
            table[f"{currency}/{name}"] = ("price", 1.0 / seconds)
    return table


_FAST_UNITS = _fast_units()
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)"
_NAME = r"[^\W\d]\w*(?:\s*(?:\*\*|\^)\s*-?\d+)?"
_QUANTITY = re.compile(rf"\s*({_NUMBER})\s*({_NAME}(?:\s*[*/]\s*{_NAME})*)\s*", re.IGNORECASE)
_PLAIN_NUMBER = re.compile(rf"\s*({_NUMBER})\s*", re.IGNORECASE)


def to_si(value, dimension, where="value"):
    """Magnitude of `value` in the SI unit of `dimension` (see DIMENSIONS), as a float.

    `value` is text of one number and one unit ("3.35 TB/s", "2.5 USD/hour"), a pint quantity, or
    for dimension "count" or "number" a plain number. Text that is not one number followed by one
    unit ("1,5 kW", "3 3 TB/s", "USD/hour") is an error naming that form. Common units are read
    from a table without loading pint (start-up time); others go to pint. Raises RooflineError
    naming `where` when the unit is missing, of the wrong dimension, or the number is not finite.
    """
    target = DIMENSIONS[dimension]
    if isinstance(value, bool):
        raise RooflineError(f"{where}: expected a {dimension} quantity, got {value!r}")
    if dimension in ("count", "number"):
        return _finite(value, where)
    if isinstance(value, (int, float)):
        raise RooflineError(f"{where}: {value!r} has no unit; expected a {dimension} such as '{_example(dimension)}'")
    if not isinstance(value, str):
        return _finite(_pint_to(value, target, dimension, where), where)
    if len(value) > 200:
        raise RooflineError(f"{where}: {excerpt(value)} is too long to be a quantity; expected one number and "
                            f"one unit, such as '{_example(dimension)}'")
    if _PLAIN_NUMBER.fullmatch(value):
        raise RooflineError(f"{where}: {excerpt(value)} has no unit; expected a {dimension} such as "
                            f"'{_example(dimension)}'")
    match = _QUANTITY.fullmatch(value)
    if match is None:
        comma = "; decimals take a point, not a comma" if "," in value else ""
        raise RooflineError(f"{where}: cannot read {excerpt(value)} as a quantity; expected one number and one "
                            f"unit, such as '{_example(dimension)}'{comma}")
    number, unit = match.groups()
    unit = re.sub(r"\s*([*/^]|\*\*)\s*", r"\1", unit)
    known = _FAST_UNITS.get(unit)
    if known is not None:
        if known[0] != dimension:
            raise RooflineError(f"{where}: {excerpt(value)} is not a {dimension}; expected units like "
                                f"'{_example(dimension)}'")
        return _finite(float(number) * known[1], where)
    ureg = registry()
    try:
        quantity = float(number) * ureg.Unit(unit)
    except Exception:  # pint raises several kinds of parse errors
        raise RooflineError(f"{where}: cannot read the unit of {excerpt(value)}; expected a {dimension} "
                            f"such as '{_example(dimension)}'") from None
    return _finite(_pint_to(quantity, target, dimension, where, text=value), where)


def _pint_to(quantity, target, dimension, where, text=None):
    """Magnitude of a pint quantity in the unit `target`; RooflineError if of another dimension."""
    ureg = registry()
    text = excerpt(quantity if text is None else text)
    if not isinstance(quantity, ureg.Quantity) or quantity.dimensionless and target:
        raise RooflineError(f"{where}: {text} has no unit; expected a {dimension} such as '{_example(dimension)}'")
    try:
        return quantity.to(target).magnitude
    except Exception:
        raise RooflineError(f"{where}: {text} is not a {dimension}; expected units like "
                            f"'{_example(dimension)}'") from None


def _finite(number, where):
    try:
        number = float(number)
    except (TypeError, ValueError):
        raise RooflineError(f"{where}: expected a number, got {excerpt(number)}") from None
    except OverflowError:
        raise RooflineError(f"{where}: {excerpt(number)} is not a finite number") from None
    if not math.isfinite(number):
        raise RooflineError(f"{where}: {number!r} is not a finite number")
    return number


def _example(dimension):
    return {"bytes": "80 GB", "bandwidth": "3.35 TB/s", "flops": "989 TFLOP/s", "time": "2 us",
            "power": "700 W", "energy": "1 kWh", "price": "3.99 USD/hour", "count": "8",
            "number": "2.5"}[dimension]


def format_si(value, unit, digits=3):
    """Human text for an SI magnitude with a decimal prefix: format_si(3.35e12, "B/s") -> '3.35 TB/s'."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g} {unit}".strip()
    prefixes = [(1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""),
                (1e-3, "m"), (1e-6, "u"), (1e-9, "n")]
    for scale, prefix in prefixes:
        if abs(value) >= scale * 0.9995:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"
