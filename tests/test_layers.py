"""Dependencies point one way: specs -> formulas -> evaluation -> analyses -> solver -> CLI.

Each module of roofline/ belongs to one layer (docs/architecture.md); it may import from its own
layer or those below, never from above (a calibration that imports the solver, a formula that
imports the API). Imports inside functions count too: a lazy import is still a dependency. A new
module must be given a layer here, or this test names it.
"""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "roofline"

LAYERS = [
    ("foundations", {"units", "dtypes", "mathops", "errors", "display", "optional"}),
    ("specs", {"readers", "specs", "published", "calibration_params", "calibration", "hardware", "models", "hf_import",
                "device_names"}),
    ("formulas", {"params", "memory", "operators", "step", "parallel", "collectives", "cost", "binding",
                  "transfer", "wafer", "sharding"}),
    ("evaluation", {"deployment", "placement", "results", "scenario", "api"}),
    ("analyses", {"sweep", "explain", "speculative", "predict", "measurements", "fit", "calibrate", "validate",
                  "measure", "model_import", "plots", "serving", "whatif"}),
    ("solver", {"solve"}),
    ("interface", {"cli", "__init__", "__main__", "docgen"}),   # docgen runs the documented commands
]
RANK = {module: rank for rank, (_, modules) in enumerate(LAYERS) for module in modules}


def _module_of(path):
    """The top-level name under roofline/ a file belongs to (a package counts as one module)."""
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _imports(path):
    """Top-level roofline modules a file imports (relative or absolute, anywhere in the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = path.relative_to(ROOT).parts[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package)[:len(package) - node.level + 1]
                parts = base + (node.module.split(".") if node.module else [])
                names = [parts[0]] if parts else [alias.name for alias in node.names]
            elif node.module and node.module.split(".")[0] == "roofline":
                parts = node.module.split(".")[1:]
                names = [parts[0]] if parts else [alias.name for alias in node.names]
            else:
                continue
            found.update(names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "roofline" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_every_module_has_a_layer():
    modules = {_module_of(p) for p in ROOT.rglob("*.py")}
    assert not modules - set(RANK), f"give these modules a layer in tests/test_layers.py: {modules - set(RANK)}"


def test_no_module_imports_from_a_layer_above():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_of(path)
        for imported in _imports(path):
            if imported in RANK and RANK[imported] > RANK[module]:
                wrong.append(f"{path.relative_to(ROOT.parent)} ({LAYERS[RANK[module]][0]}) imports {imported} "
                             f"({LAYERS[RANK[imported]][0]})")
    assert not wrong, "\n".join(wrong)
