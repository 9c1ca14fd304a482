"""The conditioning room: the EEG -> W encoder, the one bridge between `eeg` and `gan`.

- :mod:`conditioning.encoder`: :class:`~conditioning.encoder.Encoder` (feature rows -> ws),
  saved with its FeatureSpec and the identity of the generator it belongs to.
- :mod:`conditioning.train`: ``python -m conditioning.train`` (``align``, ``pca`` and
  ``joint`` modes; :mod:`conditioning.joint` fine-tunes the generator with EEG latents inside
  ``gan.train``'s loop).
- :mod:`conditioning.render`: ``python -m conditioning.render``, a recorded session rendered
  through the live path's processor and motion.
- :mod:`conditioning.metrics`: responsiveness, coverage and smoothness.

This room never talks to LSL.
"""
