"""Bounded nonlinear least squares: a small Levenberg-Marquardt for a handful of parameters.

Minimises 0.5 sum_i r_i(p)^2 over parameters p with box bounds. Positive scale parameters
(bandwidths, FLOP rates, the knee) are fitted as log(p), so a step is a relative change; others
(fixed costs, which may be zero) as p / scale. The Jacobian is taken by forward differences; the
step solves the damped normal equations

.. math:: (J^T J + \\lambda \\, \\mathrm{diag}(J^T J)) \\, \\delta = -J^T r

over the parameters not held at a bound (a bound is active when the gradient pushes outward), and
the damping lambda shrinks after a step that lowers the cost and grows after one that does not
(Levenberg 1944; Marquardt 1963, SIAM J. Appl. Math. 11(2):431-441; Nocedal & Wright, Numerical
Optimization, ch. 10). It stops when the cost, the step or the projected gradient stops changing;
a run that reaches its iteration limit first reports that it did not converge.
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Parameter:
    """A fitted parameter: starting value, bounds and how it is scaled inside the fit."""
    name: str
    start: float
    lower: float
    upper: float
    log: bool = True          # fit log(value); else value / scale
    scale: float = 1.0

    def to_internal(self, value):
        return np.log(value) if self.log else value / self.scale

    def to_value(self, internal):
        return float(np.exp(internal) if self.log else internal * self.scale)


@dataclass(frozen=True)
class FitResult:
    values: dict              # name -> fitted value
    residuals: np.ndarray
    iterations: int
    converged: bool
    message: str
    at_bound: tuple = ()      # names of parameters that ended on a bound

    @property
    def cost(self):
        return 0.5 * float(self.residuals @ self.residuals)


def least_squares(residuals, parameters, max_iterations=100, ftol=1e-10, xtol=1e-9, gtol=1e-12):
    """Fit `parameters` (list of Parameter) to minimise the squared `residuals(values: dict)`.

    Returns a FitResult; `converged` is False (with the reason in `message`) when the iteration
    limit is reached first or the residuals are not finite.
    """
    lower = np.array([p.to_internal(p.lower) for p in parameters], dtype=float)
    upper = np.array([p.to_internal(p.upper) for p in parameters], dtype=float)
    z = np.clip([p.to_internal(p.start) for p in parameters], lower, upper)

    def evaluate(point):
        values = {p.name: p.to_value(x) for p, x in zip(parameters, point)}
        return np.asarray(residuals(values), dtype=float)

    r = evaluate(z)
    if not np.all(np.isfinite(r)):
        return _result(parameters, z, r, 0, False, "the residuals are not finite at the starting point", lower, upper)
    damping, message = 1e-3, None
    for iteration in range(1, max_iterations + 1):
        jac = _jacobian(evaluate, z, r, upper)
        grad = jac.T @ r
        free = ~(((z <= lower) & (grad > 0)) | ((z >= upper) & (grad < 0)))
        if np.max(np.abs(grad[free]), initial=0.0) <= gtol * max(1.0, r @ r):
            message = "projected gradient below tolerance"
            break
        accepted = False
        while damping <= 1e12:
            step = np.zeros_like(z)
            normal = jac[:, free].T @ jac[:, free]
            diagonal = np.diag(normal) + 1e-12
            try:
                step[free] = np.linalg.solve(normal + damping * np.diag(diagonal), -grad[free])
            except np.linalg.LinAlgError:
                damping *= 4
                continue
            trial = np.clip(z + step, lower, upper)
            r_trial = evaluate(trial)
            if np.all(np.isfinite(r_trial)) and r_trial @ r_trial < r @ r:
                accepted = True
                break
            damping *= 4
        if not accepted:
            message = "no step lowers the cost (a minimum to numerical precision)"
            break
        reduction = (r @ r - r_trial @ r_trial) / max(r @ r, 1e-300)
        moved = np.linalg.norm(trial - z)
        z, r = trial, r_trial
        damping = max(damping / 3, 1e-12)
        if reduction <= ftol or moved <= xtol * (np.linalg.norm(z) + xtol):
            message = "cost and parameters stopped changing"
            break
    else:
        return _result(parameters, z, r, max_iterations, False,
                       f"did not converge in {max_iterations} iterations", lower, upper)
    return _result(parameters, z, r, iteration, True, message, lower, upper)


def _jacobian(evaluate, z, r, upper):
    """Forward-difference Jacobian, stepping inward at an upper bound."""
    jac = np.empty((r.size, z.size))
    for j in range(z.size):
        h = 1e-6 * max(1.0, abs(z[j]))
        if z[j] + h > upper[j]:
            h = -h
        point = z.copy()
        point[j] += h
        jac[:, j] = (evaluate(point) - r) / h
    return jac


def _result(parameters, z, r, iterations, converged, message, lower, upper):
    at_bound = tuple(p.name for p, x, lo, hi in zip(parameters, z, lower, upper)
                     if lo < hi and (np.isclose(x, lo) or np.isclose(x, hi)))
    return FitResult({p.name: p.to_value(x) for p, x in zip(parameters, z)}, r, iterations, converged,
                     message, at_bound)
