"""The one exception type for user errors (bad files, bad parameters)."""

__all__ = ["UserError"]


class UserError(ValueError):
    """A problem with the user's input: printed as one line, exit status non-zero, no traceback."""
