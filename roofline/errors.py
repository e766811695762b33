"""Errors that reach a user as one line (the CLI prints them and exits with status 2)."""


class RooflineError(ValueError):
    """Bad input: a spec file, a command-line value or an API argument.

    The message names where the problem is and what was expected; the CLI prints it as one line.
    """


class SpecError(RooflineError):
    """A spec file that cannot be read: `where` is the file (and field), `what` the problem."""

    def __init__(self, where, what):
        self.where = str(where)
        self.what = what
        super().__init__(f"{where}: {what}")
