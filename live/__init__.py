"""The live room: LSL source and simulator, render engine, viewer, recording and replay.

Built so far: :mod:`live.motion` (the smooth path through W, shared with the offline
renderer). The rest is the open live-room issue. Feature math is never re-implemented here;
it calls `eeg.online`.
"""
