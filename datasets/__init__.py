"""The datasets room: the art tile store, procedural paintings and the EEG feature store.

Not built yet: see the open issue "The datasets room". Note: this top-level package
shadows Hugging Face's `datasets`; neuropaint never imports that one.
"""
