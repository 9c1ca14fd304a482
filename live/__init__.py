"""The live room: a headset (or the simulator) on LSL, painted in real time.

- :mod:`live.source`: :class:`~live.source.LSLSource`, a stream read into a ring buffer by a
  daemon thread (never blocks, volts, local-clock timestamps, stall report and recovery).
- :mod:`live.simulate`: ``python -m live.simulate``, the simulated headset of the demo and
  the tests (synthetic brain states or a recording, on a real LSL outlet).
- :mod:`live.engine`: :class:`~live.engine.Engine`, source -> ``eeg.online`` ->
  ``conditioning.follow`` (encoder, calibration, artifact gating, :mod:`conditioning.motion`) ->
  generator -> sinks, at a steady frame rate with measured frame ages.
- :mod:`live.viewer`: the web page with the painting, band meters, fps and latency.
- :mod:`live.record` / :mod:`live.replay`: sessions recorded as they happen, re-rendered later.
- :mod:`live.render`: ``python -m live.render``, the performance (the demo with no arguments).
- :mod:`live.demo`: the bundled demo model and the command that makes it.

Feature math is never re-implemented here: it calls ``eeg.online``.
"""
