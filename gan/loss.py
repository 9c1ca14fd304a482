"""StyleGAN2 losses: non-saturating logistic loss, lazy R1, lazy path-length regularisation.

Follows Karras et al. 2020 (StyleGAN2, sections 2.2-3.2): the generator minimises
softplus(-D(G(z))) with style mixing; the discriminator minimises softplus(D(G(z))) +
softplus(-D(x)); R1 (Mescheder et al. 2018) penalises gamma/2 * |grad_x D(x)|^2 on real
images; the path-length penalty keeps |J_w^T y| constant. Both regularisers are "lazy": run
every k steps with their weight multiplied by k. The augmentation pipe (ADA) sits in front of
the discriminator for real and generated images alike.

Two generalisations serve ``gan.train``'s extension points (see its module notes):

- a batch of latents (:class:`Latents`) may hold ready-made ``ws`` for its first images (an
  EEG encoder's output, say) and Gaussian ``z`` for the rest; style mixing only touches the
  ``z`` part, so a given ``ws`` is rendered exactly as given;
- the generator may be judged by several discriminators ("critics"), each with its own
  augmentation pipe: its per-image loss is then the maximum (or mean) of theirs. Two critics
  on two collections with the maximum is the seeds' way of blending them: an image must
  convince both judges.

The same class drives the seeds' DCGAN, which has no W space: style mixing and the path
length term then do nothing, and ready-made ``ws`` are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import torch
import torch.nn.functional as F

from neuropaint.validate import NeuropaintError, check_option

REDUCTIONS = ("max", "mean")


@dataclass
class Latents:
    """The inputs of one batch of generated images.

    Images ``0 .. len(ws) - 1`` of the batch come from ``ws``, the rest from ``z`` through the
    mapping network. ``extra`` carries whatever the source needs back in its loss terms (the
    EEG feature rows behind ``ws``, for instance); the loss never reads it.
    """

    z: torch.Tensor | None = None   # [N_z, z_dim] Gaussian latents.
    ws: torch.Tensor | None = None  # [N_ws, num_ws, w_dim] ready-made latents.
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_ws(self) -> int:
        return 0 if self.ws is None else int(self.ws.shape[0])

    def __len__(self) -> int:
        return self.n_ws + (0 if self.z is None else int(self.z.shape[0]))


class CriticLike(Protocol):
    """What the loss needs of a discriminator: itself, its name and its augmentation."""

    name: str
    D: torch.nn.Module
    augment_pipe: torch.nn.Module | None


@dataclass
class FakeBatch:
    """Generated images of one phase and what each critic made of them (for extra losses)."""

    img: torch.Tensor                   # [N, C, H, W] in [-1, 1] (detached in the D phase).
    ws: torch.Tensor | None             # [N, num_ws, w_dim] as rendered (None: DCGAN).
    latents: Latents
    logits: dict[str, torch.Tensor]     # Critic name -> [N, 1].
    features: dict[str, torch.Tensor]   # Critic name -> [N, F], D's penultimate activations.


def stat_suffix(name: str) -> str:
    """Stats key suffix of a critic: '' for the main 'D', '_b' for 'D_B'."""
    return "" if name == "D" else "_" + name.split("_", 1)[-1].lower()


class StyleGAN2Loss:
    """Loss terms of one training step; each returns a scalar to backpropagate and its stats."""

    def __init__(
        self,
        G: torch.nn.Module,
        D: torch.nn.Module,
        *,
        augment_pipe: torch.nn.Module | None = None,
        r1_gamma: float = 10.0,           # R1 weight.
        style_mixing: float = 0.9,        # Probability of mixing two latents per batch.
        pl_weight: float = 0.0,           # Path-length weight (0: off).
        pl_batch_shrink: int = 2,         # Path-length minibatch divisor.
        pl_decay: float = 0.01,           # Decay of the running path-length mean.
    ):
        self.G = G
        self.D = D
        self.augment_pipe = augment_pipe
        self.r1_gamma = r1_gamma
        self.style_mixing = style_mixing if hasattr(G, "mapping") else 0.0
        self.pl_weight = pl_weight if hasattr(G, "mapping") else 0.0
        self.pl_batch_shrink = pl_batch_shrink
        self.pl_decay = pl_decay
        self.pl_mean = torch.zeros([])

    def run_G(self, latents: Latents | torch.Tensor, c: torch.Tensor | None, *,
              update_emas: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (and their ``ws`` when the generator has a W space) for a batch of latents.

        ``latents`` is a :class:`Latents` or a plain ``z`` tensor ``[N, z_dim]``.
        """
        if isinstance(latents, torch.Tensor):
            latents = Latents(z=latents)
        G = self.G
        if not hasattr(G, "mapping"):
            if latents.ws is not None:
                raise NeuropaintError(f"a {type(G).__name__} has no W space: it cannot render "
                                      f"ready-made ws.")
            return G(latents.z, c), None
        parts = [] if latents.ws is None else [latents.ws]
        if latents.z is not None and len(latents.z):
            z = latents.z
            c_z = None if c is None else c[latents.n_ws:]
            ws = G.mapping(z, c_z, update_emas=update_emas)  # [N_z, num_ws, w_dim]
            if self.style_mixing > 0 and torch.rand([]) < self.style_mixing:
                cutoff = int(torch.randint(1, ws.shape[1], []))
                other = G.mapping(torch.randn_like(z), c_z, update_emas=False)
                ws = torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)
            parts.append(ws)
        ws = torch.cat(parts) if len(parts) > 1 else parts[0]  # [N, num_ws, w_dim]
        return G.synthesis(ws), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None,
              critic: CriticLike | None = None, *, return_features: bool = False):
        """Logits ``[N, 1]`` of ``critic`` (default: this loss's D) on augmented ``img``."""
        D, pipe = (self.D, self.augment_pipe) if critic is None else (critic.D,
                                                                      critic.augment_pipe)
        if pipe is not None:
            img = pipe(img)
        return D(img, c, return_features=return_features) if return_features else D(img, c)

    def _judge(self, img, c, critics) -> tuple[dict, dict]:
        logits, features = {}, {}
        for critic in critics:
            logits[critic.name], features[critic.name] = self.run_D(img, c, critic,
                                                                    return_features=True)
        return logits, features

    def g_main(self, latents: Latents | torch.Tensor, c,
               critics: Sequence[CriticLike] | None = None,
               reduce: Literal["max", "mean"] = "max", *, update_emas: bool = False
               ) -> tuple[torch.Tensor, dict, FakeBatch]:
        """Non-saturating generator loss; with several critics, per image their max (or mean).

        Returns the loss, its stats, and the :class:`FakeBatch` (images with gradients, each
        critic's logits and features) for extra loss terms. ``update_emas``: these images
        are also the discriminator phase's (see :meth:`d_main`'s ``fake``), so the mapping
        network's running mean of ``w`` learns from them.
        """
        check_option(reduce, "reduce", REDUCTIONS)
        if isinstance(latents, torch.Tensor):
            latents = Latents(z=latents)
        critics = list(critics) if critics else [_Default(self.D, self.augment_pipe)]
        img, ws = self.run_G(latents, c, update_emas=update_emas)
        logits, features = self._judge(img, c, critics)
        per_critic = torch.stack([F.softplus(-logits[k.name]).flatten() for k in critics])
        # [K, N] per-image losses; one critic: the plain StyleGAN2 loss.
        if len(critics) == 1:
            per_image = per_critic[0]
        elif reduce == "max":
            per_image = per_critic.max(dim=0).values
        else:
            per_image = per_critic.mean(dim=0)
        loss = per_image.mean()
        stats = {"loss_g": loss.detach()}
        for k in critics:
            stats["scores_fake" + stat_suffix(k.name)] = logits[k.name].detach().mean()
        if len(critics) > 1:
            # Which judge is the harder one, image by image (max: whose loss G follows).
            hardest = per_critic.argmax(dim=0)  # [N]
            for i, k in enumerate(critics[1:], start=1):
                stats["hardest" + stat_suffix(k.name)] = (hardest == i).float().mean()
        return loss, stats, FakeBatch(img, ws, latents, logits, features)

    def g_path_length(self, z, c, gain: float) -> tuple[torch.Tensor, dict]:
        """Lazy path-length penalty (StyleGAN2 sec. 3.2), weighted by ``gain`` = interval."""
        batch = max(1, z.shape[0] // self.pl_batch_shrink)
        img, ws = self.run_G(z[:batch], None if c is None else c[:batch])
        noise = torch.randn_like(img) / (img.shape[2] * img.shape[3]) ** 0.5
        (grads,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
        lengths = grads.square().sum(2).mean(1).sqrt()  # [batch]
        self.pl_mean = self.pl_mean.to(lengths.device).lerp(lengths.mean().detach(),
                                                            self.pl_decay)
        penalty = (lengths - self.pl_mean).square().mean()
        loss = penalty * self.pl_weight * gain
        return loss, {"pl_penalty": penalty.detach()}

    def d_main(self, real: torch.Tensor | dict[str, torch.Tensor],
               latents: Latents | torch.Tensor, c,
               critics: Sequence[CriticLike] | None = None, *,
               fake: FakeBatch | None = None
               ) -> tuple[torch.Tensor, dict, dict[str, torch.Tensor], FakeBatch]:
        """Discriminator logistic loss, summed over the critics (one fake batch for all).

        ``real`` is a tensor (one critic) or a dict critic name -> its real images. The fake
        images are drawn from ``latents``, unless ``fake`` brings ready ones (the generator
        phase's batch, which saves a generator pass; ``latents`` is then ignored). Returns
        the loss, stats, each critic's logits on its reals (for ADA) and the
        :class:`FakeBatch` (images detached; logits and features with gradients into the
        critics).
        """
        critics = list(critics) if critics else [_Default(self.D, self.augment_pipe)]
        if isinstance(real, torch.Tensor):
            real = {critics[0].name: real}
        if fake is not None:
            latents = fake.latents
            fake, ws = fake.img.detach(), None if fake.ws is None else fake.ws.detach()
        else:
            if isinstance(latents, torch.Tensor):
                latents = Latents(z=latents)
            with torch.no_grad():
                fake, ws = self.run_G(latents, c, update_emas=True)
        fake_logits, fake_features = self._judge(fake, c, critics)
        loss = torch.zeros([], device=fake.device)
        stats, real_logits = {}, {}
        for k in critics:
            logits = self.run_D(real[k.name], c, k)
            loss_fake = F.softplus(fake_logits[k.name]).mean()
            loss_real = F.softplus(-logits).mean()
            loss = loss + loss_fake + loss_real
            s = stat_suffix(k.name)
            stats |= {"loss_d" + s: (loss_fake + loss_real).detach(),
                      "scores_real" + s: logits.detach().mean(),
                      "scores_fake" + s: fake_logits[k.name].detach().mean()}
            real_logits[k.name] = logits.detach()
        return loss, stats, real_logits, FakeBatch(fake, ws, latents, fake_logits, fake_features)

    def d_r1(self, real, c, gain: float, critic: CriticLike | None = None,
             r1_gamma: float | None = None) -> tuple[torch.Tensor, dict]:
        """Lazy R1 penalty on real images, weighted by ``gain`` = interval."""
        real = real.detach().requires_grad_(True)
        logits = self.run_D(real, c, critic)
        (grads,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        penalty = grads.square().sum(dim=[1, 2, 3]).mean()
        gamma = self.r1_gamma if r1_gamma is None else r1_gamma
        loss = penalty * (gamma / 2) * gain
        name = "D" if critic is None else critic.name
        return loss, {"r1_penalty" + stat_suffix(name): penalty.detach()}


@dataclass
class _Default:
    """The loss's own D as a critic (callers that pass no critics)."""

    D: torch.nn.Module
    augment_pipe: torch.nn.Module | None
    name: str = "D"
