"""roofline: an analytical roofline cost model of LLM inference.

    >>> import roofline
    >>> roofline.decode("llama-3.1-8b", "h100-sxm", batch=1, context=1024).tokens_per_s_per_user

Formulas live in modules named after what they compute (memory, operators, step, ...); the API
in roofline.api takes ids or spec objects and returns result records.
"""
from .api import decode, prefill
from .errors import RooflineError, SpecError
from .hardware import load_hardware, load_link
from .models import load_model

__version__ = "0.2.0"  # the one version number: setup.cfg reads it (version = attr: roofline.__version__)
__all__ = ["decode", "prefill", "load_hardware", "load_link", "load_model", "RooflineError", "SpecError"]
