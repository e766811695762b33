"""The console examples of README.md and docs/*.md, regenerated from what roofline prints.

    python -m roofline.docgen            # rewrite every example's output in place
    python -m roofline.docgen --check    # print a diff per stale example and exit 1; change nothing

A console example is a fenced ```console block of `$ roofline ...` commands (a trailing `\\`
continues one), each followed by its output; `$` lines of other programs are left as written.
Every command runs in-process through the CLI, from the checkout's root, with the shipped specs
only (no $ROOFLINE_SPECS, no user data folder) and unwrapped tables (ROOFLINE_WIDTH=0).

- An output with a line `...`, or with `...` in a line, is an excerpt: only the lines it shows are
  kept, each matched (in order, numbers masked) to the printed line it resembles most. Within a
  line, `...` stands for words left out: the words around it are taken from the printed line, so
  their numbers follow it. A line wrapped onto indented continuation lines is wrapped again at
  WIDTH columns.
- Any other output is the whole output.
- `<!-- docgen: status-only -->` on the line before a block (a slow command): only the exit
  status is checked, the output is left as written.

Numbers compare by relative error within RELATIVE_TOLERANCE, the rest exactly, whitespace aside;
an output that agrees so is left untouched, so float noise does not churn the docs.

Commands in other fenced blocks (```sh, ```bash) and indented code lines that start with
`roofline` are checked without running them: the command exists and it knows every option given.
"""
import argparse
import contextlib
import difflib
import os
import re
import shlex
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELATIVE_TOLERANCE = 0.005
WIDTH = 100
STATUS_ONLY = "<!-- docgen: status-only -->"
NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
FENCE = re.compile(r"^```(\w*)\s*$")
#: a command that takes both answers a question about a model on a chip: it needs both (checked
#: when the command runs, not by click, so the dry check names them)
QUESTION_OPTIONS = {"model", "hardware"}


def doc_files(root=ROOT):
    """README.md and docs/*.md of the checkout at `root`."""
    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    missing = [str(path) for path in files if not path.is_file()]
    if missing or not (root / "docs").is_dir():
        raise SystemExit(f"error: {root}: not a roofline checkout (README.md and docs/ expected)")
    return files


@dataclass
class Example:
    """One `$ roofline ...` command of a console block and the output the doc shows."""
    command: str                 # as written, continuation lines joined
    lines: list                  # the command's lines in the doc
    output: list                 # the output lines as written
    status_only: bool = False


@dataclass
class Block:
    start: int                   # index of the first line inside the fence
    end: int                     # index of the closing fence
    examples: list = field(default_factory=list)


def console_blocks(lines):
    """Every ```console block of a document's lines, split into examples."""
    blocks, index = [], 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        end = next((j for j in range(index + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        if match.group(1) == "console":
            status_only = index > 0 and lines[index - 1].strip() == STATUS_ONLY
            blocks.append(Block(index + 1, end, _examples(lines[index + 1:end], status_only)))
        index = end + 1
    return blocks


def _examples(body, status_only):
    examples, i = [], 0
    while i < len(body):
        if not body[i].startswith("$ "):
            i += 1
            continue
        command_lines = [body[i]]
        while command_lines[-1].rstrip().endswith("\\") and i + 1 < len(body):
            i += 1
            command_lines.append(body[i])
        output = []
        while i + 1 < len(body) and not body[i + 1].startswith("$ "):
            i += 1
            output.append(body[i])
        command = " ".join(line.rstrip().rstrip("\\").strip() for line in command_lines)[2:]
        examples.append(Example(command, command_lines, output, status_only))
        i += 1
    return examples


# -------------------------------------------------------------------------------------- running
def run(command, root=ROOT):
    """(exit status, printed lines) of a `roofline ...` command line, run in-process at `root`."""
    from click.testing import CliRunner

    from .cli import cli

    args = shlex.split(command)
    if not args or args[0] != "roofline":
        return 2, [f"error: not a roofline command: {command}"]
    with tempfile.TemporaryDirectory() as empty, _working_directory(root):
        result = CliRunner().invoke(cli, args[1:], env={"ROOFLINE_SPECS": None, "XDG_DATA_HOME": empty,
                                                          "ROOFLINE_WIDTH": "0"})   # tables never wrapped
    return result.exit_code, [line.rstrip() for line in result.output.rstrip("\n").split("\n")]


@contextlib.contextmanager
def _working_directory(path):
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


# ------------------------------------------------------------------------------------ rendering
def _mask(text):
    return " ".join(NUMBER.sub("#", text).split())


def _key(text):
    """The first column of a `key  value` line (two or more spaces after it), else None."""
    match = re.match(r"(\S.*?)\s{2,}\S", text.strip())
    return match.group(1) if match else None


def _entries(shown, printed):
    """The shown output as entries: (text, continuation indent or None), or an elision line ('...').

    An indented line of prose that the command does not print (numbers aside) continues the line
    above it, wrapped in the doc: its indent is kept for rewrapping. An indented line it does print,
    or a `key  value` line (a field under a heading), is a line of its own.
    """
    printed_masks, entries = {_mask(line) for line in printed}, []
    for line in shown:
        if line.strip() == "...":
            entries.append(line.rstrip())           # an elision, kept as written (indent included)
        elif (line[:1].isspace() and line.strip() and entries and not isinstance(entries[-1], str)
              and entries[-1][0]
              and _key(line) is None and _mask(line) not in printed_masks):
            text, indent = entries[-1]
            entries[-1] = (f"{text} {line.strip()}", indent or line[:len(line) - len(line.lstrip())])
        else:
            entries.append((line.rstrip(), None))
    return entries


def is_excerpt(shown):
    return any(line.strip() == "..." or _is_elided(line) for line in shown)


def render(shown, printed):
    """The output lines to write: `printed` whole, or the excerpt of it that `shown` selects.

    Returns (lines, problems): a problem names a shown line that the command no longer prints.
    """
    if not is_excerpt(shown):
        return list(printed), []
    lines, problems, after = [], [], 0
    for entry in _entries(shown, printed):
        if isinstance(entry, str):
            lines.append(entry)
            continue
        text, indent = entry
        if not text:
            lines.append("")
            continue
        index = _match(text, printed, after)
        if index is None:
            problems.append(f"no longer printed: {text}")
            continue
        after = index + 1
        new = _elide(text, printed[index])[0] if _is_elided(text) else printed[index]
        if indent:
            lines.extend(textwrap.wrap(new, WIDTH, subsequent_indent=indent, break_long_words=False,
                                       break_on_hyphens=False))
        else:
            lines.append(new)
    return lines, problems


def _match(text, printed, after):
    """Index of the printed line that `text` shows: same key, else most alike; lines after the
    previous match first, so repeated keys keep their order, then any (the output was reordered)."""
    found = _match_in(text, printed, range(after, len(printed)))
    return found if found is not None else _match_in(text, printed, range(after))


def _match_in(text, printed, candidates):
    key = _key(text)
    if key is not None:
        for index in candidates:
            if _key(printed[index]) == key:
                return index
    best, best_score = None, 0.6
    for index in candidates:
        if _is_elided(text):
            score = _elide(text, printed[index])[1]
        else:
            score = difflib.SequenceMatcher(None, _mask(text), _mask(printed[index])).ratio()
        if score > best_score:
            best, best_score = index, score
    return best


def _is_elided(text):
    return any(word.startswith("...") for word in text.split())


def _elide(shown, line):
    """(`line` cut where `shown` elides words, the share of shown words found there).

    `shown` is a printed line with runs of words replaced by `...` (a word starting with `...`): each
    run of kept words is placed on the words of `line` that it matches best, numbers masked, in
    order, and replaced by them, so the excerpt carries the line's current numbers.
    """
    target, out, position, found = line.split(), [], 0, 0
    kept = [word for word in shown.split() if not word.startswith("...")]

    def place(segment):
        nonlocal position, found
        masks, best, hits_best = [_mask(word) for word in segment], None, -1
        for start in range(position, len(target) - len(segment) + 1):
            hits = sum(_mask(word) == mask for word, mask in zip(target[start:], masks))
            if hits > hits_best:
                best, hits_best = start, hits
            if hits == len(segment):
                break
        if best is None:
            out.extend(segment)
            return
        out.extend(target[best:best + len(segment)])
        position, found = best + len(segment), found + hits_best

    segment = []
    for word in shown.split():
        if word.startswith("..."):
            if segment:
                place(segment)
            segment = []
            out.append(word)
        else:
            segment.append(word)
    if segment:
        place(segment)
    return " ".join(out), found / max(1, len(kept))


# ------------------------------------------------------------------------------------ comparing
def _tokens(lines):
    return " ".join(lines).split()


def _same_token(a, b):
    numbers_a, numbers_b = NUMBER.findall(a), NUMBER.findall(b)
    if NUMBER.sub("#", a) != NUMBER.sub("#", b) or len(numbers_a) != len(numbers_b):
        return False
    for x, y in zip(numbers_a, numbers_b):
        try:
            u, v = float(x.replace(",", "")), float(y.replace(",", ""))
        except ValueError:
            if x != y:
                return False
            continue
        if abs(u - v) > RELATIVE_TOLERANCE * max(abs(u), abs(v)):
            return False
    return True


def agree(written, printed):
    """True when two outputs agree: numbers within RELATIVE_TOLERANCE, the rest exactly, whitespace aside."""
    a, b = _tokens(written), _tokens(printed)
    return len(a) == len(b) and all(_same_token(x, y) for x, y in zip(a, b))


# ---------------------------------------------------------------------------------- documents
@dataclass
class Finding:
    path: str
    command: str
    message: str
    rewritten: bool = False      # the regenerated doc fixes it

    def __str__(self):
        return f"{self.path}: `{self.command}`: {self.message}"


def regenerate(path, root=ROOT):
    """(new text of the doc at `path`, findings): every console example's output as printed now."""
    lines = Path(path).read_text().split("\n")
    name = Path(path).relative_to(root).as_posix() if Path(path).is_relative_to(root) else str(path)
    findings, new_lines, done = [], [], 0
    for block in console_blocks(lines):
        new_lines.extend(lines[done:block.start])
        body = []
        for example in block.examples:
            body.extend(example.lines)
            if not example.command.startswith("roofline "):
                body.extend(example.output)          # another program's example: shown as written
                continue
            status, printed = run(example.command, root)
            if status != 0:
                findings.append(Finding(name, example.command, f"exits with status {status}: "
                                        + " | ".join(printed[-3:])))
                body.extend(example.output)
                continue
            if example.status_only:
                body.extend(example.output)
                continue
            rendered, problems = render(example.output, printed)
            findings.extend(Finding(name, example.command, problem) for problem in problems)
            if agree(example.output, rendered):
                body.extend(example.output)
            else:
                diff = "\n".join(difflib.unified_diff(example.output, rendered, "as written", "as printed now",
                                                      lineterm="", n=1))
                findings.append(Finding(name, example.command, "output differs (numbers beyond "
                                        f"{RELATIVE_TOLERANCE:.1%}):\n{diff}", rewritten=True))
                body.extend(rendered)
        new_lines.extend(body)
        done = block.end
    new_lines.extend(lines[done:])
    return "\n".join(new_lines), findings


# ---------------------------------------------------------------------- commands not run (dry)
def command_lines(text):
    """`roofline ...` command lines of a doc outside console blocks: fenced sh/bash/shell blocks,
    indented code lines (continuation lines joined, earlier `cmd &&` steps dropped) and inline code."""
    lines, found, fence = text.split("\n"), [], None
    i = 0
    while i < len(lines):
        line = lines[i]
        match = FENCE.match(line)
        if match:
            fence = None if fence is not None else match.group(1)
            i += 1
            continue
        candidate = fence in ("sh", "bash", "shell") or (fence is None and line.startswith("    "))
        if candidate and "roofline " in line:
            joined = line
            while joined.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                joined = joined.rstrip()[:-1] + " " + lines[i].strip()
            for part in joined.split("&&"):
                part = part.split("#")[0].strip()
                if part.startswith("roofline "):
                    found.append(part)
        i += 1
    for span in re.findall(r"`(roofline [^`]+)`", text):
        found.append(span.replace("\\|", "|"))
    return found


def dry_check(command):
    """None if `command` names an existing roofline command and only options it knows; else why not.

    Placeholders in brackets and `a|b` alternatives are read as the documentation means them; a
    command given without any option (a mention, `roofline validate`) is not checked for required ones.
    """
    import click

    from .cli import cli

    try:
        args = shlex.split(command.replace("[", " ").replace("]", " "))
    except ValueError as exc:
        return f"does not parse as a shell command: {exc}"
    current, path, args = cli, ["roofline"], args[1:]
    while isinstance(current, click.Group) and args:
        name = args[0].split("|")[0]
        if name.startswith("-") and current.invoke_without_command:
            break                                   # the group's own options (`roofline calibrate -c ...`)
        context = click.Context(current)
        sub = current.get_command(context, name)    # commands load lazily: ask, never read .commands
        if sub is None:
            return (f"`{' '.join(path)}` has no subcommand '{args[0]}' "
                    f"(it has {', '.join(current.list_commands(context))})")
        current, path, args = sub, path + [name], args[1:]
    if isinstance(current, click.Group) and not (args and current.invoke_without_command):
        return None
    known = {opt for param in current.params for opt in (*param.opts, *param.secondary_opts)}
    known |= {"-h", "--help"}
    names = {param.name for param in current.params}
    given = set()
    for arg, value in zip(args, [*args[1:], ""]):
        option = arg.split("=")[0]
        if option.startswith("-") and not NUMBER.fullmatch(option):
            if option not in known:
                return f"`{' '.join(path)}` has no option {option}"
            given.add(option)
            wrong = _wrong_choices(current, option, value)
            if wrong:
                return wrong
    if not given or "..." in args or given & {"-h", "--help"}:
        return None
    for param in current.params:
        needed = param.required or param.name in QUESTION_OPTIONS and QUESTION_OPTIONS <= names
        if needed and isinstance(param, click.Option) and not given & set(param.opts):
            return f"`{' '.join(path)}` needs {max(param.opts, key=len)}"
    return None


def _wrong_choices(command, option, listed):
    """Why a documented `a|b|c` list of an option's values is not the option's choices, or None."""
    import click

    param = next((p for p in command.params if option in p.opts), None)
    if param is None or not isinstance(param.type, click.Choice) or "|" not in listed:
        return None
    documented = set(listed.replace("\\|", "|").split("|"))
    if documented != set(param.type.choices):
        return (f"`{command.name} {option}` takes {'|'.join(param.type.choices)}, "
                f"the doc lists {'|'.join(sorted(documented))}")
    return None


def option_table_findings(path, root=ROOT):
    """Choices listed in a command's section (`## roofline CMD`) that are not that option's choices."""
    import click

    from .cli import cli

    name = Path(path).relative_to(root).as_posix() if Path(path).is_relative_to(root) else str(path)
    findings, command = [], None
    for line in Path(path).read_text().split("\n"):
        heading = re.match(r"#+ `?roofline ([a-z ]+?)`?\s*$", line)
        if heading:
            command = cli
            for word in heading.group(1).split():
                command = (command.get_command(click.Context(command), word)
                           if isinstance(command, click.Group) else None)
            continue
        if line.startswith("#"):
            command = None
        if command is None or isinstance(command, click.Group):
            continue
        for option, listed in re.findall(r"`(--[a-z-]+) ([a-z0-9-]+(?:\\?\|[a-z0-9-]+)+)`", line):
            wrong = _wrong_choices(command, option, listed)
            if wrong:
                findings.append(Finding(name, f"roofline {command.name}", wrong))
    return findings


def dry_findings(path, root=ROOT):
    name = Path(path).relative_to(root).as_posix() if Path(path).is_relative_to(root) else str(path)
    return [Finding(name, command, problem) for command in command_lines(Path(path).read_text())
            for problem in [dry_check(command)] if problem]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m roofline.docgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report stale examples and exit 1; write nothing")
    parser.add_argument("files", nargs="*", type=Path, help="docs to process (default: README.md, docs/*.md)")
    options = parser.parse_args(argv)
    files = [path.resolve() for path in options.files] or doc_files()
    stale = False
    for path in files:
        text, findings = regenerate(path)
        findings += dry_findings(path) + option_table_findings(path)
        for finding in findings:
            print(finding, file=sys.stderr)
        changed = text != path.read_text()
        stale |= any(options.check or not finding.rewritten for finding in findings)
        if changed and not options.check:
            path.write_text(text)
            print(f"rewrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
