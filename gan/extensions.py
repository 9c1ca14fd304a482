"""Extension points of :class:`gan.train.Trainer`'s one loop.

Other ways of training a generator (the EEG-conditioned joint mode of
:mod:`conditioning.joint`, the seeds' blend of two collections) are not second loops: they are
an :class:`Extension` the trainer calls at fixed places, which may add discriminators
(:class:`Critic`, each with its own data, ADA and R1) and modules the loop optimises
(:class:`Trainable`). :class:`TwoCollectionBlend` is the blend (``gan.train --data-b``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch

from gan.augment import AdaController, AugmentPipe
from gan.loss import FakeBatch, Latents
from neuropaint.validate import NeuropaintError

if TYPE_CHECKING:
    from gan.train import TileSource, Trainer

__all__ = ["Critic", "Extension", "Phase", "Trainable", "TwoCollectionBlend"]

logger = logging.getLogger(__name__)

Phase = Literal["G", "D"]


@dataclass
class Critic:
    """One discriminator and what it owns: its real images, optimiser, augmentation and R1."""

    name: str                          # Checkpoint name: "D" (the main one), "D_B", ...
    D: torch.nn.Module
    data: TileSource                   # The collection it judges against.
    opt: torch.optim.Optimizer
    augment_pipe: AugmentPipe | None
    ada: AdaController | None
    gamma: float                       # R1 weight.


@dataclass
class Trainable:
    """An extra module the loop optimises, in the phases it names."""

    name: str
    module: torch.nn.Module
    opt: torch.optim.Optimizer
    phases: tuple[Phase, ...]          # "G": with the generator; "D": with the critics.


class Extension:
    """A change to what :class:`Trainer`'s one loop trains; every hook is optional.

    The trainer calls :meth:`attach` once, after it has built G, the main critic and the
    optimisers and before it resumes; there the extension adds its critics
    (:meth:`Trainer.add_critic`) and trainable modules (:meth:`Trainer.add_trainable`), whose
    saving and resuming the trainer then handles. Each step it asks :meth:`latents` for the
    G phase's and the D phase's batch (the first extension that answers supplies them), and
    adds :meth:`g_loss` and :meth:`d_loss` to the phases' losses. Anything else that must
    survive a resume (a private random generator, say) goes through :meth:`state_dict`.
    """

    name: str = "extension"
    stats_keys: tuple[str, ...] = ()   # Stats it logs that training.png should plot.

    def attach(self, trainer: Trainer) -> None:
        """Build modules, add critics and trainables."""

    def latents(self, n: int, phase: Phase) -> Latents | None:
        """The latents of ``n`` images for the phase, or None for Gaussian ``z``."""
        return None

    def g_loss(self, fake: FakeBatch) -> tuple[torch.Tensor | None, dict]:
        """An extra term of the generator phase's loss (weighted), and stats to log."""
        return None, {}

    def d_loss(self, fake: FakeBatch) -> tuple[torch.Tensor | None, dict]:
        """An extra term of the discriminator phase's loss (fakes detached), and stats."""
        return None, {}

    def state_dict(self) -> dict:
        """Resume state beyond the trainables (tensors and plain containers only)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`."""

    def snapshot_config(self) -> dict:
        """JSON-ready description stored in each snapshot's config.json."""
        return {}


class TwoCollectionBlend(Extension):
    """The seeds' blend of two collections: one generator, two discriminators.

    A second critic ``D_B`` (its own ADA pipe and p, R1 and optimiser) judges collection B as
    the main critic judges A; the generator's non-saturating loss per image is the larger of
    the two (``reduce='max'``: every image must convince both judges) or their mean. Both
    collections must have the same tile size, so that both judges see the same detail.
    """

    name = "blend"

    def __init__(self, data_b: str, reduce: Literal["max", "mean"]):
        self.data_b = data_b
        self.reduce = reduce

    def attach(self, trainer: Trainer) -> None:
        if trainer.preset.arch == "dcgan":
            logger.warning("blending with a DCGAN: it trains, but the seeds found a DCGAN "
                           "could not blend two collections; StyleGAN2 is recommended")
        critic = trainer.add_critic("D_B", self.data_b, what="--data-b")
        size_a = trainer.data.tiles.img_resolution
        size_b = critic.data.tiles.img_resolution
        if size_a != size_b:
            raise NeuropaintError(
                f"the two collections must share a tile size so that both discriminators see "
                f"the same detail: --data has {size_a} px tiles, --data-b {size_b} px; rebuild "
                f"one of them with --size {size_a}.")
        trainer.reduce = self.reduce

    def snapshot_config(self) -> dict:
        return {"data_b": self.data_b, "reduce": self.reduce}
