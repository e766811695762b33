"""The `roofline` command: parses, calls the library, prints. No formula lives here.

Bad input (RooflineError, click usage errors) prints one line, `error: ...`, and exits with 2.
"""
import sys

import click

from ..errors import RooflineError


class RooflineGroup(click.Group):
    """A click group whose errors are one line on stderr with exit status 2, never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            status = super().main(args=args, prog_name=prog_name or "roofline", complete_var=complete_var,
                                  standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(1)
        except click.ClickException as exc:
            message = exc.format_message().replace("\n", " ")
            click.echo(f"error: {message}", err=True)
            sys.exit(exc.exit_code if exc.exit_code != 1 else 2)
        except RooflineError as exc:
            click.echo(f"error: {str(exc).replace(chr(10), ' ')}", err=True)
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


from . import analysis_cmd, calibrate_cmd, import_cmd, measure_cmd, plot_cmd, run_cmd, serve_cmd, solve_cmd, specs_cmd  # noqa: E402,F401  (commands register themselves on `cli`)
