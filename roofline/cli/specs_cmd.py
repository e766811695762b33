"""`roofline list`, `roofline show`: what specs there are and what follows from them.

Tables print quantities with decimal SI prefixes (units.format_si); JSON and CSV carry the plain
SI magnitudes (bytes, B/s, FLOP/s, s).
"""
from pathlib import Path

import click

from .. import dtypes
from ..errors import RooflineError
from ..hardware import load_hardware, load_link
from ..memory import kv_bytes_per_token, weight_bytes
from ..models import load_model, with_dtypes
from ..operators import flops_per_token
from ..params import count_params
from ..specs import find_any, spec_paths
from ..step import critical_batch, ridge_point
from ..units import format_si
from . import cli
from .output import emit_record, emit_table, format_option

SHOW_DTYPES = ("bf16", "fp8", "int8", "int4", "mxfp4")


def count_text(n):
    """A parameter count as people write it: 8.03B, 1.03T, 560M."""
    if n is None:
        return ""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if abs(n) >= scale * 0.9995:
            return f"{n / scale:.4g}{suffix}"
    return f"{n:.4g}"


def _readable(kind, load):
    """Each spec of `kind` loaded with `load`; a file that cannot be read is skipped with a warning on
    standard error naming the file and why, so one broken user spec does not hide the others."""
    for spec_id in spec_paths(kind):
        try:
            yield load(spec_id)
        except RooflineError as exc:
            click.echo(f"warning: skipped {spec_id}: {str(exc).replace(chr(10), ' ')[:300]}", err=True)


@cli.command("list")
@click.argument("kind", type=click.Choice(["hardware", "chips", "models", "links"]))
@format_option
def list_specs(kind, fmt):
    """List the chips (`hardware` or `chips`), models or links roofline knows (shipped and user specs)."""
    kind = "hardware" if kind == "chips" else kind
    table = fmt in ("table", "markdown")
    if kind == "models":
        headers = ["id", "name", "params", "active", "layers", "attention", "max_context"]
        rows = []
        for m in _readable("model", load_model):
            attention = m.attention.kind + (" + window" if m.attention.sliding_window else "") \
                + (" + sparse" if m.attention.sparse else "")
            active = m.params_active or m.params_total
            rows.append([m.id, m.name, count_text(m.params_total) if table else m.params_total,
                         count_text(active) if table else active, m.num_layers, attention, m.max_context])
    elif kind == "hardware":
        headers = ["id", "name", "memory_bytes", "bandwidth_bytes_per_s", "bf16_flops_per_s", "memory_tier"]
        rows = []
        for h in _readable("hardware", load_hardware):
            peak = h.peak_flops.get("bf16", h.peak_flops.get("fp16"))
            rows.append([h.id, h.name, h.mem_capacity, h.mem_bandwidth, peak, h.main_memory.tier])
        if table:
            headers = ["id", "name", "memory", "bandwidth", "bf16/fp16 peak", "tier"]
            rows = [[r[0], r[1], format_si(r[2], "B"), format_si(r[3], "B/s"),
                     "" if r[4] is None else format_si(r[4], "FLOP/s"), r[5]] for r in rows]
    else:
        headers = ["id", "name", "kind", "bandwidth_bytes_per_s", "latency_s", "latency_source"]
        rows = []
        for link in _readable("link", load_link):
            rows.append([link.id, link.name, link.kind, link.bandwidth, link.latency,
                         "assumption" if link.latency_is_assumption else "sourced"])
        if table:
            headers = ["id", "name", "kind", "bandwidth/dir", "latency", "latency source"]
            rows = [[r[0], r[1], r[2], format_si(r[3], "B/s"), format_si(r[4], "s"), r[5]] for r in rows]
    emit_table(rows, headers, fmt)


@cli.command("show")
@click.argument("spec_id")
@format_option(extra=("yaml",), help_text="Output format: table, json, csv, markdown, or yaml: the spec file itself, "
                                          "to save and edit as a chip or model of your own.")
def show(spec_id, fmt):
    """Show a model, chip or link spec (id or .yaml file) with its sources and derived figures.

    `roofline show h100-sxm --format yaml > mychip.yaml` writes a file that loads back as it is
    (pass it as --chip mychip.yaml); edit its numbers for a chip of your own.
    """
    kind, path = find_any(spec_id)
    if fmt == "yaml":
        (load_model if kind == "model" else load_hardware if kind == "hardware" else load_link)(str(path))  # valid
        click.echo(Path(path).read_text(encoding="utf-8"), nl=False)
        return
    if kind == "model":
        _show_model(load_model(str(path)), fmt)
    elif kind == "hardware":
        _show_hardware(load_hardware(str(path)), fmt)
    else:
        link = load_link(str(path))
        _emit_facts(link, [("id", link.id), ("name", link.name), ("kind", link.kind)], {}, fmt)


def _emit_facts(spec, head, derived, fmt):
    """`derived` maps a name to (SI value, unit for the table; "count" for parameter counts)."""
    facts = [{"field": f.field, "value": f.value, "as_written": f.text, "source": f.source_key,
              "derived": f.derived, "note": f.note} for f in spec.facts]
    if fmt == "json":
        emit_record([], fmt, data={**dict(head), "derived": {k: v for k, (v, _) in derived.items()},
                                   "facts": facts, "sources": spec.sources})
        return
    if fmt == "csv":
        emit_record(head + [(k, v) for k, (v, _) in derived.items()], fmt)
        return
    emit_record(head + [(k, _with_unit(v, unit)) for k, (v, unit) in derived.items()], fmt)
    click.echo()
    emit_table([[f["field"], f["as_written"], f["source"], f["derived"] or f["note"] or ""] for f in facts],
               ["field", "as written", "source", "derived / note"], fmt)
    click.echo()
    emit_table([[k, v] for k, v in spec.sources.items()], ["source", "reference"], fmt)


def _with_unit(value, unit):
    if value is None:
        return ""
    if unit == "count":
        return count_text(value)
    return format_si(value, unit) if unit else f"{value:.4g}"


def _show_model(model, fmt):
    counts = count_params(model)
    derived = {
        "params_computed": (counts.total, "count"), "params_stated": (model.params_total, "count"),
        "active_params_computed": (counts.active, "count"), "active_params_stated": (model.params_active, "count"),
        "mtp_params": (counts.mtp, "count"),
        "kv_bytes_per_token": (kv_bytes_per_token(model), "B/token"),
        "flops_per_token_at_context_0": (flops_per_token(model, 0), "FLOP/token"),
        "flops_per_token_at_max_context": (flops_per_token(model, model.max_context), "FLOP/token"),
    }
    for dtype in SHOW_DTYPES:
        derived[f"weight_bytes_{dtype}"] = (weight_bytes(with_dtypes(model, weights=dtype)), "B")
    derived["weight_bytes_native"] = (weight_bytes(model), "B")
    head = [("id", model.id), ("name", model.name), ("architecture", model.architecture),
            ("layers", model.num_layers), ("attention", model.attention.kind),
            ("moe", "yes" if model.moe else "no"), ("dtypes", ", ".join(f"{k}={v}" for k, v in model.dtypes.items()))]
    _emit_facts(model, head, derived, fmt)


def _show_hardware(hw, fmt):
    derived = {}
    for dtype, peak in hw.peak_flops.items():
        derived[f"ridge_point_{dtype}_flop_per_byte"] = (ridge_point(peak, hw.mem_bandwidth), "")
        if dtype in dtypes.DTYPES:
            derived[f"critical_batch_{dtype}"] = (critical_batch(peak, hw.mem_bandwidth,
                                                                 dtypes.bytes_per_value(dtype)), "")
    head = [("id", hw.id), ("name", hw.name), ("vendor", hw.vendor), ("kind", hw.kind),
            ("weights_in", f"{hw.main_memory.name} ({hw.main_memory.tier})"),
            ("links", ", ".join(f"{cl.link.id} ({cl.role})" for cl in hw.links) or "none"),
            ("calibration", hw.calibration.source if hw.calibration else "none")]
    _emit_facts(hw, head, derived, fmt)
