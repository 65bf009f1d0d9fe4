"""The one exception type the command line turns into a one-line error."""


class DigrError(Exception):
    """A user-facing error: bad input, missing file, incompatible checkpoint or dataset."""
