"""Enrollment: the spotter learns its user's voice and room from a few takes of each keyword.

:mod:`.takes` finds the word in a take; :mod:`.profile` reads and writes recordings and profiles;
:mod:`.adapt` fine-tunes a model on them and re-tunes its detector; :mod:`.record` records
takes through the microphone (guided by :mod:`.ui` or plain prompts).
"""
