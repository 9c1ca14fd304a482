"""Widen a trained discriminator without changing what it computes (Net2WiderNet).

A discriminator with more channels per resolution can judge finer detail, and a generator
trained against a narrow one can keep training against a wider one, provided the wider one
starts out judging exactly as the narrow one did. :func:`widen_discriminator` copies the
narrow network into the wide one so that:

- every old weight sits where it sat, rescaled so that the equalised learning rate's run-time
  gain (``1 / sqrt(fan_in)``, :mod:`gan.ops`) gives the same product for the larger fan-in;
- each new channel computes a fresh, random feature (its incoming weights keep the wide
  network's initialisation), which no old channel reads yet: the weights from new inputs into
  old outputs are zero.

The logits are therefore the same (to float rounding), and the zero weights get gradients
from the first step, so the new channels join in as training goes on. Chen, Goodfellow &
Shlens, "Net2Net: Accelerating learning via knowledge transfer", ICLR 2016, widen with copies
of old units; zero outgoing weights do the same job without splitting any unit.
"""

from __future__ import annotations

import torch
from torch import nn

from gan.networks import Discriminator
from gan.ops import Conv2dLayer, FullyConnectedLayer
from neuropaint.validate import NeuropaintError

# Constructor arguments that may differ between the narrow and the wide discriminator.
WIDTH_KWARGS = {"channel_base", "channel_max"}


def widen_discriminator(narrow: Discriminator, wide: Discriminator) -> list[str]:
    """Fill ``wide`` from ``narrow`` so that both give the same logits; returns the widened
    layers' names. Raises NeuropaintError, in one line, when ``wide`` is not ``narrow`` with
    more channels (another resolution, label size, or fewer channels anywhere)."""
    if type(narrow) is not type(wide) or not isinstance(wide, Discriminator):
        raise NeuropaintError("only a Discriminator can be widened into a Discriminator.")
    differing = sorted(k for k in set(narrow.init_kwargs) | set(wide.init_kwargs)
                       if narrow.init_kwargs.get(k) != wide.init_kwargs.get(k))
    if set(differing) - WIDTH_KWARGS:
        raise NeuropaintError(f"the discriminators differ in more than width: {differing}.")
    if narrow.b4.in_channels != wide.b4.in_channels:
        # The minibatch-stddev feature is the last channel at 4x4: widening there would
        # move it. Every preset keeps channel_max at 4x4, where this never happens.
        raise NeuropaintError(f"the discriminators differ in width at 4x4 "
                              f"({narrow.b4.in_channels} and {wide.b4.in_channels} channels).")
    narrow_modules = dict(narrow.named_modules())
    pairs = [(name, narrow_modules[name], module) for name, module in wide.named_modules()
             if isinstance(module, (Conv2dLayer, FullyConnectedLayer))]
    # Every layer is checked before any is written: a refusal leaves ``wide`` as it was.
    for name, source, target in pairs:
        old, new = source.weight.shape, target.weight.shape
        if len(old) != len(new) or any(o > n for o, n in zip(old, new, strict=True)):
            raise NeuropaintError(f"layer {name} is narrower in the wide discriminator "
                                  f"({list(old)} into {list(new)}).")
    with torch.no_grad():
        return [name for name, source, target in pairs if _copy_layer(source, target)]


def _copy_layer(source: nn.Module, target: nn.Module) -> bool:
    """Copy one layer's weight and bias into the corner of the wider ones; True if wider."""
    old, new = source.weight, target.weight
    if old.shape == new.shape:
        target.load_state_dict(source.state_dict())
        return False
    out_old, in_old = old.shape[:2]
    # weight_gain is proportional to 1 / sqrt(fan_in): keep weight * gain for the old part.
    new[:out_old, :in_old] = old * (source.weight_gain / target.weight_gain)
    new[:out_old, in_old:] = 0  # old outputs do not read the new inputs (yet)
    if source.bias is not None:
        target.bias[:out_old] = source.bias
    return True
