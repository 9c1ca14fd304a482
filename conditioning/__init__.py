"""The conditioning room: the EEG -> W encoder, the one bridge between `eeg` and `gan`.

Not built yet: see the open issue "The conditioning room".
"""
