"""Training and evaluation data.

* :mod:`spotter.data.download` - fetch Google Speech Commands v2 once (resumable
  download, SHA-256 check, safe extraction) into a user cache folder.
* :mod:`spotter.data.speech_commands` - the 12-class protocol (ten keywords,
  ``unknown``, ``silence``) over any folder in the Speech Commands layout, and a
  :class:`torch.utils.data.Dataset` of 1 s, 16 kHz clips.

Kept free of imports on purpose: importing :mod:`spotter.data` costs nothing.
"""
