"""The serving rows' own noise floor: configurations the CSV lists more than once, and how far apart.

A serving CSV row names its configuration by its columns (engine, model, system, precision, mode,
ISL, OSL, layouts, the client concurrency in `silicon_data_source`); `id`, the measured TTFT and
TPOT and the provenance are not part of it. Rows with the same configuration are repeats as far
as any model reading the CSV can tell: it must give them one prediction. So no model beats

.. math:: e_{floor} = \\operatorname{median}_{rows} \\left| \\frac{\\hat p_g}{m_i} - 1 \\right|,
          \\qquad \\hat p_g = \\arg\\min_p \\sum_{i \\in g} \\left| \\frac{p}{m_i} - 1 \\right|

over all rows i (group g of row i): the best single value of each group is the median of its
measurements weighted by 1 / m_i (the objective is piecewise linear in p with slopes
sum ±1/m_i), and a configuration measured once costs nothing.

Where two measurements of one configuration differ by 2x the spread is not run-to-run noise:
the InferenceX dumps (source_file=YYYY-MM-DD.csv) hold, under one set of CSV columns, runs with
and without multi-token prediction and with tensor- or data-parallel attention in the decode
workers (docs/serving.md, "Where the model breaks").
"""
import math
import re
import statistics

#: columns that are a row's measurement or provenance, not its configuration
NOT_CONFIGURATION = ("id", "silicon_ttft_ms", "silicon_tpot_ms", "silicon_data_source")


def _canonical(text):
    """A cell as its number where it is one ('16', '16.0' -> '16'; source files differ), else stripped."""
    text = (text or "").strip()
    try:
        value = float(text)
    except ValueError:
        return text
    return repr(int(value)) if value.is_integer() else repr(value)


def configuration(row):
    """The key of a row's configuration: every column but the measurement and the provenance
    (numbers compared as numbers), and the client concurrency the provenance records
    (silicon_concurrency=N)."""
    found = re.search(r"silicon_concurrency=(\d+)", row.get("silicon_data_source") or "")
    columns = tuple((k, _canonical(v)) for k, v in sorted(row.items()) if k not in NOT_CONFIGURATION)
    return columns + (("concurrency", found.group(1) if found else ""),)


def distinct(values, tolerance=1e-3):
    """The distinct values of `values`, those within `tolerance` (relative) of the last kept one
    counted once: one run copied into two source files can differ in its last digits."""
    kept = []
    for value in sorted(values):
        if not kept or value > kept[-1] * (1 + tolerance):
            kept.append(value)
    return kept


def best_single_value(values):
    """The p minimising sum |p / m_i - 1| [same unit as m]: the median of the m_i weighted by 1 / m_i."""
    ordered = sorted(values)
    weights = [1 / m for m in ordered]
    half, running = sum(weights) / 2, 0.0
    for value, weight in zip(ordered, weights):
        running += weight
        if running >= half:
            return value
    return ordered[-1]


def noise_floor(rows, key=lambda row: row.get("mode") or "agg"):
    """The repeats of `rows` (serving CSV dicts) by group `key` (default: mode).

    Per group: rows; configurations measured more than once (`repeated`) and their rows
    (`repeated_rows`); those whose repeats differ (`differing`); the largest max/min ratio of TTFT
    and of TPOT within one configuration; and the median absolute relative error a perfect model,
    one value per configuration, would get against all the group's rows (`ttft_floor`,
    `tpot_floor`; their means `*_floor_mean`) [1], and the median max/min ratio over the
    configurations whose repeats differ (`*_ratio_differing`) [1].
    """
    configs = {}
    for row in rows:
        try:
            ttft, tpot = float(row["silicon_ttft_ms"]), float(row["silicon_tpot_ms"])
        except (KeyError, TypeError, ValueError):
            continue
        if ttft > 0 and tpot > 0 and math.isfinite(ttft) and math.isfinite(tpot):
            configs.setdefault(configuration(row), []).append((key(row), ttft, tpot))
    groups = {}
    for measured in configs.values():
        for name, _, _ in measured:
            groups.setdefault(name, []).append(measured)
    out = {}
    for name, members in sorted(groups.items(), key=lambda kv: str(kv[0])):
        unique = {id(m): m for m in members}.values()
        errors = {"ttft": [], "tpot": []}
        split = {"ttft": [], "tpot": []}
        spread = {"ttft": 1.0, "tpot": 1.0}
        repeated = differing = repeated_rows = 0
        for measured in unique:
            for column, index in (("ttft", 1), ("tpot", 2)):
                values = [m[index] for m in measured]
                best = best_single_value(values)
                errors[column] += [abs(best / v - 1) for v in values]
                if len(distinct(values)) > 1:
                    split[column].append(max(values) / min(values))
                spread[column] = max(spread[column], max(values) / min(values))
            if len(measured) > 1:
                repeated += 1
                repeated_rows += len(measured)
                differing += len(distinct([m[1] for m in measured])) > 1 or len(distinct([m[2] for m in measured])) > 1
        out[str(name)] = {"rows": len(errors["ttft"]), "configurations": len(unique), "repeated": repeated,
                          "repeated_rows": repeated_rows, "differing": differing,
                          "ttft_spread": spread["ttft"], "tpot_spread": spread["tpot"],
                          "ttft_floor": statistics.median(errors["ttft"]),
                          "tpot_floor": statistics.median(errors["tpot"]),
                          "ttft_floor_mean": statistics.fmean(errors["ttft"]),
                          "tpot_floor_mean": statistics.fmean(errors["tpot"]),
                          "ttft_ratio_differing": statistics.median(split["ttft"]) if split["ttft"] else 1.0,
                          "tpot_ratio_differing": statistics.median(split["tpot"]) if split["tpot"] else 1.0}
    return out
