"""A calibration carried to another chip: scale what the chips do not share, keep what they do.

A calibration (roofline.calibration) mixes two kinds of parameter:

- **Ceilings that scale with the chip**: the achieved memory bandwidth and FLOP/s per dtype. Two
  chips of one microarchitecture run the same kernels, so they reach the same *fraction* of their
  own peaks. The transfer keeps the fraction:

  .. math:: BW_t = BW_s \\, \\frac{R_t}{R_s}, \\qquad P_{t,d} = P_{s,d} \\, \\frac{R_{t,d}}{R_{s,d}}

  R is the datasheet peak, or, where both chips have a figure from the same published suite
  (hardware_specs/published/microbenchmarks.yaml: same code, same method), that figure: the ratio
  of two measured kernels carries what the datasheets miss (HBM3e streaming at 93% of its peak
  where HBM3 reaches 95%). A power-limited target cannot hold its datasheet clock under dense
  GEMMs: within one microarchitecture the sustained clock follows the TDP per SM/CU as
  f ~ (P / N)^(1/3) (dynamic power ~ f V^2 with V rising with f in the DVFS range), so

  .. math:: P_{t,d} \\le P_{s,d} \\, \\frac{N_t}{N_s} \\left(\\frac{W_t / N_t}{W_s / N_s}\\right)^{1/3}

  (N SMs or CUs, W the TDP [W]; the source's achieved rate is taken to sit at its own TDP, as a
  dense GEMM on an H100 SXM does at 700 W). A dtype of the target the source has no figure for
  (fp4 on a B200 from an H100) is not written: it takes the lowest achieved fraction of the
  written ones x its own peak (Calibration.flops_for), and the transfer says so.

- **What the architecture and its software share**, kept as they are: the knee of the smooth
  maximum (a property of the GEMM library), the fixed costs per kernel, layer, step and collective
  (launch and synchronisation paths, kernel prologues and tails), the attention share of the
  matmul rate and the vector operations that dequantize a weight. A one-hop latency fitted to the
  source's link is kept only if the target has that link.

Which chips share what is in their specs: `kind` (gpu, tpu, wafer, ...), `microarchitecture` (hopper,
cdna3, ...) and `software` (cuda, rocm, ...). A transfer needs the same kind and software stack;
across architectures of one stack (A100 -> H100) it is allowed and says so (docs/validation.md
reports how far it holds); between unrelated kinds or stacks it is refused.

A chip with no measured relative gets its calibration from published microbenchmarks of its own
(`published`: the same equations, with the suite figures of both chips and the fixed costs of the
nearest measured chip) or, where no one has published any, from an assumed efficiency (`assumed`:
the nearest measured chip's fractions of its datasheet, stated with their numbers).
"""
from dataclasses import dataclass, replace
from pathlib import Path

from . import calibration as calibration_files
from .calibration import Calibration, efficiency_of, quantity_entry, read_calibration, write_calibration
from .errors import RooflineError, SpecError
from .published import load_published
from .specs import builtin_dir, load_yaml

KEPT = ("knee", "layer_overhead", "mesh_traversal", "step_overhead", "collective_overhead", "kernel_overhead",
        "attention_efficiency", "dequant_ops")


def check_related(source, target):
    """'same' (one microarchitecture) or 'across' (one software stack); RooflineError if unrelated."""
    if source.kind != target.kind or not source.software or source.software != target.software:
        raise RooflineError(
            f"cannot transfer a calibration of {source.id} ({source.kind}, {source.software or 'no software stack'}) "
            f"to {target.id} ({target.kind}, {target.software or 'no software stack'}): a transfer needs the same "
            "kind of chip and software stack")
    return "same" if source.architecture and source.architecture == target.architecture else "across"


def _ratio(published, source, target, name, peak_source, peak_target):
    """(R_t / R_s, how): the same suite's figures where both chips have one, else the datasheet peaks."""
    if published is not None:
        fs, ft = published.figure(source.id, name), published.figure(target.id, name)
        if fs is not None and ft is not None and fs.suite == ft.suite:
            return ft.value / fs.value, f"{ft.kernel} {_si(ft.value, name)} / {_si(fs.value, name)} ({fs.suite})"
    return peak_target / peak_source, f"datasheet {_si(peak_target, name)} / {_si(peak_source, name)}"


def _gemm_factor(published, source, target):
    """(factor, how) relating the chips' GEMM efficiencies through the same suite, or (None, None).

    factor = mean over dtypes with a same-suite GEMM figure on both chips of
    (figure_t / peak_t) / (figure_s / peak_s): how much more (or less) of its datasheet the target's
    GEMM library reaches, applied to dtypes neither chip has a figure of.
    """
    if published is None:
        return None, None
    ratios, names = [], []
    for fs in published.figures:
        dtype = fs.figure[len("gemm_"):]
        ft = published.figure(target.id, fs.figure)
        if (fs.chip == source.id and fs.figure.startswith("gemm_") and ft is not None and ft.suite == fs.suite
                and dtype in source.peak_flops and dtype in target.peak_flops):
            ratios.append((ft.value / target.peak_flops[dtype]) / (fs.value / source.peak_flops[dtype]))
            names.append(f"{dtype} GEMM at {100 * ft.value / target.peak_flops[dtype]:.1f}% of its peak against "
                         f"{100 * fs.value / source.peak_flops[dtype]:.1f}% ({fs.suite})")
    if not ratios:
        return None, None
    return sum(ratios) / len(ratios), "; ".join(names)


def _si(value, name):
    return f"{value / 1e12:.4g} {'TB/s' if name == 'read_bandwidth' else 'TFLOP/s'}"


def _power_limit(source, target):
    """N_t/N_s x ((W_t/N_t)/(W_s/N_s))^(1/3), or None where a spec lacks SMs/CUs or TDP."""
    if not (source.compute_units and target.compute_units and source.power and target.power):
        return None
    per_unit = (target.power / target.compute_units) / (source.power / source.compute_units)
    return target.compute_units / source.compute_units * per_unit ** (1 / 3)


def derive(calibration, source, target, published=None, relation="same"):
    """The target's ceilings and kept parameters: ({parameter: value}, {parameter: how derived}).

    Pure arithmetic on the two specs, the source calibration and the published figures (module
    docstring); `relation` 'same' allows the power limit, which holds within one microarchitecture.
    """
    values, how = {}, {}
    ratio, why = _ratio(published, source, target, "read_bandwidth", source.mem_bandwidth, target.mem_bandwidth)
    values["bandwidth"] = calibration.bandwidth * ratio
    how["bandwidth"] = f"{source.id}'s {calibration.bandwidth / 1e12:.4g} TB/s x {why}"
    if values["bandwidth"] > target.mem_bandwidth:      # never above the datasheet: ideal stays a bound
        values["bandwidth"] = target.mem_bandwidth
        how["bandwidth"] += ", capped at the datasheet peak"
    power = _power_limit(source, target) if relation == "same" else None
    gemm, gemm_why = _gemm_factor(published, source, target)
    flops, dropped = {}, []
    for dtype, rate in calibration.flops.items():
        if dtype not in target.peak_flops or dtype not in source.peak_flops:
            dropped.append(dtype)
            continue
        ratio, why = _ratio(published, source, target, f"gemm_{dtype}", source.peak_flops[dtype],
                            target.peak_flops[dtype])
        if why.startswith("datasheet") and gemm is not None:
            ratio *= gemm
            why += f" x {gemm:.4f} ({gemm_why})"
        flops[dtype] = rate * ratio
        how[f"flops:{dtype}"] = f"{source.id}'s {rate / 1e12:.4g} TFLOP/s x {why}"
        if flops[dtype] > target.peak_flops[dtype]:
            flops[dtype] = target.peak_flops[dtype]
            how[f"flops:{dtype}"] += ", capped at the datasheet peak"
        if power is not None and rate * power < flops[dtype]:
            flops[dtype] = rate * power
            how[f"flops:{dtype}"] = (f"{source.id}'s {rate / 1e12:.4g} TFLOP/s x {power:.3f} (power limit: "
                                     f"{target.compute_units}/{source.compute_units} units x (TDP per unit "
                                     f"{target.power / target.compute_units:.3g} / "
                                     f"{source.power / source.compute_units:.3g} W)^(1/3))")
    if not flops:
        fraction = efficiency_of(calibration.flops, source.peak_flops)
        matrix = [d for d in target.peak_flops if d != "fp32"] or list(target.peak_flops)
        for dtype in matrix:
            flops[dtype] = fraction * target.peak_flops[dtype]
            how[f"flops:{dtype}"] = (f"{fraction:.3f} of the datasheet: {source.id} calibrated none of "
                                     f"{target.id}'s dtypes; its lowest achieved fraction ({', '.join(calibration.flops)})")
    for dtype, peak in target.peak_flops.items():
        twin = next((d for d in list(flops) if target.peak_flops[d] == peak and d != dtype), None)
        if dtype not in flops and dtype != "fp32" and twin is not None:
            flops[dtype] = flops[twin]
            how[f"flops:{dtype}"] = f"as {twin} (the same datasheet peak, the same tensor-core path)"
    values["flops"] = flops
    lowest = efficiency_of(flops, target.peak_flops)
    others = [d for d in target.peak_flops if d not in flops and d != "fp32"]
    if others:
        how["other dtypes"] = (f"{', '.join(others)}: not calibrated on {source.id}; {lowest:.3f} of the "
                               "datasheet peak (the lowest achieved fraction of the dtypes above)")
    if dropped:
        how["dropped"] = f"{', '.join(dropped)}: {target.id} has no such peak"
    for name in KEPT:
        values[name] = getattr(calibration, name)
        how[name] = f"kept from {source.id}"
    if not values["mesh_traversal"]:
        del how["mesh_traversal"]                  # not a wafer's calibration: nothing to carry
    elif target.kind != "wafer":
        values["mesh_traversal"] = 0.0
        how["mesh_traversal"] = f"{source.id}'s mesh crossings dropped: {target.id} is not a wafer (roofline.wafer)"
    shared = {cl.link.id for cl in source.links} & {cl.link.id for cl in target.links}
    if calibration.link_latency is not None and shared:
        values["link_latency"] = calibration.link_latency
        how["link_latency"] = f"kept from {source.id} (same link: {', '.join(sorted(shared))})"
    elif calibration.link_latency is not None:
        how["link_latency"] = f"{source.id}'s fitted hop latency dropped: {target.id} has other links"
    return values, how


def _origin_note(origin, source, target, values):
    if origin == "assumed efficiency":
        origin = (f"assumed efficiency (nothing measured or published on {target.id}: the measured {source.id}'s "
                  "fractions of its datasheet)")
    parts = [f"{origin}: bandwidth {values['bandwidth'] / 1e12:.4g} TB/s "
             f"({100 * values['bandwidth'] / target.mem_bandwidth:.1f}% of the datasheet)"]
    parts += [f"{d} {r / 1e12:.4g} TFLOP/s ({100 * r / target.peak_flops[d]:.1f}%)" for d, r in values["flops"].items()]
    return "; ".join(parts) + f"; fixed costs, knee and attention share of {source.id}"


def transferred(calibration, source_chip, target_chip, published=None):
    """transfer() with the derivation of each parameter (a Transferred)."""
    relation = check_related(source_chip, target_chip)
    published = load_published() if published is None else published
    values, how = derive(calibration, source_chip, target_chip, published, relation)
    origin = f"transferred from {source_chip.id}"
    if relation == "across":
        how["architecture"] = (f"across architectures ({source_chip.architecture} -> {target_chip.architecture}, "
                               f"both {target_chip.software}): the achieved fractions are assumed to carry over")
    return _transferred(values, how, origin, calibration, source_chip, target_chip)


def transfer(calibration, source_chip, target_chip, published=None):
    """The Calibration of `target_chip` carried from `calibration` of `source_chip` (module docstring).

    Same kind and software stack required (RooflineError otherwise, one line); published figures
    of the same suite refine the ratios (default: the shipped file). Its `origin` says
    'transferred from <source>', its `note` the numbers.
    """
    return transferred(calibration, source_chip, target_chip, published).calibration


def with_calibration(hardware, calibration):
    """`hardware` with `calibration` (a Calibration, an id or a file) in place; another chip's
    calibration is transferred to it (transfer(), same kind and software stack) and its note says
    so; None leaves the chip's default, or, for a chip without one, transfers a measured sibling's
    (with_sibling_calibration)."""
    if calibration is None:
        return hardware if hardware.calibration is not None else with_sibling_calibration(hardware)
    if isinstance(calibration, Calibration):
        chip, path = calibration.hardware, calibration.path
    else:
        path = calibration_files.calibration_path(calibration)
        chip = load_yaml(path).get("hardware")
    if not isinstance(chip, str) or not chip or chip == hardware.id:
        return calibration_files.with_calibration(hardware, calibration)
    from .hardware import load_hardware
    try:
        source = load_hardware(chip)
    except RooflineError:
        raise SpecError(path or "calibration", f"hardware: '{chip}' is not a known chip to transfer from") from None
    start = calibration if isinstance(calibration, Calibration) else read_calibration(path, source)
    moved = transfer(start, source, hardware)
    numbers = moved.note.split(": ", 1)[-1]
    return replace(hardware, calibration=replace(
        moved, note=f"calibration of {chip} transferred to {hardware.id}: {numbers}"))


def with_sibling_calibration(hardware):
    """`hardware` (a chip with no calibration of its own, e.g. a user's new spec) with the fitted
    calibration of a chip of the same kind, microarchitecture and software stack transferred to
    it, its note saying so; unchanged where no such sibling is calibrated."""
    from .hardware import load_hardware
    from .specs import spec_paths
    if not (hardware.architecture and hardware.software):
        return hardware
    for chip, path in sorted(spec_paths("calibration").items()):
        if chip == hardware.id or load_yaml(path).get("origin", "fitted") != "fitted":
            continue
        try:
            source = load_hardware(chip)
        except RooflineError:
            continue
        if (source.kind, source.architecture, source.software) == (hardware.kind, hardware.architecture,
                                                                     hardware.software):
            moved = transfer(source.calibration, source, hardware)
            numbers = moved.note.split(": ", 1)[-1]
            return replace(hardware, calibration=replace(
                moved, note=f"{hardware.id} has no calibration of its own: the measured {chip}'s "
                            f"({hardware.architecture}, {hardware.software}) transferred: {numbers}"))
    return hardware


def from_published(calibration, source_chip, target_chip, published):
    """The Calibration of `target_chip` from its published figures, related to the measured
    `source_chip` through the same suite; fixed costs from `source_chip`. RooflineError if the
    target has no published figure of the suite the source has."""
    own = [f for f in published.figures if f.chip == target_chip.id
           and published.figure(source_chip.id, f.figure) is not None]
    if not own:
        raise RooflineError(f"no published figure of {target_chip.id} shares a suite with {source_chip.id} "
                            f"in {published.path}")
    values, how = derive(calibration, source_chip, target_chip, published, relation="published")
    how["fixed costs"] = (f"per layer, step, kernel and collective, knee and attention share: the measured "
                          f"{source_chip.id}'s (nothing published measures them on {target_chip.id})")
    return _transferred(values, how, "published", calibration, source_chip, target_chip, own)


def assumed(calibration, source_chip, target_chip):
    """The Calibration of `target_chip` on an assumed efficiency: `source_chip`'s achieved
    fractions of its datasheet applied to the target's datasheet, fixed costs kept."""
    values, how = derive(calibration, source_chip, target_chip, None, relation="assumed")
    how["assumption"] = (f"nothing measured or published on {target_chip.id}: the achieved fractions of "
                         f"the measured {source_chip.id} are assumed")
    return _transferred(values, how, "assumed efficiency", calibration, source_chip, target_chip)


@dataclass(frozen=True)
class Transferred:
    """A derived Calibration with what a file of it records: each parameter's derivation, the
    calibration it started from (repo-relative) and the published figures it used."""
    calibration: Calibration
    derivation: dict
    basis: str
    figures: tuple = ()


def _transferred(values, how, origin, calibration, source, target, figures=()):
    note = _origin_note(origin, source, target, values)
    derived = Calibration(
        bandwidth=values["bandwidth"], flops=values["flops"], link_latency=values.get("link_latency"),
        efficiency=efficiency_of(values["flops"], target.peak_flops), hardware=target.id,
        device=f"{target.name} (not measured)", origin=origin, note=note,
        source=f"{origin} ({calibration.source})", **{k: values[k] for k in KEPT})
    if not calibration.path:
        basis = f"{source.id} calibration (in memory)"
    elif Path(calibration.path).resolve().parent == builtin_dir("calibration").resolve():
        basis = f"hardware_specs/calibrations/{Path(calibration.path).name}"
    else:
        basis = Path(calibration.path).name      # a user's file: its name, never this machine's path
    return Transferred(derived, how, basis, tuple(figures))


def document(result, source, target, date=None):
    """(mapping, comment) of a calibration file for a Transferred."""
    calibration, how = result.calibration, result.derivation
    doc = {"hardware": target.id, "device": calibration.device, "origin": calibration.origin}
    if date:
        doc["date"] = str(date)
    doc["bandwidth"] = quantity_entry(calibration.bandwidth, "B/s", "transfer", derived=how["bandwidth"],
                                      note=f"{100 * calibration.bandwidth / target.mem_bandwidth:.1f}% of the datasheet")
    doc["flops"] = {d: quantity_entry(r, "FLOP/s", "transfer", derived=how[f"flops:{d}"],
                                      note=f"{100 * r / target.peak_flops[d]:.1f}% of the datasheet")
                    for d, r in calibration.flops.items()}
    for name in KEPT:
        value = getattr(calibration, name)
        if (name == "knee" and value == float("inf")) or (name == "mesh_traversal" and not value):
            continue
        unit = None if name in ("knee", "attention_efficiency", "dequant_ops") else "s"
        doc[name] = quantity_entry(value, unit, "transfer", note=f"kept from {source.id}")
    if calibration.link_latency is not None:
        doc["link_latency"] = quantity_entry(calibration.link_latency, "s", "transfer",
                                             note=f"kept from {source.id}")
    doc["transfer"] = {"from": source.id, "calibration": result.basis,
                       "relation": f"{source.architecture} -> {target.architecture} ({target.software})"
                       if source.software == target.software else
                       f"{source.software} -> {target.software}: through published figures only",
                       "derivation": dict(how),
                       "note": calibration.note}
    if result.figures:
        doc["transfer"]["published"] = [f"{f.chip} {f.figure} {_si(f.value, f.figure)} ({f.kernel}; {f.source}; {f.date})"
                                        for f in result.figures]
    doc["sources"] = {"transfer": f"roofline calibrate transfer --from {source.id} --to {target.id} "
                                  f"(roofline/transfer.py) from {result.basis}"}
    comment = (f"Calibration of {target.id} ({target.name}), {calibration.origin}, written by roofline "
               f"calibrate transfer.\nFormat: docs/spec-format.md, 'Calibration'. Derivations under 'transfer'.")
    return doc, comment


def write_transferred(result, source, target, path, force=False, date=None):
    """Write a Transferred to `path`, checked by reading it back (nothing written on error)."""
    doc, comment = document(result, source, target, date)
    return write_calibration(path, doc, comment, target, force=force)


def derived_for(plan, source, target, published):
    """The Transferred a Plan gives `target` from `source` (a chip with its calibration in place)."""
    if source.calibration is None:
        raise RooflineError(f"{plan.chip}: its plan leans on {source.id}, which has no calibration")
    if plan.method == "transfer":
        return transferred(source.calibration, source, target, published)
    if plan.method == "published":
        return from_published(source.calibration, source, target, published)
    return assumed(source.calibration, source, target)


def regenerate(directory, published=None, force=True):
    """Write the calibration of every chip in the published file's plans to `directory` [(chip, path)].

    A chip planned from another planned chip (MI325X from MI300X) comes after it and starts from
    the file just written. The source calibration's date is the file's date.
    """
    from .hardware import load_hardware
    published = load_published() if published is None else published
    written, done = [], {}
    pending = list(published.plans.values())
    while pending:
        ready = [p for p in pending if p.source_chip in done or p.source_chip not in published.plans]
        if not ready:
            raise RooflineError(f"calibration plans form a cycle: {', '.join(p.chip for p in pending)}")
        for plan in ready:
            existing = Path(directory) / f"{plan.chip}.yaml"
            if existing.is_file() and load_yaml(existing).get("origin", "fitted") == "fitted":
                raise RooflineError(f"{existing} is a fitted calibration; a plan never replaces a fit")
            source = load_hardware(plan.source_chip)
            if plan.source_chip in done:
                # the file just written, named as the shipped file the set becomes
                fresh = read_calibration(done[plan.source_chip], source)
                shipped = builtin_dir("calibration") / Path(done[plan.source_chip]).name
                source = replace(source, calibration=replace(fresh, path=str(shipped)))
            target = load_hardware(plan.chip)
            result = derived_for(plan, source, target, published)
            date = load_yaml(source.calibration.path).get("date") if source.calibration.path else None
            path = write_transferred(result, source, target, Path(directory) / f"{target.id}.yaml", force, date)
            done[plan.chip] = path
            written.append((target.id, path))
        pending = [p for p in pending if p not in ready]
    return written
