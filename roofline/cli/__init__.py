"""The `roofline` command: parses, calls the library, prints. No formula lives here.

Bad input (RooflineError, click usage errors) prints one line, `error: ...`, and exits with 2.

Nothing else reaches the user as a traceback: an unexpected exception is one line, `internal
error: ...`, with exit status 2 (a last resort; each cause is fixed where it arises), and numpy's
floating-point warnings are not printed next to the answer or the error line.
"""
import sys
import warnings

import click

from ..errors import RooflineError

#: the longest error line printed [characters]; messages quote short excerpts of bad values, this
#: bounds whatever slips through
MAX_MESSAGE = 1000


def _one_line(message):
    text = " ".join(str(message).split("\n"))
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + " ..."


#: the modules of roofline.cli that define each command and its subcommands (commands register
#: themselves on `cli` when their module is imported). Only the modules of the command run are
#: imported, so `roofline decode` does not pay for calibrate's, solve's or serve's imports; a
#: command missing here still works, found by importing every module.
COMMAND_MODULES = {"decode": ("run_cmd",), "prefill": ("run_cmd",), "explain": ("analysis_cmd",),
                   "sweep": ("analysis_cmd",), "calibrate": ("calibrate_cmd",), "validate": ("calibrate_cmd",),
                   "measure": ("measure_cmd",), "model": ("import_cmd",), "solve": ("solve_cmd", "serve_cmd"),
                   "compare": ("solve_cmd",), "list": ("specs_cmd",), "show": ("specs_cmd",),
                   "serve": ("serve_cmd",), "plot": ("plot_cmd",)}


def _import_commands(name=None):
    """Import the modules defining command `name` (every command module if None or unknown)."""
    import importlib

    modules = COMMAND_MODULES[name] if name in COMMAND_MODULES else sorted(set(sum(COMMAND_MODULES.values(), ())))
    for module in modules:
        importlib.import_module(f"{__name__}.{module}")


class RooflineGroup(click.Group):
    """A click group whose errors are one line on stderr with exit status 2, never a traceback, and
    whose commands are imported when first asked for (COMMAND_MODULES)."""

    def get_command(self, ctx, cmd_name):
        if cmd_name not in self.commands:
            _import_commands(cmd_name)
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in COMMAND_MODULES:
            _import_commands()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx):
        _import_commands()
        return super().list_commands(ctx)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        try:
            status = super().main(args=args, prog_name=prog_name or "roofline", complete_var=complete_var,
                                  standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            click.echo(f"error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code if exc.exit_code != 1 else 2)
        except RooflineError as exc:
            click.echo(f"error: {_one_line(exc)}", err=True)
            sys.exit(2)
        except RecursionError:
            click.echo("internal error: input nested too deeply", err=True)
            sys.exit(2)
        except Exception as exc:  # noqa: BLE001  (the contract: never a traceback)
            click.echo(f"internal error: {exc.__class__.__name__}: {_one_line(exc)[:300]}", err=True)
            sys.exit(2)
        sys.exit(status if isinstance(status, int) else 0)


@click.group(cls=RooflineGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="roofline")
def cli():
    """Analytical roofline cost model of LLM inference.

    Decode and prefill times, tokens/s per user and in aggregate, memory- vs compute-bound
    verdicts, from unit-checked chip and model specs.
    """


def main(argv=None):
    cli.main(args=argv)
