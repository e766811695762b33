"""Every console example in README.md and docs/*.md is what roofline prints today (python -m roofline.docgen).

Numbers compare within 0.5%: enough for float noise and a last printed digit, far below any change
of a formula, a spec or a calibration (the smallest the tests elsewhere care about is ~1%).
"""
import re
import subprocess
import sys

import click
import pytest

from roofline import docgen
from roofline.cli import cli

from conftest import CHIPS, LINKS, MODELS, ROOT

DOCS = docgen.doc_files(ROOT)


def name(path):
    return path.relative_to(ROOT).as_posix()


@pytest.mark.parametrize("path", DOCS, ids=name)
def test_console_examples_print_what_the_doc_shows(path):
    _, findings = docgen.regenerate(path)
    assert not findings, ("stale examples (rerun `python -m roofline.docgen`):\n"
                          + "\n\n".join(map(str, findings)))


@pytest.mark.parametrize("path", DOCS, ids=name)
def test_other_commands_in_the_docs_exist_with_their_options(path):
    findings = docgen.dry_findings(path) + docgen.option_table_findings(path)
    assert not findings, "\n".join(map(str, findings))


@pytest.mark.parametrize("path", [p for p in DOCS if "```python" in p.read_text() and p.name != "tutorial.md"], ids=name)
def test_python_examples_run(path):
    """The Python blocks of README.md and docs/ (the tutorial's are checked with their printed lines in
    test_tutorial.py) run as written."""
    namespace = {}
    for block in re.findall(r"```python\n(.*?)```", path.read_text(), re.S):
        exec(compile(block, str(path), "exec"), namespace)


def test_the_docgen_command_finds_the_docs_current():
    """`python -m roofline.docgen --check`, as the lead runs it: a fresh process (commands load lazily)."""
    result = subprocess.run([sys.executable, "-m", "roofline.docgen", "--check"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_docs_have_console_examples():
    examples = [e for path in DOCS for block in docgen.console_blocks(path.read_text().split("\n"))
                for e in block.examples]
    assert len(examples) >= 7
    assert all(e.command.startswith("roofline ") for e in examples)


def test_every_command_takes_the_format_the_docs_say():
    """README and docs/cli.md: one list for most commands, the exceptions named with theirs."""
    formats = {}

    def walk(command, path):
        if isinstance(command, click.Group):
            context = click.Context(command)
            for sub_name in command.list_commands(context):
                walk(command.get_command(context, sub_name), path + [sub_name])
        if path and (not isinstance(command, click.Group) or command.invoke_without_command):
            option = next((p for p in command.params if "--format" in p.opts), None)
            formats[" ".join(path)] = "|".join(option.type.choices) if option else None
    walk(cli, [])
    usual = max(set(formats.values()) - {None}, key=list(formats.values()).count)
    for doc in (ROOT / "README.md", ROOT / "docs" / "cli.md"):
        sentence = re.search(r"Every command takes `--format ([a-z|]+)`(.*?)\.", doc.read_text(), re.S)
        assert sentence, doc
        assert sentence.group(1) == usual, doc
        for command, listed in formats.items():
            if listed is None:                      # a command (or its group) that writes a file
                words = command.split()
                assert "write" in sentence.group(2) and any(
                    f"`{' '.join(words[:k])}`" in sentence.group(2) for k in range(1, len(words) + 1)), \
                    f"{name(doc)}: `roofline {command}` has no --format (it writes a file): say so"
            elif listed != usual:
                assert re.search(rf"`{command}`[: takes]*`{re.escape(listed)}`", sentence.group(2).replace("\n", " ")), \
                    f"{name(doc)} does not say that `roofline {command}` takes --format {listed}"


def test_readme_counts_the_shipped_specs():
    text = " ".join((ROOT / "README.md").read_text().split())
    counts = re.search(r"Shipped specs: (\d+) chips \(.*?\), (\d+) link technologies, (\d+) models", text)
    assert counts, "README.md: the 'Shipped specs' paragraph is missing"
    assert tuple(map(int, counts.groups())) == (len(CHIPS), len(LINKS), len(MODELS))


# ---------------------------------------------------------------------- the checks can fail
def test_numbers_agree_within_half_a_percent_and_text_exactly():
    assert docgen.agree(["step_time_s   0.02887", "bound  memory"], ["step_time_s 0.02888", "bound memory"])
    assert docgen.agree(["1,052 on 38 (1.07x)"], ["1052 on 38 (1.071x)"])
    assert not docgen.agree(["step_time_s 0.02887"], ["step_time_s 0.02910"])      # 0.8% off
    assert not docgen.agree(["bound  memory"], ["bound  compute"])
    assert not docgen.agree(["chips 19"], ["chips 19 chips"])


def test_a_stale_example_is_named_with_its_file_command_and_diff(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# x\n\n```console\n$ roofline decode -m llama-3.1-8b -c h100-sxm --batch 8\n"
                   "answer\n  time per token (one step)  1 ms\n...\n  bound by  memory\n...\n```\n")
    text, findings = docgen.regenerate(doc, root=ROOT)
    assert len(findings) == 1
    message = str(findings[0])
    assert "doc.md" in message and "roofline decode -m llama-3.1-8b" in message
    assert "-  time per token (one step)  1 ms" in message and "+  time per token (one step)" in message
    assert "(one step)  1 ms\n" not in text and "bound by" in text
    assert docgen.main(["--check", str(doc)]) == 1
    doc.write_text(text)
    assert docgen.main(["--check", str(doc)]) == 0


def test_a_failing_example_and_a_line_no_longer_printed_are_reported(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("```console\n$ roofline decode -m no-such-model -c h100-sxm\nstep_time_s  1\n"
                   "$ roofline decode -m llama-3.1-8b -c h100-sxm\n...\nquantum_flux  42\n```\n")
    _, findings = docgen.regenerate(doc, root=ROOT)
    messages = [str(f) for f in findings]
    assert any("no-such-model" in m and "exits with status 2" in m for m in messages), messages
    assert any("no longer printed: quantum_flux" in m for m in messages), messages


def test_elided_words_stay_elided_and_kept_numbers_follow_the_output():
    printed = ["why: capacity needs 706 GB / 44 GB = 16.05 -> 17 chips; no layout of 17 fits (best: TP=1, PP=17, "
               "48.87 GB on its fullest chip, as chips hold whole layers); the fewest that fits is 18 (TP=3, PP=6)"]
    shown = ["why: capacity needs 700 GB / 44 GB = 15.9 -> 16 chips; no layout of 16 fits (best: TP=1, PP=16, ...);",
             "     the fewest that fits is 18 (TP=3, PP=6)"]
    lines, problems = docgen.render(shown, printed)
    assert not problems
    assert " ".join(lines).split() == ("why: capacity needs 706 GB / 44 GB = 16.05 -> 17 chips; no layout of 17 fits "
                                      "(best: TP=1, PP=17, ...); the fewest that fits is 18 (TP=3, PP=6)").split()
    assert docgen.agree(lines, lines) and not docgen.agree(shown, lines)


def test_another_programs_example_is_left_as_written(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("```console\n$ python -c 'print(1)'\n2\n```\n")
    assert docgen.regenerate(doc, root=ROOT) == (doc.read_text(), [])


def test_a_status_only_example_keeps_its_output(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- docgen: status-only -->\n```console\n$ roofline list links\n(a table)\n```\n")
    text, findings = docgen.regenerate(doc, root=ROOT)
    assert not findings and text == doc.read_text()


def test_an_excerpt_follows_reordered_output_and_renamed_lines():
    printed = ["step_time_s  0.01", "bound  memory", "fits  true"]
    assert docgen.render(["fits  true", "...", "step_time_s  0.01"], printed) == (
        ["fits  true", "...", "step_time_s  0.01"], [])
    shown = ["step_s  0.01", "..."]                    # a field renamed since: the new line replaces it
    lines, problems = docgen.render(shown, printed)
    assert lines == ["step_time_s  0.01", "..."] and not problems and not docgen.agree(shown, lines)


@pytest.mark.parametrize("command, problem", [
    ("roofline sweep --batch 1:1024:x2 --context 1024,8192", "needs --model"),
    ("roofline decode -m llama-3.1-8b -c h100-sxm --batchsize 4", "has no option --batchsize"),
    ("roofline solve chip -m glm-4.7 -c wse-3", "has no subcommand 'chip'"),
    ("roofline calibrate -c h100-sxm --measurement x.jsonl", "has no option --measurement"),
    ("roofline show ID [--format table|json|csv]", "takes table|json|csv|markdown"),
])
def test_dry_check_finds_what_is_wrong(command, problem):
    assert problem in docgen.dry_check(command)


@pytest.mark.parametrize("command", [
    "roofline sweep -m MODEL -c CHIP --batch 1:1024:x2 --context 1024,8192",
    "roofline validate -i data/validation/published/a100_gpt-fast_lmdeploy.csv [--mode ideal]",
    "roofline list models|hardware|links [--format table|json|csv|markdown]",
    "roofline decode",
    "roofline calibrate -c h100-sxm -i data/validation/h100/llama-3.1-8b_and_kernels.jsonl -o h.yaml",
    "roofline calibrate transfer --from h100-sxm --to h200",
])
def test_dry_check_accepts_documented_forms(command):
    assert docgen.dry_check(command) is None
