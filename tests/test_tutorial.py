"""The Python examples of docs/tutorial.md run as written, and print what the text says they print."""
import contextlib
import io
import re

from conftest import ROOT

TUTORIAL = ROOT / "docs" / "tutorial.md"


def test_tutorial_python_blocks_run():
    text = TUTORIAL.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 4
    namespace, printed = {}, io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            exec(compile(block, str(TUTORIAL), "exec"), namespace)
    # the comments in the blocks quote these outputs
    for line in ("bf16 709 GB -> 17 wafers", "fp8 356 GB -> 9 wafers", "207.0 kW", "True 19% under the limit",
                 "19 overhead TP=1, PP=19, 1 micro-batch"):
        assert line in printed.getvalue()
