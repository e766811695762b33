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


def excerpt(value, limit=60):
    """A short quotation of `value` for an error message: its repr, cut to about `limit` characters.

    Bounded in time as well as length (reprlib), so a huge or deeply shared value (a YAML alias
    bomb, a 3M-element list) never makes a huge message.
    """
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxlevel, shortener.maxlist, shortener.maxdict, shortener.maxtuple = 3, 6, 6, 6
    shortener.maxstring, shortener.maxother, shortener.maxlong = limit, limit, limit
    text = shortener.repr(value)
    return text if len(text) <= limit + 10 else text[:limit] + "..."
