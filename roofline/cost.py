"""Cost and energy of serving: $/Mtok, J/token, tokens/kWh, deployment power, per user and in aggregate.

Every formula divides what the deployment consumes per second (dollars, joules) by the tokens it
produces per second. Use the aggregate rate (all users together) for the cost of a token; the
per-user figures share the deployment's hourly cost and power out over the users it serves.

Prices are rental prices per chip-hour (stored in SI as USD/s), on one basis for every chip: a
hyperscaler's (AWS, Google Cloud, Azure) on-demand list price per accelerator-hour, dated in the spec.
Power is on one basis for every chip, the accelerator's share of its reference system's maximum input
power (`system_power` in the spec: e.g. DGX H100, 10.2 kW for 8 GPUs with their host CPUs, memory,
NICs, NVSwitches and fans, 1275 W a GPU; one CS-3, 23 kW a wafer), times an optional facility
overhead factor (PUE: total facility power / IT power, >= 1; The Green Grid, "PUE: a comprehensive
examination of the metric", White Paper 49, 2012). A chip's TDP alone leaves out the host and network
that every token also needs; a maximum is an upper bound, and a memory-bound decode often draws less.
A chip without a figure on either basis reports it as unknown (the output says so, and the spec file
says why) rather than on another basis.

All formulas take floats, numpy arrays or sympy symbols.
"""
from dataclasses import dataclass

from .errors import RooflineError
from .units import to_si

#: seconds in an hour, joules in a kilowatt-hour
HOUR = 3600.0
KWH = 3.6e6


def usd_per_mtok(price_per_chip_s, chips, tokens_per_s):
    """Dollars per million tokens [USD / 1e6 token].

    .. math:: \\$/\\mathrm{Mtok} = \\frac{p \\, N}{R} \\times 10^6

    price_per_chip_s p [USD/s per chip], chips N [1], tokens_per_s R [token/s] (aggregate over all
    users). Reference: "Cost per 1M tokens = (GPU $/hour) / (TPS x 3600) x 1,000,000", GMI Cloud,
    "Cost per million tokens comes from one formula" (2026),
    https://www.gmicloud.ai/en/blog/cost-per-million-tokens-formula (its worked example: 2.00 USD/h
    at 40 tok/s is about 13.90 USD/Mtok).
    """
    return price_per_chip_s * chips / tokens_per_s * 1e6


def deployment_power(power_w, chips, pue=1.0):
    """Power drawn by a deployment [W]: chips x power per chip x facility overhead.

    .. math:: P = N \\, P_{chip} \\, \\mathrm{PUE}

    power_w P_chip [W per chip], chips N [1], pue [1] (>= 1; 1 counts the chips alone).
    """
    return chips * power_w * pue


def joules_per_token(power_w, chips, tokens_per_s, pue=1.0):
    """Energy per token [J/token].

    .. math:: E = \\frac{N \\, P_{chip} \\, \\mathrm{PUE}}{R}

    power_w [W per chip], chips [1], tokens_per_s R [token/s] aggregate, pue [1]. Reference: the
    energy-per-second over tokens-per-second arithmetic of M. Clune, "Another look at per token
    energy costs", https://clune.org/posts/per-token-energy-costs-again (1.5 kW at 41.8 tok/s:
    36 J/token, 10 kWh per million tokens).
    """
    return deployment_power(power_w, chips, pue) / tokens_per_s


def tokens_per_kwh(power_w, chips, tokens_per_s, pue=1.0):
    """Tokens per kilowatt-hour [token/kWh]: 3.6e6 J/kWh / (J/token)."""
    return KWH / joules_per_token(power_w, chips, tokens_per_s, pue)


@dataclass(frozen=True)
class TargetCheck:
    """Whether a result meets an upper limit, and by how much.

    margin = (limit - value) / limit: the fraction of the limit left over (negative: missed).
    """
    name: str
    value: float
    limit: float
    met: bool
    margin: float


def check_max(name, value, limit):
    """TargetCheck of `value` against an upper `limit` (same unit); RooflineError if value is None."""
    if value is None:
        raise RooflineError(f"{name}: the result has no value to check against the limit {limit:g}")
    if not limit > 0:
        raise RooflineError(f"{name}: the limit must be positive, got {limit!r}")
    return TargetCheck(name, float(value), float(limit), bool(value <= limit), float((limit - value) / limit))


def check_max_usd_per_mtok(result, limit):
    """Does `result` (anything with `usd_per_mtok` and `hardware`) cost at most `limit` USD per Mtok?

    Returns a TargetCheck (met, margin). A result without a price raises RooflineError naming the
    chip: the solver cannot judge a cost constraint without one.
    """
    value = getattr(result, "usd_per_mtok", None)
    if value is None:
        raise RooflineError(f"--max-usd-per-mtok: {getattr(result, 'hardware', 'the chip')} has no price in its "
                            "spec; give one with --price USD/hour")
    return check_max("usd_per_mtok", value, limit)


@dataclass(frozen=True)
class Pricing:
    """Price and power per chip of a deployment (from the chip spec or given), and the PUE.

    price [USD/s per chip] or None, power [W per chip: the spec's system_power, the module
    docstring's basis] or None, pue [1].
    """
    hardware: str
    price: float = None
    power: float = None
    pue: float = 1.0

    def fields(self, tokens_per_s, chips=1):
        """(fields, notes): usd_per_mtok, joules_per_token, tokens_per_kwh and power_w of a result
        producing `tokens_per_s` tokens/s on `chips` chips; None (with a note) where the price or
        power is unknown."""
        notes = []
        out = {"usd_per_mtok": None, "joules_per_token": None, "tokens_per_kwh": None, "power_w": None}
        if self.price is None:
            notes.append(f"usd_per_mtok: unknown: {self.hardware} has no price in its spec; give one with "
                         "--price USD/hour")
        else:
            out["usd_per_mtok"] = float(usd_per_mtok(self.price, chips, tokens_per_s))
        if self.power is None:
            notes.append(f"joules_per_token, tokens_per_kwh, power_w: unknown: {self.hardware} has no system power "
                         "in its spec (its share of a reference system's maximum input power, the basis of every "
                         "chip's J/token); give one with --power W")
        else:
            out["power_w"] = float(deployment_power(self.power, chips, self.pue))
            out["joules_per_token"] = float(joules_per_token(self.power, chips, tokens_per_s, self.pue))
            out["tokens_per_kwh"] = float(tokens_per_kwh(self.power, chips, tokens_per_s, self.pue))
        return out, notes


def pricing(hardware, price=None, power=None, pue=1.0):
    """Pricing of `hardware` with optional overrides, checked at the edge.

    price: text or pint quantity ("2.5 USD/hour"), power: text or quantity ("700 W"); None keeps
    the spec's value (price; system_power for power). pue: a number >= 1. Plain numbers for price
    or power are refused (their unit would be a guess).
    """
    if price is not None:
        price = to_si(price, "price", "price")
        if price <= 0:
            raise RooflineError(f"price: must be positive, got {price * HOUR:g} USD/hour")
    if power is not None:
        power = to_si(power, "power", "power")
        if power <= 0:
            raise RooflineError(f"power: must be positive, got {power:g} W")
    pue = to_si(pue, "number", "pue")
    if pue < 1:
        raise RooflineError(f"pue: the facility overhead factor is total power / IT power, at least 1; got {pue:g}")
    return Pricing(hardware.id, hardware.price if price is None else price,
                   hardware.system_power if power is None else power, pue)
