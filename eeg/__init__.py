"""The EEG room: reading recordings, light denoising, features, online processing, synthetic EEG.

Follows MNE-Python's conventions: arrays ``(n_channels, n_times)`` in volts, ``sfreq`` and
``ch_names``; channels are identified by label, never by position. Nothing in this room
imports torch.
"""
