"""Where a step time comes from: its formula in symbols (sympy) and with the numbers substituted.

The symbolic form is not a second copy of the model: it is what the one step-time path
(roofline.deployment.ForwardPass.evaluate, which api.decode uses) returns when batch, context,
bandwidth, peaks, layer counts, fixed costs and bytes per value are sympy symbols, on the same
scenario (model, chip, layout, mode). Substituting the numbers gives api.decode(...).time_s
(tests/test_explain.py), on one chip or several.

.. math:: t_{step} = \\sum_{op} n_{op} \\, \\mathrm{smax}_n\\!\\left(\\frac{F_{op}}{P_{dtype}},
          \\frac{Q_{op}}{BW}\\right) + L \\, t_{layer} + t_0

with :math:`\\mathrm{smax}_n(a, b) = (a^n + b^n)^{1/n}` in calibrated mode and the hard max in
ideal mode (n = infinity). Roofline model: Williams, Waterman & Patterson, CACM 52(4), 2009.

sympy is imported here, and this module is imported only by `roofline explain`.
"""
from dataclasses import dataclass, field, replace

import sympy

from . import calibration_params
from .api import step_result
from .deployment import forward_pass
from .dtypes import SizedDtype, bytes_per_value
from .hardware import Hardware, MemoryTier
from .models import Model
from .parallel import Layout
from .results import Record
from .scenario import build
from .step import Ceilings

#: every symbol explain uses: meaning and unit (the glossary printed with the formula)
GLOSSARY = {
    "t_step": ("time of one decode step (prefill: of the whole forward pass)", "s"),
    "B": ("batch: sequences decoded (or prompts prefilled) together", "sequences"),
    "C": ("context: tokens already in each sequence's KV cache", "tokens"),
    "T": ("prompt length of a prefill", "tokens"),
    "F_op": ("FLOPs of one occurrence of an operator (2 per multiply-add)", "FLOP"),
    "Q_op": ("bytes an operator moves to or from memory: weights, activations, KV cache", "B"),
    "n_op": ("occurrences of an operator: the layers it is in (1 for the LM head)", "1"),
    "L": ("decoder layers", "1"),
    "L_<kind>": ("decoder layers of one kind (local/global attention, dense/MoE FFN)", "1"),
    **calibration_params.glossary(),
    "b_w": ("bytes per weight value (block scales included)", "B"),
    "b_e": ("bytes per routed-expert weight value", "B"),
    "b_kv": ("bytes per KV-cache value", "B"),
    "b_a": ("bytes per activation value", "B"),
    "h": ("hidden size", "1"),
    "H": ("attention (query) heads", "1"),
    "H_kv": ("key/value heads (GQA; = H for MHA, 1 for MQA)", "1"),
    "d": ("head dimension", "1"),
    "d_ff": ("FFN intermediate size", "1"),
    "V": ("vocabulary size", "1"),
}

GENERAL_FORMULA = "t_step = Σ_op n_op · smax_n(F_op / P_dtype, Q_op / BW) + L·t_layer + t_0"
SMOOTH_MAX = "smax_n(a, b) = (a^n + b^n)^(1/n): a smooth max(a, b); ideal mode: n = ∞, the hard max, no fixed costs"
TRAFFIC = ("weights", "kv_cache", "activations")


@dataclass
class OperatorTerm(Record):
    """One operator of the formula: its symbolic FLOPs, bytes and time, and their values."""
    name: str
    group: str
    layers: str               # n_op: a layer-count symbol, or 1
    dtype: str                # matmul dtype whose P bounds it
    flops: str                # F_op [FLOP] as an expression
    bytes: str                # Q_op [B]
    time: str                 # smax(F/P, Q/BW) [s] per occurrence
    flops_value: float = None
    bytes_value: float = None
    time_s: float = None      # all occurrences
    bound: str = None


@dataclass
class Explanation(Record):
    """The step-time formula of one phase: symbolic, and evaluated where a model and chip are given."""
    phase: str
    model: str
    hardware: str
    mode: str
    formula: str
    step_expression: str      # t_step in symbols, built by the same functions as the numbers
    step_latex: str
    operators: list
    terms: list               # [{term, expression, value_s}]: weights, KV cache, activations, compute, fixed
    symbols: list             # [{symbol, value, unit, meaning}]
    time_s: float = None      # the step expression evaluated at the symbols' values
    notes: list = field(default_factory=list)

    def _repr_latex_(self):
        return f"$t_{{step}} = {self.step_latex}$"


def _sizes(model, generic=False):
    """The model with symbolic byte sizes, {tensor class: symbol}, and {symbol: bytes} (empty when generic)."""
    names = {"weights": "b_w", "kv_cache": "b_kv", "activations": "b_a",
             "experts": "b_e" if model.dtypes["experts"] != model.dtypes["weights"] else "b_w"}
    symbols = {cls: sympy.Symbol(name, positive=True) for cls, name in names.items()}
    dtypes = {cls: SizedDtype(model.dtypes[cls], symbols[cls]) for cls in names}
    values = {} if generic else {symbols[cls]: bytes_per_value(model.dtypes[cls]) for cls in names}
    return replace(model, dtypes=dtypes), symbols, values


def _layer_symbols(operators):
    """{group: (symbol, layers)}: L for a model of one kind of layer, else L_<kind> per kind."""
    groups = {op.group: op.count for op in operators if op.group != "head"}
    if len(groups) == 1:
        return {g: (sympy.Symbol("L", positive=True), n) for g, n in groups.items()}
    return {g: (sympy.Symbol("L_" + g.replace(" ", "_"), positive=True), n) for g, n in groups.items()}


def _ceiling_symbols(ceiling, generic=False):
    """A Ceilings of sympy symbols standing for `ceiling`'s numbers, and {symbol: number}.

    Bandwidth and FLOP/s are always symbols. In calibrated mode so is every other parameter whose
    value differs from its ideal-mode default, and the terms of the general formula (knee, t_layer,
    t_0) even at their default; the rest keep the ideal-mode value (calibration_params.PARAMETERS).
    """
    bandwidth = sympy.Symbol("BW", positive=True)
    flops = {d: sympy.Symbol("P" if generic else f"P_{d}", positive=True) for d in ceiling.flops}
    values = {bandwidth: ceiling.bandwidth, **{flops[d]: ceiling.flops[d] for d in ceiling.flops}}
    fields = {}
    if ceiling.mode == "calibrated":
        for row in calibration_params.PARAMETERS:
            if row.relative_to:       # the roofs: BW and P above
                continue
            number = getattr(ceiling, row.ceiling_field)
            if number == float("inf"):  # a hard maximum (a knee no sweep measured): the formula's max, not n = oo
                continue
            if row.in_formula or (number is not None and number != row.ceiling_default):
                fields[row.ceiling_field] = sympy.Symbol(row.symbol, positive=True)
                values[fields[row.ceiling_field]] = number
    return Ceilings(ceiling.mode, bandwidth, flops, **fields), values


def _traffic_split(op_bytes, sizes):
    """Bytes of an operator by what they are: {'weights', 'kv_cache', 'activations'}.

    Q is linear in the bytes-per-value symbols, so each class is its symbol times its coefficient;
    what is left (the sparse indexer's fp8 key cache) is KV-cache traffic.
    """
    expanded = sympy.expand(op_bytes)
    split = {"weights": 0, "kv_cache": 0, "activations": 0}
    seen = set()
    for cls, target in (("weights", "weights"), ("experts", "weights"), ("kv_cache", "kv_cache"),
                        ("activations", "activations")):
        symbol = sizes[cls]
        if symbol in seen:
            continue
        seen.add(symbol)
        split[target] += symbol * expanded.coeff(symbol)
    split["kv_cache"] += sympy.expand(expanded - sum(split.values()))
    return split


def _latex(expr):
    """LaTeX of `expr`, subscripts set as text (sympy reads L_local as L with a \\mathcal 'lo')."""
    names = {}
    for symbol in sympy.sympify(expr).free_symbols:
        head, _, sub = str(symbol).partition("_")
        if sub:
            names[symbol] = f"{head}_{{\\text{{{sub.replace('_', ' ')}}}}}"
    return sympy.latex(expr, symbol_names=names)


def _evaluate(expr, values):
    """`expr` at `values` ({symbol: number}), to 30 digits: exact to float64 for a comparison."""
    numbers = {symbol: sympy.Float(value, 30) for symbol, value in values.items()}
    return float(sympy.sympify(expr).xreplace(numbers).evalf(30))


def _build(phase, model, hardware, layout, ceiling, batch_symbol, length_symbol, link=None, generic=False,
           collectives=None, overlap=None):
    """Symbolic operators, traffic terms and step time of `phase` for `model` on `layout` under `ceiling`,
    through the one step-time path (deployment.ForwardPass.evaluate) with symbols for its inputs."""
    sized, sizes, values = _sizes(model, generic)
    sym_ceiling, ceiling_values = _ceiling_symbols(ceiling, generic)
    # collective costs stay numbers: explain's symbols are those of one chip's step
    sym_ceiling = replace(sym_ceiling, collective_overhead=ceiling.collective_overhead,
                          link_latency=ceiling.link_latency)
    values.update(ceiling_values)
    built = forward_pass(phase, sized, hardware, batch_symbol, length_symbol, layout, link, 1, collectives, overlap)
    layer_symbols = _layer_symbols(built.operators)
    total_layers = sympy.Symbol("L", positive=True)
    values[total_layers] = model.num_layers
    operators = []
    for op in built.operators:
        if op.group in layer_symbols:
            symbol, count = layer_symbols[op.group]
            values[symbol] = count
            op = replace(op, count=symbol)
        operators.append(op)
    ev = replace(built, operators=tuple(operators), layers=total_layers).evaluate(sym_ceiling)
    step = ev.cycle_time if phase == "decode" else ev.token_time
    traffic = {k: 0 for k in TRAFFIC}
    compute = 0
    for op in operators:
        for key, part in _traffic_split(op.bytes, sizes).items():
            traffic[key] += op.count * part
        compute += op.count * op.flops / sym_ceiling.flops[op.dtype]
    terms = {"weights streaming": traffic["weights"] / sym_ceiling.bandwidth,
             "KV cache read/write": traffic["kv_cache"] / sym_ceiling.bandwidth,
             "activations": traffic["activations"] / sym_ceiling.bandwidth,
             "compute": compute,
             "fixed costs": total_layers * sym_ceiling.layer_overhead + built.mesh_span * sym_ceiling.mesh_traversal
             + sym_ceiling.step_overhead}
    if ev.comms:
        terms["links"] = sum(c.total_time for c in ev.comms)
    terms = {name: sympy.factor_terms(sympy.expand(expr)) for name, expr in terms.items()}
    return operators, ev.timed, step, terms, values


def _symbol_rows(values, point):
    rows = []
    for symbol, value in sorted(values.items(), key=lambda kv: _symbol_order(str(kv[0]))):
        name = str(symbol)
        key = "P_<dtype>" if name.startswith("P_") else "L_<kind>" if name.startswith("L_") else name
        meaning, unit = GLOSSARY[key]
        rows.append({"symbol": name, "value": value, "unit": unit, "meaning": meaning})
    return point + rows


def _symbol_order(name):
    order = ["B", "C", "T", "BW", "P", "n", "eta_attn", "L", "t_layer", "t_0", "t_dq", "b_w", "b_e", "b_kv", "b_a"]
    head = name.split("_")[0] if name.startswith(("P_", "L_")) else name
    return (order.index(head) if head in order else len(order), name)


def explain(phase, model, hardware, batch=1, length=1024, **options):
    """The step-time formula of a decode step (`length` = context) or prefill (`length` = prompt).

    `options` are roofline.scenario.build's (mode, dtypes, overrides, chips, tp, pp, ep, link,
    calibration, ...). Returns an Explanation: each operator's F and Q in the symbols B and C
    (or T), the terms by traffic, the step time as one expression in B, C, BW, P_dtype, n, L,
    t_layer, t_0 and bytes per value, the value of every symbol, and the expression evaluated:
    equal to api.decode's (or api.prefill's) time_s.
    """
    length_key = "context" if phase == "decode" else "prompt"
    scenario = build(model, hardware, phase, batch=batch, **{length_key: length}, **options)
    result = step_result(scenario)
    ceiling = scenario.ceiling
    batch_symbol = sympy.Symbol("B", positive=True, integer=True)
    length_symbol = sympy.Symbol("C" if phase == "decode" else "T", positive=True, integer=True)
    operators, timed, step, terms, values = _build(phase, scenario.model, scenario.hardware, scenario.layout,
                                                   ceiling, batch_symbol, length_symbol, scenario.link,
                                                   collectives=scenario.collectives, overlap=scenario.overlap)
    point = {batch_symbol: batch, length_symbol: length}
    values = {**point, **values}
    rows = []
    for op, t in zip(operators, timed):
        compute = _evaluate(t.compute_time, values)
        memory = _evaluate(t.memory_time, values)
        rows.append(OperatorTerm(
            op.name, op.group, str(op.count), op.dtype, str(op.flops), str(op.bytes), str(t.time),
            _evaluate(op.flops, values), _evaluate(op.bytes, values), _evaluate(op.count * t.time, values),
            "compute" if compute > memory else "memory"))
    term_rows = [{"term": name, "expression": str(expr), "value_s": _evaluate(expr, values)}
                 for name, expr in terms.items()]
    point_rows = [{"symbol": str(batch_symbol), "value": batch, "unit": GLOSSARY["B"][1], "meaning": GLOSSARY["B"][0]},
                  {"symbol": str(length_symbol), "value": length, "unit": "tokens",
                   "meaning": GLOSSARY[str(length_symbol)][0]}]
    return Explanation(
        phase=phase, model=scenario.model.id, hardware=scenario.hardware.id, mode=ceiling.mode,
        formula=_formula(ceiling.mode), step_expression=str(step), step_latex=_latex(step), operators=rows,
        terms=term_rows,
        symbols=_symbol_rows({k: v for k, v in values.items() if k not in point and k in step.free_symbols},
                             point_rows),
        time_s=_evaluate(step, values), notes=list(result.notes))


def _formula(mode):
    if mode == "ideal":
        return "t_step = Σ_op n_op · max(F_op / P_dtype, Q_op / BW)"
    return GENERAL_FORMULA


def general(phase):
    """The formula of `phase` for a dense GQA transformer in generic symbols, with no numbers.

    The model's sizes (h, H, H_kv, d, d_ff, V) are symbols too; layers are L identical ones. Every
    symbol name parses back with sympy.sympify (no I, S, E, N, O or Q, which sympify reserves).
    """
    h, H, H_kv, d, d_ff, V = (sympy.Symbol(s, positive=True) for s in ("h", "H", "H_kv", "d", "d_ff", "V"))
    model = Model(id="dense GQA transformer", name="generic", architecture="generic", num_layers=1,
                  hidden_size=h, num_heads=H, num_kv_heads=H_kv, head_dim=d, intermediate_size=d_ff, ffn="gated",
                  vocab_size=V, tie_embeddings=False, max_context=0,
                  dtypes={"weights": "bf16", "experts": "bf16", "kv_cache": "bf16", "activations": "bf16"})
    generic_ceiling = Ceilings("calibrated", 1.0, {"bf16": 1.0}, 1.0, 1.0, 1.0)
    any_chip = Hardware(id="any", name="any chip", vendor="", kind="gpu",
                        memory=(MemoryTier("memory", "hbm", 1.0, 1.0),), peak_flops={"bf16": 1.0})
    batch_symbol = sympy.Symbol("B", positive=True, integer=True)
    length_symbol = sympy.Symbol("C" if phase == "decode" else "T", positive=True, integer=True)
    operators, timed, step, terms, _ = _build(phase, model, any_chip, Layout(), generic_ceiling, batch_symbol,
                                              length_symbol, generic=True)
    rows = [OperatorTerm(op.name, op.group, str(op.count), "P", str(op.flops), str(op.bytes), str(t.time))
            for op, t in zip(operators, timed)]
    used = {str(s) for s in sympy.sympify(step).free_symbols} | {"t_step", "F_op", "Q_op", "n_op", "P_<dtype>"}
    symbols = [{"symbol": "P" if k == "P_<dtype>" else k, "value": None, "unit": unit, "meaning": meaning}
               for k, (meaning, unit) in GLOSSARY.items() if k in used]
    return Explanation(
        phase=phase, model=model.id, hardware="any", mode="general", formula=GENERAL_FORMULA,
        step_expression=str(step), step_latex=_latex(step), operators=rows,
        terms=[{"term": name, "expression": str(expr), "value_s": None} for name, expr in terms.items()],
        symbols=symbols, notes=[SMOOTH_MAX])
