"""The error every text-to-speech engine raises when it is missing or fails."""

from __future__ import annotations

from spotter.errors import SpotterError

__all__ = ["SynthError"]


class SynthError(SpotterError, RuntimeError):
    """A TTS engine is missing or failed; the message says what to install or what happened."""
