"""The one exception type for bad input the user can fix (bad files, bad parameters)."""

__all__ = ["UserError"]


class UserError(ValueError):
    """Bad input the user can fix: a file or a parameter, named in the message.

    A ``ValueError``, so that library callers can catch it as one; the ``bs4nn`` command line
    prints it as one line (``bs4nn NAME: error: ...``) and exits with status 1, no traceback.
    """
