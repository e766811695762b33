"""Optional dependencies: pandas and matplotlib come with the notebooks extra, PyTorch with the
measure extra; the rest of roofline runs without them. `require` imports one or raises one
RooflineError naming what to install, instead of a bare ModuleNotFoundError."""
import importlib

from .errors import RooflineError

#: the pip command that installs each optional module
EXTRAS = {"matplotlib": "pip install 'roofline[notebooks]'", "pandas": "pip install 'roofline[notebooks]'",
          "ipywidgets": "pip install 'roofline[notebooks]'", "torch": "pip install 'roofline[measure]'"}


def require(module):
    """The module `module` (e.g. "pandas", "matplotlib.pyplot"), or RooflineError naming its extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise RooflineError(f"this needs {top}, which is not installed; install it with "
                            f"{EXTRAS.get(top, f'pip install {top}')}") from None
