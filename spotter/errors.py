"""The error every user-facing failure raises: one line saying what is wrong and what to do.

The CLI prints these as ``spotter: error: <message>`` and exits non-zero,
never with a traceback.
"""


class SpotterError(Exception):
    """Base of the errors whose message is meant for the user."""

    #: The process exit status the CLI returns for it.
    exit_code = 2


class Interrupted(SpotterError):
    """The user stopped a run before its end (Ctrl-C or SIGTERM during training): not a failure.

    Printed as ``spotter: <message>`` (no "error"), exit status 0, as every
    other mode exits on Ctrl-C; the message says what was kept and how to go on.
    """

    exit_code = 0


def one_line_warnings() -> None:
    """Show spotter's own warnings (e.g. a corrupt clip skipped) as one ``spotter: warning:`` line each.

    Python's default format adds the source file, line and a line of code,
    which reads like a traceback; other packages' warnings keep that format.
    """
    import sys
    import warnings

    previous = warnings.showwarning
    if getattr(previous, "_spotter", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if getattr(category, "__module__", "").startswith("spotter"):
            text = " ".join(str(message).split())
            print(f"spotter: warning: {text}", file=file or sys.stderr, flush=True)
        else:
            previous(message, category, filename, lineno, file, line)

    show._spotter = True
    warnings.showwarning = show
