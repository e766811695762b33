"""The model run backwards: the chips, batch, bandwidth, context or model size a target needs.

Each solver searches a quantity that the forward model is monotone in (chips through the set of
layouts they allow, batch, bandwidth, context), names the constraint that binds at the answer,
gives the margin on every other constraint, and says plainly when a target cannot be reached.
"""
from .chips import best_within, fastest_layout, fewest_chips_layout, solve_chips, tp_options
from .common import BINDING_TEXT, SolveResult
from .limits import solve_bandwidth, solve_batch, solve_context, solve_params

__all__ = ["solve_chips", "solve_batch", "solve_context", "solve_bandwidth", "solve_params", "best_within",
           "fastest_layout", "fewest_chips_layout", "tp_options", "SolveResult", "BINDING_TEXT"]
