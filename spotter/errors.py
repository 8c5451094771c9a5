"""The error every user-facing failure raises: one line saying what is wrong and what to do.

The CLI prints these as ``spotter: error: <message>`` and exits non-zero,
never with a traceback.
"""


class SpotterError(Exception):
    """Base of the errors whose message is meant for the user."""
