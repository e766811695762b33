"""An interactive what-if for Jupyter: pick a model, a chip (or a custom one), a weights dtype, the
batch, the context, the chips and their layout with drop-downs and sliders; the answer table and
the roofline chart follow every change.

    >>> from roofline.whatif import WhatIf
    >>> app = WhatIf()              # shows itself as the last expression of a cell
    >>> app.controls["batch"].value = 64; app.result.tokens_per_s

Needs ipywidgets and matplotlib (pip install 'roofline[notebooks]'). Every answer is roofline's own
(api.decode / api.prefill); nothing is computed here. The custom chip starts from a shipped chip's
datasheet (`CUSTOM_BASE`) with memory bandwidth, capacity and bf16 peak from the sliders, and has
no calibration: its answers are ideal-mode lower bounds on time.
"""
from dataclasses import replace

from . import api
from .display import sections_html, step_sections
from .dtypes import DTYPES
from .errors import RooflineError
from .hardware import load_hardware, with_overrides
from .optional import require
from .specs import spec_paths

CUSTOM = "custom chip"
CUSTOM_BASE = "h100-sxm"
MODEL_DTYPE = "model's own"
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048]
CONTEXTS = [128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072]
CHIP_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128]
LAYOUTS = ("roofline picks", "tensor parallel", "pipeline")


class WhatIf:
    """Controls, an answer table and a roofline chart for one model on one chip (or several)."""

    def __init__(self, model="llama-3.1-8b", chip="h100-sxm", batch=1, context=1024):
        widgets = require("ipywidgets")
        require("matplotlib")
        self.widgets = widgets
        style = {"description_width": "110px"}
        self.controls = {
            "model": widgets.Dropdown(options=list(spec_paths("model")), value=model, description="model",
                                      style=style),
            "chip": widgets.Dropdown(options=list(spec_paths("hardware")) + [CUSTOM], value=chip, description="chip",
                                     style=style),
            "bandwidth": widgets.FloatLogSlider(value=3.35, base=10, min=-1, max=1.5, step=0.01,
                                                description="custom TB/s", style=style),
            "capacity": widgets.FloatLogSlider(value=80, base=10, min=0, max=3.5, step=0.01,
                                               description="custom GB", style=style),
            "peak": widgets.FloatLogSlider(value=989.4, base=10, min=1, max=4, step=0.01,
                                           description="custom bf16 TFLOP/s", style=style),
            "phase": widgets.ToggleButtons(options=["decode", "prefill"], value="decode", description="phase",
                                           style=style),
            "dtype": widgets.Dropdown(options=[MODEL_DTYPE, *DTYPES], value=MODEL_DTYPE, description="weights dtype",
                                      style=style),
            "batch": widgets.SelectionSlider(options=BATCHES, value=batch, description="batch", style=style),
            "context": widgets.SelectionSlider(options=CONTEXTS, value=context, description="context / prompt",
                                               style=style),
            "chips": widgets.SelectionSlider(options=CHIP_COUNTS, value=1, description="chips", style=style),
            "layout": widgets.Dropdown(options=LAYOUTS, value=LAYOUTS[0], description="layout", style=style),
        }
        self.table = widgets.HTML()
        self.message = widgets.HTML()
        self.chart = widgets.Output()
        self.result, self.hardware, self.figure, self.error = None, None, None, None
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self.update()

    def _changed(self, _change):
        self.update()

    def chip(self):
        """The chip the controls describe: a shipped one, or the custom chip from the sliders."""
        c = self.controls
        if c["chip"].value != CUSTOM:
            return load_hardware(c["chip"].value)
        base = load_hardware(CUSTOM_BASE)
        custom = with_overrides(base, {"memory_bandwidth": f"{c['bandwidth'].value} TB/s",
                                       "memory_capacity": f"{c['capacity'].value} GB",
                                       "peak_flops.bf16": f"{c['peak'].value} TFLOP/s"})
        return replace(custom, id="custom", name=f"custom chip (from {base.name})", calibration=None,
                       architecture=None)

    def question(self):
        """The keyword arguments of api.decode / api.prefill the controls describe."""
        c = self.controls
        chips, layout = c["chips"].value, c["layout"].value
        options = {"batch": c["batch"].value,
                   "weights_dtype": None if c["dtype"].value == MODEL_DTYPE else c["dtype"].value}
        if layout == "tensor parallel":
            options["tp"] = chips
        elif layout == "pipeline":
            options.update(tp=1, pp=chips)
        else:
            options["chips"] = chips
        length = "prompt" if c["phase"].value == "prefill" else "context"
        options[length] = c["context"].value
        return options

    def update(self):
        """Evaluate the question of the controls and redraw the table and the chart. A question roofline
        refuses (a layout that does not divide the model, say) shows its message and keeps the last answer."""
        custom = self.controls["chip"].value == CUSTOM
        for name in ("bandwidth", "capacity", "peak"):
            self.controls[name].layout.display = None if custom else "none"
        try:
            hardware = self.chip()
            evaluate = api.prefill if self.controls["phase"].value == "prefill" else api.decode
            # a made-up chip has no measurements: ideal mode, not a calibration borrowed from a sibling
            result = evaluate(self.controls["model"].value, hardware, mode="ideal" if custom else None,
                              **self.question())
        except RooflineError as exc:
            self.error = str(exc)
            self.message.value = f"<p style='color:#b00'>{_escape(self.error)}</p>"
            return
        self.error, self.result, self.hardware = None, result, hardware
        self.message.value = "".join(f"<p>note: {_escape(n)}</p>" for n in result.notes)
        self.table.value = sections_html(step_sections(result))
        self._draw()

    def _draw(self):
        from . import plots
        import matplotlib.pyplot as plt
        with self.chart:
            self.chart.clear_output(wait=True)
            if self.figure is not None:
                plt.close(self.figure)
            self.figure, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
            plots.roofline_chart(self.result, self.hardware, ax=ax)
            plt.show()

    def box(self):
        """The whole app: controls left, answer table right, chart and notes below."""
        w = self.widgets
        return w.VBox([w.HBox([w.VBox(list(self.controls.values())), self.table]), self.message, self.chart])

    def _ipython_display_(self):
        from IPython.display import display
        display(self.box())


def _escape(text):
    import html
    return html.escape(str(text))
