"""Serving: a deployment under load (TTFT, TPOT, throughput) from the mixed continuous-batching step.

serving.model holds the equations, serving.engines the engines' limits and fixed costs,
serving.benchmarks reads and predicts serving-benchmark rows, serving.fit fits the engines' costs.
"""
from .api import DEFAULT_CONCURRENCIES, frontier, pareto, serve, solve_serving  # noqa: F401
from .engines import DEFAULT_ENGINE, ENGINES  # noqa: F401
