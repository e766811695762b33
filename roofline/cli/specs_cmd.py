"""`roofline list`, `roofline show`: what specs there are and what follows from them."""
import click

from .. import dtypes
from ..errors import RooflineError
from ..hardware import load_hardware
from ..memory import kv_bytes_per_token, weight_bytes
from ..models import load_model, with_dtypes
from ..operators import flops_per_token
from ..params import count_params
from ..specs import spec_paths
from ..step import critical_batch, ridge_point
from . import cli
from .output import emit_record, emit_table, format_option

SHOW_DTYPES = ("bf16", "fp8", "int8", "int4", "mxfp4")


@cli.command("list")
@click.argument("kind", type=click.Choice(["hardware", "models", "links"]))
@format_option
def list_specs(kind, fmt):
    """List the chips, models or links roofline knows (shipped and user specs)."""
    if kind == "models":
        headers = ["id", "name", "params", "active", "layers", "attention", "max_context"]
        rows = []
        for spec_id in spec_paths("model"):
            m = load_model(spec_id)
            attention = m.attention.kind + (" + window" if m.attention.sliding_window else "") \
                + (" + sparse" if m.attention.sparse else "")
            rows.append([m.id, m.name, m.params_total, m.params_active or m.params_total, m.num_layers,
                         attention, m.max_context])
        emit_table([[r[0], r[1], _billions(r[2]), _billions(r[3]), *r[4:]] if fmt == "table" else r
                    for r in rows], headers, fmt)
    elif kind == "hardware":
        from ..hardware import load_hardware as load
        headers = ["id", "name", "memory_bytes", "bandwidth_bytes_per_s", "bf16_flops_per_s", "memory_tier"]
        rows = []
        for spec_id in spec_paths("hardware"):
            h = load(spec_id)
            rows.append([h.id, h.name, h.mem_capacity, h.mem_bandwidth,
                         h.peak_flops.get("bf16", h.peak_flops.get("fp16")), h.main_memory.tier])
        if fmt == "table":
            headers = ["id", "name", "memory", "bandwidth", "bf16/fp16 peak", "tier"]
            rows = [[r[0], r[1], f"{r[2] / 1e9:.4g} GB", f"{r[3] / 1e12:.4g} TB/s",
                     "" if r[4] is None else f"{r[4] / 1e12:.4g} TFLOP/s", r[5]] for r in rows]
        emit_table(rows, headers, fmt)
    else:
        from ..hardware import load_link
        rows = []
        for spec_id in spec_paths("link"):
            link = load_link(spec_id)
            rows.append([link.id, link.name, link.kind, link.bandwidth, link.latency,
                         "assumption" if link.latency_is_assumption else "sourced"])
        headers = ["id", "name", "kind", "bandwidth_bytes_per_s", "latency_s", "latency_source"]
        if fmt == "table":
            headers = ["id", "name", "kind", "bandwidth/dir", "latency", "latency source"]
            rows = [[r[0], r[1], r[2], f"{r[3] / 1e9:.4g} GB/s", f"{r[4] * 1e6:.3g} us", r[5]] for r in rows]
        emit_table(rows, headers, fmt)


def _billions(n):
    return f"{n / 1e9:.4g}B"


@cli.command("show")
@click.argument("spec_id")
@format_option
def show(spec_id, fmt):
    """Show a model or chip spec with its sources and derived figures."""
    if spec_id in spec_paths("model") or spec_id.endswith((".yaml", ".yml")) and "model" in spec_id:
        _show_model(load_model(spec_id), fmt)
    elif spec_id in spec_paths("hardware") or spec_id.endswith((".yaml", ".yml")):
        _show_hardware(load_hardware(spec_id), fmt)
    elif spec_id in spec_paths("link"):
        from ..hardware import load_link
        link = load_link(spec_id)
        _emit_facts(link, [("id", link.id), ("name", link.name), ("kind", link.kind)], {}, fmt)
    else:
        load_model(spec_id)  # raises the unknown-id error with the nearest ids


def _emit_facts(spec, head, derived, fmt):
    facts = [{"field": f.field, "value": f.value, "as_written": f.text, "source": f.source_key,
              "derived": f.derived, "note": f.note} for f in spec.facts]
    if fmt == "json":
        emit_record([], fmt, data={**dict(head), "derived": derived, "facts": facts,
                                   "sources": spec.sources})
        return
    emit_record(head + list(derived.items()), fmt)
    if fmt == "table":
        click.echo()
        emit_table([[f["field"], f["as_written"], f["source"], f["derived"] or f["note"] or ""] for f in facts],
                   ["field", "as written", "source", "derived / note"], fmt)
        click.echo()
        emit_table([[k, v] for k, v in spec.sources.items()], ["source", "reference"], fmt)


def _show_model(model, fmt):
    counts = count_params(model)
    derived = {
        "params_computed": counts.total, "params_stated": model.params_total,
        "active_params_computed": counts.active, "active_params_stated": model.params_active,
        "mtp_params": counts.mtp,
        "kv_bytes_per_token": kv_bytes_per_token(model),
        "flops_per_token_at_context_0": flops_per_token(model, 0),
        "flops_per_token_at_max_context": flops_per_token(model, model.max_context),
    }
    for dtype in SHOW_DTYPES:
        derived[f"weight_bytes_{dtype}"] = weight_bytes(with_dtypes(model, weights=dtype))
    derived[f"weight_bytes_native"] = weight_bytes(model)
    head = [("id", model.id), ("name", model.name), ("architecture", model.architecture),
            ("layers", model.num_layers), ("attention", model.attention.kind),
            ("moe", "yes" if model.moe else "no"), ("dtypes", ", ".join(f"{k}={v}" for k, v in model.dtypes.items()))]
    _emit_facts(model, head, derived, fmt)


def _show_hardware(hw, fmt):
    derived = {}
    for dtype, peak in hw.peak_flops.items():
        derived[f"ridge_point_{dtype}_flop_per_byte"] = ridge_point(peak, hw.mem_bandwidth)
        if dtype in dtypes.DTYPES:
            derived[f"critical_batch_{dtype}"] = critical_batch(peak, hw.mem_bandwidth, dtypes.bytes_per_value(dtype))
    head = [("id", hw.id), ("name", hw.name), ("vendor", hw.vendor), ("kind", hw.kind),
            ("weights_in", f"{hw.main_memory.name} ({hw.main_memory.tier})"),
            ("links", ", ".join(f"{cl.link.id} ({cl.role})" for cl in hw.links) or "none"),
            ("calibration", hw.calibration.source if hw.calibration else "none")]
    _emit_facts(hw, head, derived, fmt)


