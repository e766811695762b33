"""The model run backwards: the chips, batch, bandwidth, context or model size a target needs.

Each solver searches a quantity that the forward model is monotone in (chips through the set of
layouts they allow, batch, bandwidth, context), on every layout a question allows, names the
constraint that binds at the answer, gives the margin on every other constraint, and says plainly
when a target cannot be reached. A feasible answer meets every target it was given.
"""
from .chips import best_within, choose_batch, solve_chips
from .common import SolveResult
from .limits import solve_bandwidth, solve_batch, solve_context, solve_params

__all__ = ["solve_chips", "solve_batch", "solve_context", "solve_bandwidth", "solve_params", "best_within",
           "choose_batch", "SolveResult"]
