"""The live room: LSL source and simulator, render engine, viewer, recording and replay.

Not built yet: see the open issue "The live room". Feature math is never re-implemented
here; it calls `eeg.online`.
"""
