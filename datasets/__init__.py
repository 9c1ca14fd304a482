"""The datasets room: the art tile store, procedural paintings and the EEG feature store.

- :mod:`datasets.art`: ``python -m datasets.art build SRC OUT`` turns a folder of artworks
  into a memory-mapped tile store; :class:`datasets.art.ArtTiles` reads it for training.
- :mod:`datasets.procedural`: the project's own colour-field paintings (demo and tests).
- :mod:`datasets.eeg`: ``python -m datasets.eeg build FILES... OUT``, the EEG feature store.

This room knows about data, not networks. Note: this top-level package shadows Hugging
Face's ``datasets``; neuropaint never imports that one.
"""
