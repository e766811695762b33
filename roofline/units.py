"""One pint registry for the package, and the conversion of quantities at the edges.

Quantities enter as text with units ("3.35 TB/s") or as pint quantities; each is checked against
the dimension its field needs and converted to a plain SI magnitude (B, B/s, FLOP/s, s, W, USD/s).
Everything inside roofline computes on those magnitudes (pint's own docs measure a function at
286 us with quantities and 1.1 us with plain numbers). The registry is built lazily from
units.txt, so commands that never parse a unit do not pay for it.
"""
import math
from functools import lru_cache
from pathlib import Path

from .errors import RooflineError

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


def to_si(value, dimension, where="value"):
    """Magnitude of `value` in the SI unit of `dimension` (see DIMENSIONS), as a float.

    `value` is text with a unit ("3.35 TB/s"), a pint quantity, or for dimension "count" a plain
    number. Raises RooflineError naming `where` when the unit is missing, of the wrong dimension,
    or the number is not finite.
    """
    target = DIMENSIONS[dimension]
    if isinstance(value, bool):
        raise RooflineError(f"{where}: expected a {dimension} quantity, got {value!r}")
    if dimension in ("count", "number"):
        return _finite(value, where)
    if isinstance(value, (int, float)):
        raise RooflineError(f"{where}: {value!r} has no unit; expected a {dimension} such as '{_example(dimension)}'")
    ureg = registry()
    try:
        quantity = ureg.Quantity(value) if isinstance(value, str) else ureg.Quantity(str(value))
    except Exception as exc:  # pint raises several kinds of parse errors
        raise RooflineError(f"{where}: cannot read {value!r} as a quantity ({exc.__class__.__name__}); "
                            f"expected a {dimension} such as '{_example(dimension)}'") from None
    if not isinstance(quantity, ureg.Quantity) or quantity.dimensionless and target:
        raise RooflineError(f"{where}: {value!r} has no unit; expected a {dimension} such as '{_example(dimension)}'")
    try:
        magnitude = quantity.to(target).magnitude
    except Exception:
        raise RooflineError(f"{where}: {value!r} is not a {dimension}; expected units like "
                            f"'{_example(dimension)}'") from None
    return _finite(magnitude, where)


def _finite(number, where):
    try:
        number = float(number)
    except (TypeError, ValueError):
        raise RooflineError(f"{where}: expected a number, got {number!r}") from None
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
