"""Numbers as people read them: units with decimal SI prefixes at 4 significant digits (`16.06 GB`,
`6.711 ms`, `2.3 kW`, `149 tok/s`), the unit chosen from a field's name; and as programs read them:
plain SI magnitudes rounded to 12 significant digits. Used by the CLI's tables and by results'
HTML in Jupyter.

`step_sections` groups a decode or prefill result the way the CLI table and the what-if notebook show it.
"""
import math

SIGNIFICANT = 4        # digits in tables
JSON_SIGNIFICANT = 12  # digits in JSON and CSV

#: display unit of a field, by name suffix, tried in order (first match wins)
_FIELD_UNITS = (
    ("tokens_per_s_per_user", "tok/s"), ("tokens_per_s", "tok/s"), ("tokens_per_s_per_chip", "tok/s"),
    ("tok_s_per_user", "tok/s"), ("tok_s", "tok/s"), ("requests_per_s", "req/s"), ("tokens_per_kwh", "tok/kWh"),
    ("joules_per_token", "J/tok"), ("usd_per_mtok", "USD/Mtok"), ("usd_per_hour", "USD/h"),
    ("bytes_per_s", "B/s"), ("flops_per_s", "FLOP/s"), ("flop_per_byte", "FLOP/B"), ("bytes_per_token", "B/tok"),
    ("_bytes", "B"), ("bytes", "B"), ("_flops", "FLOP"), ("flops", "FLOP"), ("_w", "W"), ("_per_s", "/s"),
    ("_s", "s"),
)
#: units whose numbers take no SI prefix (money) or take it on the number, not the unit (tokens)
_NO_PREFIX = ("USD",)
_PREFIX_ON_NUMBER = ("tok/", "req/", "/")
#: units that take a prefix themselves (16.06 GB, 6.711 ms); other units print numbers from 0.001 to
#: 9999 as they are and larger or smaller ones with the prefix on the number (0.9996 FLOP/B, 12.5k FLOP/B)
_PREFIXED = ("s", "B", "B/s", "W", "J", "J/tok", "FLOP", "FLOP/s", "B/tok", "Hz")
_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""),
             (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"), (1e-12, "p"))


def field_unit(name):
    """The unit a table shows a field in, from its name: `step_time_s` -> s, `weight_bytes` -> B."""
    name = str(name)
    for suffix, unit in _FIELD_UNITS:
        if name.endswith(suffix):
            return unit
    return ""


def _round(value, digits):
    """`value` rounded to `digits` significant digits (0 and non-finite values unchanged)."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


def _mantissa(value):
    """Text of a number in [1, 1000) or below 1e-12 without exponent, at most 4 significant digits."""
    text = f"{value:.{SIGNIFICANT}g}"
    if "e" in text:  # only for magnitudes beyond the prefixes: keep them readable but exact
        text = f"{value:.{SIGNIFICANT - 1}e}"
    return text


def si_text(value, unit=""):
    """`value` [SI] as text with a decimal prefix and 4 significant digits: si_text(1.606e10, 'B') -> '16.06 GB'.

    Money keeps no prefix (`7.437 USD/Mtok`); token rates carry the prefix on the number
    (`66.31k tok/s`); a unitless number takes the prefix alone (`766.4k`).
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and abs(value) < 10 ** 6 and not unit:
        return str(value)
    value = float(value)
    if not math.isfinite(value):
        return f"{value} {unit}".strip()
    if abs(value) < 1e-12:      # below a pico-unit: no quantity here is that small; rounding noise of a nil one
        return f"0 {unit}".strip()
    rounded = _round(value, SIGNIFICANT)
    if unit.startswith(_NO_PREFIX) or (unit not in _PREFIXED and not unit.startswith(_PREFIX_ON_NUMBER)
                                       and 1e-3 <= abs(rounded) < 1e4):
        return f"{_fixed(rounded)} {unit}".strip()
    if (unit == "s" and abs(rounded) >= 1) or (not unit and abs(rounded) < 1e-3):
        return f"{_fixed(rounded)} {unit}".strip()
    for scale, prefix in _PREFIXES:
        if abs(rounded) >= scale:
            break
    text = _mantissa(rounded / scale)
    if not unit:
        return f"{text}{prefix}"
    if unit.startswith(_PREFIX_ON_NUMBER) or unit not in _PREFIXED:
        return f"{text}{prefix} {unit}"
    return f"{text} {prefix}{unit}"


def _fixed(number):
    """A rounded number in positional notation, with thousands separators from 10,000 on."""
    if abs(number) >= 1e4:
        return f"{number:,.0f}"
    text = f"{number:.{SIGNIFICANT}g}"
    if "e" in text:
        decimals = SIGNIFICANT - 1 - math.floor(math.log10(abs(number)))
        text = f"{number:.{decimals}f}"
    return text


def number(value):
    """A number for prose at 4 significant digits, never in exponent form: 23,120, 1217, 0.0483."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    return _fixed(_round(value, SIGNIFICANT))


def cell(value, unit=""):
    """A table cell: numbers with unit and prefix at 4 significant digits, booleans as yes/no."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        value = value.item()
    if isinstance(value, (int, float)):
        return si_text(value, unit)
    return value


def plain(value):
    """A value for JSON or CSV: numpy scalars to Python, floats to 12 significant digits."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict, str)):
        try:
            value = value.item()
        except (TypeError, ValueError):
            pass
    if isinstance(value, float):
        return _round(value, JSON_SIGNIFICANT) if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class Section:
    """A titled group of rows (label, value, unit) in a sectioned record."""

    def __init__(self, title):
        self.title, self.rows = title, []

    def add(self, label, value, unit="", keep_zero=True):
        """Add a row unless its value is missing (None, empty) or, with keep_zero=False, zero."""
        if value is None or value == "" or (not keep_zero and value == 0):
            return self
        self.rows.append((label, value, unit))
        return self


#: what a cost row says when the chip spec lacks the figure (the column stays, the reason in it)
UNKNOWN_PRICE = "unknown (no price in the chip spec; --price)"
UNKNOWN_POWER = "unknown (no system power in the chip spec; --power)"


def step_sections(r, extra=None):
    """The sections answer, time, memory, layout, cost, assumptions (and speculative decoding, from the
    `extra` fields of a speculative decode) of a StepResult, as people read them: each field once,
    prefill in its own words (time to first token, prompt tokens/s), zero parts of the time left out."""
    prefill = r.phase == "prefill"
    per_chip = " per chip" if r.chips > 1 else ""
    answer = Section("answer")
    if prefill:
        answer.add("time to first token", r.time_s, "s")
        answer.add("prompt tokens/s", r.tokens_per_s, "tok/s")
        if r.batch > 1:
            answer.add("prompt tokens/s per prompt", r.tokens_per_s_per_user, "tok/s")
    else:
        answer.add("time per token (one step)", r.time_s, "s")
        if r.token_latency_s is not None and not _same(r.token_latency_s, r.time_s):
            answer.add("latency of a token through all stages", r.token_latency_s, "s")
        answer.add("tokens/s per user", r.tokens_per_s_per_user, "tok/s")
        if not _same(r.tokens_per_s, r.tokens_per_s_per_user):
            answer.add(f"tokens/s, all {r.batch} users", r.tokens_per_s, "tok/s")
    answer.add("bound by", r.bound)
    answer.add("fits in memory", r.fits)

    time = Section("time (sums to the step time)" if _adds_up(r) else "time")
    if r.stage_time_s is not None and not _same(r.stage_time_s, r.time_s):
        time.add("busiest pipeline stage, per micro-batch", r.stage_time_s, "s")
    time.add("in memory-bound operators", r.memory_time_s, "s", keep_zero=False)
    time.add("in compute-bound operators", r.compute_time_s, "s", keep_zero=False)
    time.add("fixed costs (launches, sync)", r.overhead_time_s, "s", keep_zero=False)
    time.add("link latency", r.link_latency_time_s, "s", keep_zero=False)
    time.add("link bandwidth", r.link_bandwidth_time_s, "s", keep_zero=False)

    memory = Section(f"memory{per_chip}")
    memory.add("weights", r.weight_bytes, "B")
    memory.add("KV cache", r.kv_cache_bytes, "B", keep_zero=False)
    memory.add("activations", r.activation_bytes, "B", keep_zero=False)
    memory.add("needed", r.memory_needed_bytes, "B")
    memory.add("capacity", r.capacity_bytes, "B")

    layout = Section("layout")
    if r.chips > 1:
        layout.add("chips", r.chips).add("tensor parallel (TP)", r.tp).add("pipeline stages (PP)", r.pp)
        if r.ep > 1:
            layout.add("expert parallel (EP)", r.ep)
        if r.moe_tp is not None:
            layout.add("MoE tensor parallel (MoE TP)", r.moe_tp).add("MoE expert parallel (MoE EP)", r.moe_ep)
        if r.collectives != "custom":
            layout.add("collective library", r.collectives)
        if r.pp > 1:
            layout.add("micro-batches", r.microbatches)
        layout.add("TP link", r.tp_link if r.tp > 1 else None).add("PP link", r.pp_link if r.pp > 1 else None)

    cost = Section("cost" + (f", all {r.chips} chips" if r.chips > 1 else ""))
    cost.add("per million tokens", r.usd_per_mtok if r.usd_per_mtok is not None else UNKNOWN_PRICE, "USD/Mtok")
    cost.add("energy per token", r.joules_per_token if r.joules_per_token is not None else UNKNOWN_POWER, "J/tok")
    cost.add("tokens per kWh", r.tokens_per_kwh, "tok/kWh")
    cost.add("power", r.power_w, "W")

    assumptions = Section("assumptions")
    assumptions.add("model", r.model).add("chip", r.hardware).add("mode", r.mode)
    if r.calibration_source:
        assumptions.add("calibration", r.calibration_source)
    assumptions.add("prompts" if prefill else "batch (sequences)", r.batch)
    assumptions.add("prompt tokens" if prefill else "context (cached tokens)", r.context)
    assumptions.add("dtypes", ", ".join(f"{k}={v}" for k, v in r.dtypes.items()))

    sections = [answer, time, memory, layout, cost, assumptions]
    if extra:
        sections.insert(1, _speculative_section(extra))
    return sections


def _speculative_section(extra):
    spec = Section("speculative decoding")
    spec.add("draft", extra.get("draft")).add("tokens drafted per round", extra.get("draft_tokens"))
    spec.add("acceptance", extra.get("acceptance")).add("tokens per round", extra.get("tokens_per_step"))
    spec.add("draft step", extra.get("draft_step_time_s"), "s").add("verify step", extra.get("verify_time_s"), "s")
    spec.add("round", extra.get("round_time_s"), "s")
    speedup = extra.get("speedup")
    spec.add("speed-up", None if speedup is None else f"{speedup:.3g}x")
    spec.add("tokens/s per user", extra.get("speculative_tokens_per_s_per_user"), "tok/s")
    if not _same(extra.get("speculative_tokens_per_s"), extra.get("speculative_tokens_per_s_per_user")):
        spec.add("tokens/s, all users", extra.get("speculative_tokens_per_s"), "tok/s")
    spec.add("cost per million tokens", extra.get("speculative_usd_per_mtok"), "USD/Mtok")
    spec.add("energy per token", extra.get("speculative_joules_per_token"), "J/tok")
    spec.add("memory needed", extra.get("speculative_memory_needed_bytes"), "B")
    spec.add("fits in memory", extra.get("speculative_fits"))
    return spec


def _same(a, b):
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-30)


def _parts(r):
    return (r.memory_time_s, r.compute_time_s, r.overhead_time_s, r.link_latency_time_s, r.link_bandwidth_time_s)


def _adds_up(r):
    return _same(sum(_parts(r)), r.time_s)


def sections_html(sections):
    """Sections (display.step_sections) as one HTML table, a header row per section."""
    rows = []
    for section in (s for s in sections if s.rows):
        rows.append(f"<tr><th colspan='2' style='text-align:left'>{_escape(section.title)}</th></tr>")
        rows += [f"<tr><td>{_escape(label)}</td><td style='text-align:right'>{_escape(cell(value, unit))}</td></tr>"
                 for label, value, unit in section.rows]
    return "<table>" + "".join(rows) + "</table>"


def _escape(text):
    import html
    return html.escape(str(text))
