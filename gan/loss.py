"""StyleGAN2 losses: non-saturating logistic loss, lazy R1, lazy path-length regularisation.

Follows Karras et al. 2020 (StyleGAN2, sections 2.2-3.2): the generator minimises
softplus(-D(G(z))) with style mixing; the discriminator minimises softplus(D(G(z))) +
softplus(-D(x)); R1 (Mescheder et al. 2018) penalises gamma/2 * |grad_x D(x)|^2 on real
images; the path-length penalty keeps |J_w^T y| constant. Both regularisers are "lazy": run
every k steps with their weight multiplied by k. The augmentation pipe (ADA) sits in front of
the discriminator for real and generated images alike.

The same class drives the seeds' DCGAN, which has no W space: style mixing and the path
length term then do nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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

    def run_G(self, z: torch.Tensor, c: torch.Tensor | None, *, update_emas: bool = False
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (and their ``ws`` when the generator has a W space) for latents ``z``."""
        G = self.G
        if not hasattr(G, "mapping"):
            return G(z, c), None
        ws = G.mapping(z, c, update_emas=update_emas)  # [N, num_ws, w_dim]
        if self.style_mixing > 0 and torch.rand([]) < self.style_mixing:
            cutoff = int(torch.randint(1, ws.shape[1], []))
            other = G.mapping(torch.randn_like(z), c, update_emas=False)
            ws = torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)
        return G.synthesis(ws), ws

    def run_D(self, img: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if self.augment_pipe is not None:
            img = self.augment_pipe(img)
        return self.D(img, c)

    def g_main(self, z, c) -> tuple[torch.Tensor, dict]:
        """Non-saturating generator loss."""
        img, _ = self.run_G(z, c)
        logits = self.run_D(img, c)
        loss = F.softplus(-logits).mean()
        return loss, {"loss_g": loss.detach(), "scores_fake": logits.detach().mean()}

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

    def d_main(self, real, z, c) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """Discriminator logistic loss; also returns D's logits on the reals (for ADA)."""
        with torch.no_grad():
            fake, _ = self.run_G(z, c, update_emas=True)
        fake_logits = self.run_D(fake, c)
        real_logits = self.run_D(real, c)
        loss_fake = F.softplus(fake_logits).mean()
        loss_real = F.softplus(-real_logits).mean()
        loss = loss_fake + loss_real
        stats = {"loss_d": loss.detach(), "scores_real": real_logits.detach().mean(),
                 "scores_fake": fake_logits.detach().mean()}
        return loss, stats, real_logits.detach()

    def d_r1(self, real, c, gain: float) -> tuple[torch.Tensor, dict]:
        """Lazy R1 penalty on real images, weighted by ``gain`` = interval."""
        real = real.detach().requires_grad_(True)
        logits = self.run_D(real, c)
        (grads,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
        penalty = grads.square().sum(dim=[1, 2, 3]).mean()
        loss = penalty * (self.r1_gamma / 2) * gain
        return loss, {"r1_penalty": penalty.detach()}
