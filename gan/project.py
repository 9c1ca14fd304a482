"""``python -m gan.project``: find the latent of an artwork in a StyleGAN2 generator's W space.

Follows the projection of Karras et al. 2020, "Analyzing and Improving the Image Quality of
StyleGAN" (StyleGAN2), sec. 5 and appendix D: Adam on a latent and on the per-layer noise
maps, the learning rate ramped up over the first 5 % of the steps and down along a cosine over
the last 25 %, Gaussian noise added to the latent early on (its scale, a fraction of w's
spread, decays quadratically to zero at 75 % of the steps) so the search first explores, then
settles, and the noise maps kept white by a penalty on their autocorrelation at every octave
down to 8x8 plus renormalisation to zero mean and unit variance after every step. Departures:

- Distance. The paper uses LPIPS, whose VGG weights would have to be downloaded; neuropaint
  downloads nothing. The distance here is multi-scale pixel L1 + L2 (full, 1/2 and 1/4
  resolution), a structure term ``1 - SSIM`` (Wang et al. 2004) and, when the snapshot has its
  discriminator D, a feature distance on D's block activations (unit-normalised per position
  and compared as LPIPS compares VGG's, Zhang et al. 2018): D saw the same art in training.
  Both images are clipped to [-1, 1] first, as the saved 8-bit images are, with a
  straight-through gradient.
- Schedule. 500 steps rather than 1000 (CPU), and latent noise of 0.01 rather than 0.05 times
  w's spread: with pixel distances and short runs the paper's exploration cost more than it
  found. Measured: a tiny generator's own images came back at 30-36 dB (w+) with 0.01 and
  28-33 dB with 0.05; on the demo generator's paintings the two were within 1 dB either way.
- Space. ``w`` optimises one w broadcast to all ``num_ws`` layers, as the paper does (the
  latent stays in the distribution the live engine moves through); ``w+`` optimises one w per
  layer (Abdal et al. 2019, "Image2StyleGAN"): closer reconstructions, latents further from W.

The search starts from the best of ``init_samples`` mapped z's (and the mean w), judged by
the pixel distance at quarter resolution; the noise maps start as the generator's own constant
noise. Reported figures are of ``ws`` rendered with the generator's own noise, i.e. what the
saved ``ws`` give anywhere else; the optimised noise maps only help the search (for the demo
generator, whose noise strengths are small, they change the result by under 0.1 dB).

From Python (``conditioning`` builds a performer's targets from artworks this way)::

    from gan.project import project
    result = project(G, artwork_uint8, space="w", steps=300)   # any size; centre-cropped
    result.ws           # float32 [num_ws, w_dim]: render with G.synthesis(ws[None])
    result.psnr, result.ssim

Nothing in this module configures logging, threads or the device at import.

Command line::

    python -m gan.project live/demo_model/generator painting.jpg --out projected/
    python -m gan.project runs/mine art/ --out projected/ --space w --steps 1000

writes, per image, ``NAME_ws.npy`` (float32 ``[num_ws, w_dim]``; ``np.load(...)[None]`` is
the ``ws`` batch ``G.synthesis`` and ``gan.generate --w`` take), ``NAME_projection.png`` (target |
reconstruction) and a ``projection.json`` summary, each atomically and as soon as that image
is done: Ctrl-C keeps every finished image.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from gan.checkpoint import load_generator, load_network, resolve_snapshot, weights_hash
from gan.images import to_uint8
from gan.upscale import _expand_inputs, psnr, ssim  # the project's one PSNR and SSIM
from gan.upscale.metrics import ssim_map_from
from neuropaint.atomic import atomic_path, write_json
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, build_config, check_int

__all__ = [
    "DEFAULT_STEPS",
    "SPACES",
    "ProjectionConfig",
    "ProjectionResult",
    "fit_image",
    "main",
    "project",
    "read_image",
]

SPACES = ("w", "w+")
DEFAULT_STEPS = 500  # The demo generator: about 20 s per image on an idle 2-core CPU.
W_STD_SAMPLES = 2000  # Mapped z's that estimate w's mean and spread (mapping only: cheap).
SSIM_WINDOW = 11  # Wang et al. 2004: an 11x11 Gaussian window, sigma 1.5.
SSIM_SIGMA = 1.5


class ProjectionConfig(BaseModel):
    """Settings of one projection; see the module docstring for where they leave the paper."""

    model_config = ConfigDict(extra="forbid")

    space: Literal["w", "w+"] = Field(
        "w+", description="'w': one w for every layer; 'w+': one w per layer (closer fit).")
    steps: int = Field(DEFAULT_STEPS, ge=1, description="Optimisation steps.")
    seed: int = Field(0, ge=0, description="Seed of the starting samples and the latent noise.")
    init_samples: int = Field(
        64, ge=0, description="Mapped z's rendered to pick the start from (0: start at the "
        "mean w).")
    lr: float = Field(0.1, gt=0, description="Peak Adam learning rate (the paper's 0.1).")
    lr_rampup: float = Field(0.05, ge=0, le=1, description="Fraction of steps ramping lr up.")
    lr_rampdown: float = Field(0.25, gt=0, le=1,
                               description="Fraction of steps ramping lr down (cosine).")
    initial_noise_factor: float = Field(
        0.01, ge=0, description="Noise added to the latent at the start, times w's std.")
    noise_ramp: float = Field(0.75, gt=0, le=1,
                              description="Fraction of steps over which that noise fades out.")
    optimize_noise: bool = Field(True, description="Optimise the per-layer noise maps too.")
    noise_regularize: float = Field(1e5, ge=0,
                                    description="Weight of the noise-map autocorrelation penalty.")
    pixel_scales: int = Field(3, ge=1, description="Octaves of the pixel L1 + L2 terms.")
    l1_weight: float = Field(1.0, ge=0, description="Weight of the pixel L1 term.")
    l2_weight: float = Field(1.0, ge=0, description="Weight of the pixel L2 term.")
    ssim_weight: float = Field(0.3, ge=0, description="Weight of the 1 - SSIM term.")
    feature_weight: float = Field(1.0, ge=0,
                                  description="Weight of D's feature distance (when D is given).")


@dataclass(frozen=True)
class ProjectionResult:
    """What :func:`project` found for one image.

    ``image``, ``psnr`` and ``ssim`` describe ``ws`` rendered with the generator's own
    constant noise, which is what ``ws`` alone gives anywhere else (``gan.generate --w``, the
    live engine). ``noise_psnr`` and ``noise_ssim`` describe the rendering with the optimised
    noise maps in ``noise`` (the paper's reconstruction); for the bundled demo generator the
    two differ by under 0.1 dB, its noise strengths being small.
    """

    ws: np.ndarray  # float32 [num_ws, w_dim]: the latent (in 'w' space all rows are equal).
    image: np.ndarray  # uint8 [R, R, 3]: ws rendered with the generator's own noise.
    psnr: float  # dB of ``image`` against ``target`` (8-bit RGB).
    ssim: float  # SSIM of ``image`` against ``target`` (Wang et al. 2004, mean over RGB).
    target: np.ndarray  # uint8 [R, R, 3]: the image as fitted to the generator.
    space: str  # 'w' or 'w+'.
    steps: int  # Optimisation steps run.
    noise: dict[str, np.ndarray] = field(default_factory=dict)  # Layer -> optimised map [r, r].
    noise_psnr: float = math.nan  # PSNR with the optimised noise maps (= psnr without them).
    noise_ssim: float = math.nan  # SSIM of the same.


# --------------------------------------------------------------------------------------------
# Images in
# --------------------------------------------------------------------------------------------
def read_image(path: str | Path) -> np.ndarray:
    """An image file as uint8 RGB ``[H, W, 3]`` through :mod:`datasets.imageio`.

    Any format PIL reads; EXIF orientation applied; transparency composited over white.

    Raises
    ------
    datasets.imageio.BadImage
        With a reason code, for a file that is not a usable image.
    OSError
        For a file that cannot be read at all.
    """
    from datasets.imageio import UNSUPPORTED_SUFFIXES, BadImage, decode

    path = Path(path)
    kind = UNSUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is not None:
        raise BadImage("unsupported-format", f"{kind} files are not read: export the work as "
                       f"PNG or JPEG")
    image, _ = decode(path.read_bytes(), background=(255, 255, 255))
    return np.array(image)


def fit_image(image: np.ndarray, resolution: int) -> np.ndarray:
    """Centre-crop ``image`` (uint8 ``[H, W, 3]``) to a square and resize it to ``resolution``."""
    _check_image(image)
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = image[top : top + side, left : left + side]
    if side == resolution:
        return np.ascontiguousarray(square)
    resized = Image.fromarray(square).resize((resolution, resolution), Image.Resampling.LANCZOS,
                                             reducing_gap=3.0)
    return np.array(resized)


def _check_image(image: object) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        got = (f"{image.dtype} {list(image.shape)}" if isinstance(image, np.ndarray)
               else type(image).__name__)
        raise NeuropaintError(f"'image' must be a uint8 array [H, W, 3], got {got}.")


def _to_tensor(image: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [H, W, 3] -> float [1, 3, H, W] in [-1, 1]."""
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).to(device)  # a writable copy
    return x.permute(2, 0, 1)[None].float() / 127.5 - 1  # [1, 3, H, W]


# --------------------------------------------------------------------------------------------
# The distance
# --------------------------------------------------------------------------------------------
def _gaussian_window(device: torch.device) -> torch.Tensor:
    g = torch.arange(SSIM_WINDOW, dtype=torch.float32, device=device) - SSIM_WINDOW // 2
    g = torch.exp(-0.5 * (g / SSIM_SIGMA) ** 2)
    return g / g.sum()


def ssim_loss(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM`` of images ``[N, C, H, W]`` in [-1, 1], differentiable.

    The same definition as :func:`gan.upscale.ssim` (the metric this module reports), which
    rounds to 8-bit levels in float64 and so has no gradient; this twin stays in float32 on
    the [0, 1] range and is what the optimiser follows.
    """
    x = (x + 1) / 2
    y = (y + 1) / 2
    C = x.shape[1]
    k = window.numel()
    rows = window.view(1, 1, k, 1).repeat(C, 1, 1, 1)  # [C, 1, k, 1] depthwise, separable
    cols = window.view(1, 1, 1, k).repeat(C, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, rows, groups=C), cols, groups=C)  # "valid" windows

    return 1 - ssim_map_from(blur, x, y, data_range=1.0).mean()


def _d_features(D: torch.nn.Module, img: torch.Tensor) -> list[torch.Tensor]:
    """The activations after each of D's blocks, unit-normalised along channels (as LPIPS)."""
    feats = []
    x = None
    for res in D.block_resolutions:
        x = getattr(D, f"b{res}")(x, img)  # [N, C, res/2, res/2]
        f = x.float()
        feats.append(f / (f.square().sum(dim=1, keepdim=True) + 1e-10).sqrt())
    return feats


class _Distance:
    """The projection loss against one target image ``[1, 3, R, R]`` in [-1, 1]."""

    def __init__(self, target: torch.Tensor, cfg: ProjectionConfig, D: torch.nn.Module | None):
        self.cfg = cfg
        self.D = D
        self.window = _gaussian_window(target.device)
        self.targets = self._pyramid(target)
        self.use_ssim = cfg.ssim_weight > 0 and min(target.shape[2:]) >= SSIM_WINDOW
        self.target_feats = None
        if D is not None and cfg.feature_weight > 0:
            with torch.no_grad():
                self.target_feats = _d_features(D, target)

    def _pyramid(self, img: torch.Tensor) -> list[torch.Tensor]:
        levels = [img]
        for _ in range(self.cfg.pixel_scales - 1):
            if min(levels[-1].shape[2:]) < 2:
                break
            levels.append(F.avg_pool2d(levels[-1], 2))
        return levels

    def __call__(self, img: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        terms = {}
        pix = torch.zeros((), device=img.device)
        for level, target in zip(self._pyramid(img), self.targets, strict=False):
            diff = level - target
            pix = pix + cfg.l1_weight * diff.abs().mean() + cfg.l2_weight * diff.square().mean()
        terms["pixel"] = pix / len(self.targets)
        if self.use_ssim:
            terms["ssim"] = cfg.ssim_weight * ssim_loss(img, self.targets[0], self.window)
        if self.target_feats is not None:
            feats = _d_features(self.D, img)
            dist = sum((f - t).square().sum(dim=1).mean()
                       for f, t in zip(feats, self.target_feats, strict=True))
            terms["features"] = cfg.feature_weight * dist / len(feats)
        return terms


def _noise_regularization(noise_maps: Sequence[torch.Tensor]) -> torch.Tensor:
    """StyleGAN2 appendix D: squared autocorrelation at one-pixel shifts, at every octave."""
    reg = torch.zeros((), device=noise_maps[0].device)
    for v in noise_maps:
        noise = v[None, None]  # [1, 1, r, r]
        while True:
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=3)).mean() ** 2
            reg = reg + (noise * torch.roll(noise, shifts=1, dims=2)).mean() ** 2
            if noise.shape[2] <= 8:
                break
            noise = F.avg_pool2d(noise, kernel_size=2)
    return reg


# --------------------------------------------------------------------------------------------
# Projection
# --------------------------------------------------------------------------------------------
def _check_networks(G: torch.nn.Module, D: torch.nn.Module | None) -> None:
    if not (hasattr(G, "mapping") and hasattr(G, "synthesis") and hasattr(G, "num_ws")):
        raise NeuropaintError(f"projection needs a StyleGAN2 generator (with a W space); got a "
                              f"{type(G).__name__}.")
    if G.c_dim > 0:
        raise NeuropaintError(f"projection needs an unconditional generator (c_dim=0); this one "
                              f"has c_dim={G.c_dim}.")
    if D is not None and (getattr(D, "img_resolution", None) != G.img_resolution
                          or not hasattr(D, "block_resolutions")):
        raise NeuropaintError(f"'D' must be the StyleGAN2 discriminator of this generator "
                              f"({G.img_resolution} px); got a {type(D).__name__}.")


@torch.no_grad()
def _starting_w(G: torch.nn.Module, target: torch.Tensor, cfg: ProjectionConfig
                ) -> tuple[torch.Tensor, float]:
    """The start (the best of the mean w and ``init_samples`` mapped z's) and w's spread."""
    device = target.device
    generator = torch.Generator().manual_seed(cfg.seed)
    count = max(W_STD_SAMPLES, cfg.init_samples)
    z = torch.randn([count, G.z_dim], generator=generator).to(device)
    w = torch.cat([G.mapping(z[i : i + 500], None)[:, 0] for i in range(0, count, 500)])
    w_avg = w.mean(dim=0, keepdim=True)  # [1, w_dim]
    # The paper's scalar spread: RMS distance of a sample from the mean.
    w_std = float(((w - w_avg).square().sum() / count).sqrt())
    candidates = torch.cat([w_avg, w[: cfg.init_samples]])  # [1 + S, w_dim]
    if len(candidates) == 1:
        return w_avg, w_std
    small = F.avg_pool2d(target, 4) if min(target.shape[2:]) >= 16 else target
    best, best_dist = 0, math.inf
    for i in range(0, len(candidates), 16):
        ws = candidates[i : i + 16, None].repeat(1, G.num_ws, 1)  # [B, num_ws, w_dim]
        img = G.synthesis(ws, noise_mode="const").clamp(-1, 1)  # [B, 3, R, R]
        if small is not target:
            img = F.avg_pool2d(img, 4)
        dist = (img - small).square().mean(dim=(1, 2, 3))  # [B]
        j = int(dist.argmin())
        if float(dist[j]) < best_dist:
            best, best_dist = i + j, float(dist[j])
    return candidates[best : best + 1], w_std


def _lr_at(t: float, cfg: ProjectionConfig) -> float:
    """The paper's schedule: linear ramp-up, cosine ramp-down; ``t`` in [0, 1)."""
    ramp = min(1.0, (1.0 - t) / cfg.lr_rampdown)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if cfg.lr_rampup > 0:
        ramp *= min(1.0, t / cfg.lr_rampup)
    return cfg.lr * ramp


def _metrics(image: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    a = _to_tensor(image, torch.device("cpu"))
    b = _to_tensor(target, torch.device("cpu"))
    return float(psnr(a, b)[0]), float(ssim(a, b)[0])


def _to_uint8(img: torch.Tensor) -> np.ndarray:
    return to_uint8(img.detach())[0]


def project(
    G: torch.nn.Module,
    image: np.ndarray,
    *,
    space: str | None = None,
    steps: int | None = None,
    D: torch.nn.Module | None = None,
    seed: int | None = None,
    config: ProjectionConfig | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> ProjectionResult:
    """Find the latent whose rendering by ``G`` best matches ``image``.

    Parameters
    ----------
    G : gan.networks.Generator
        An unconditional StyleGAN2 generator. Runs on ``G``'s device. Neither ``G`` nor ``D``
        is changed in any way (no gradients land in them; the noise maps are optimised in a
        copy of the synthesis network), so a model in use elsewhere can be passed.
    image : ndarray, shape (H, W, 3), uint8
        The artwork, any size: centre-cropped to a square and resized to ``G.img_resolution``.
    space : {'w', 'w+'} | None
        One w for all layers, or one per layer. None: ``config``'s (default ``'w+'``).
    steps : int | None
        Optimisation steps. None: ``config``'s (default :data:`DEFAULT_STEPS`).
    D : gan.networks.Discriminator | None
        The snapshot's discriminator, on ``G``'s device: adds its feature distance.
    seed : int | None
        Seed of the starting samples and the latent noise. None: ``config``'s (default 0).
    config : ProjectionConfig | None
        Every other setting; ``space``, ``steps`` and ``seed`` override its values.
    progress : callable | None
        Called after every step with ``(step, loss)``.

    Returns
    -------
    ProjectionResult
        ``ws`` float32 ``[num_ws, w_dim]``, the reconstruction, its PSNR and SSIM.
    """
    overrides = {k: v for k, v in (("space", space), ("steps", steps), ("seed", seed))
                 if v is not None}
    cfg = build_config(ProjectionConfig, config.model_dump() if config else {}, **overrides)
    _check_networks(G, D)
    device = next(G.parameters()).device
    target_u8 = fit_image(image, G.img_resolution)
    target = _to_tensor(target_u8, device)  # [1, 3, R, R]
    if D is not None and next(D.parameters()).device != device:
        raise NeuropaintError(f"'D' must be on the generator's device ({device}), got "
                              f"{next(D.parameters()).device}.")
    distance = _Distance(target, cfg, D)

    w_start, w_std = _starting_w(G, target, cfg)  # [1, w_dim]
    n_opt = G.num_ws if cfg.space == "w+" else 1
    w_opt = w_start[:, None].repeat(1, n_opt, 1).clone().requires_grad_(True)  # [1, n, w_dim]
    synthesis = G.synthesis
    noise_maps: dict[str, torch.Tensor] = {}
    if cfg.optimize_noise:
        # A private copy whose constant noise maps become the optimised tensors: G itself is
        # left alone (the live engine may be rendering with it right now).
        synthesis = copy.deepcopy(G.synthesis).requires_grad_(False)
        for name, layer in synthesis.named_modules():
            if getattr(layer, "use_noise", False):
                buf = layer.noise_const.detach().clone().to(device)
                buf.sub_(buf.mean()).mul_(buf.square().mean().rsqrt())  # zero mean, unit var
                layer.noise_const = buf.requires_grad_(True)  # replaces the registered buffer
                noise_maps[name] = layer.noise_const
    params = [w_opt, *noise_maps.values()]
    optimizer = torch.optim.Adam(params, betas=(0.9, 0.999), lr=cfg.lr)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)

    for step in range(cfg.steps):
        t = step / cfg.steps
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(t, cfg)
        noise_scale = w_std * cfg.initial_noise_factor * max(0.0, 1.0 - t / cfg.noise_ramp) ** 2
        w_noise = torch.randn(w_opt.shape, generator=generator, device=device) * noise_scale
        ws = (w_opt + w_noise).expand(-1, G.num_ws, -1)  # [1, num_ws, w_dim]
        img = synthesis(ws, noise_mode="const")  # [1, 3, R, R]
        # Images are compared as they will be saved, clipped to [-1, 1] (8-bit), with a
        # straight-through gradient: against the clipped target (white paper, black ink) the
        # raw output of the true latent overshoots and would be a worse fit than a dimmer one;
        # a plain clamp would leave overshooting pixels without any gradient at all.
        img = img + (img.clamp(-1, 1) - img).detach()
        terms = distance(img)
        loss = sum(terms.values())
        if noise_maps and cfg.noise_regularize > 0:
            loss = loss + cfg.noise_regularize * _noise_regularization(list(noise_maps.values()))
        # Gradients for the latent and the noise maps only: none land in G or D.
        grads = torch.autograd.grad(loss, params)
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad
        optimizer.step()
        with torch.no_grad():  # keep every noise map white: zero mean, unit variance
            for buf in noise_maps.values():
                buf.sub_(buf.mean()).mul_(buf.square().mean().rsqrt())
        if progress is not None:
            progress(step + 1, float(loss.detach()))

    with torch.no_grad():
        ws = w_opt.detach().expand(-1, G.num_ws, -1)  # [1, num_ws, w_dim]
        image_u8 = _to_uint8(G.synthesis(ws, noise_mode="const"))
        noisy_u8 = _to_uint8(synthesis(ws, noise_mode="const")) if noise_maps else image_u8
    psnr_db, ssim_value = _metrics(image_u8, target_u8)
    noise_psnr, noise_ssim = _metrics(noisy_u8, target_u8) if noise_maps \
        else (psnr_db, ssim_value)
    return ProjectionResult(
        ws=ws[0].cpu().numpy().astype(np.float32), image=image_u8, psnr=psnr_db, ssim=ssim_value,
        target=target_u8, space=cfg.space, steps=cfg.steps,
        noise={k: v.detach().cpu().numpy() for k, v in noise_maps.items()},
        noise_psnr=noise_psnr, noise_ssim=noise_ssim,
    )


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------
def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise NeuropaintError("'--device cuda' was asked for, but no CUDA device is available; "
                              "use --device cpu or auto.")
    return torch.device(name)


def _unique_name(stem: str, taken: set[str]) -> str:
    name, k = stem, 2
    while name in taken:  # a.jpg and a.png keep two projections
        name = f"{stem}-{k}"
        k += 1
    taken.add(name)
    return name


def _save_outputs(result: ProjectionResult, out: Path, name: str) -> tuple[Path, Path]:
    ws_path = out / f"{name}_ws.npy"
    with atomic_path(ws_path) as tmp:
        np.save(tmp, result.ws)
    side_by_side = np.concatenate([result.target, result.image], axis=1)  # [R, 2R, 3]
    png_path = out / f"{name}_projection.png"
    with atomic_path(png_path) as tmp:
        Image.fromarray(side_by_side).save(tmp, format="PNG")
    return ws_path, png_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gan.project",
        description="Project artworks into a StyleGAN2 generator's W space (StyleGAN2 paper, "
        "sec. 5): for each image, NAME_ws.npy (float32 [num_ws, w_dim]), NAME_projection.png "
        "(target | reconstruction) and a projection.json summary are written to --out.",
    )
    parser.add_argument("generator", help="GAN snapshot folder, or a run folder (its latest "
                        "snapshot); its discriminator, when saved, adds a feature distance")
    parser.add_argument("images", nargs="+", metavar="IMAGE",
                        help="image files (any format PIL reads), or folders of them")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--space", choices=SPACES, default="w+",
                        help="'w': one w for all layers (stays in the generator's "
                        "distribution); 'w+': one per layer (closer reconstruction) "
                        "(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                        help="optimisation steps per image (default: %(default)s, about 20 s "
                        "per image for the 64 px demo generator on an idle 2-core CPU)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the starting samples and the latent noise (default: "
                        "%(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to optimise: auto picks CUDA when there is one "
                        "(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch, 0: torch's default (default: %(default)s); "
                        "use 1 on a busy shared machine, where two threads spinning against "
                        "other work ran the demo generator 4-6x slower than one")
    parser.add_argument("--no-discriminator", action="store_true",
                        help="pixels and SSIM only, even when the snapshot keeps its "
                        "discriminator: for art that D never saw (the bundled demo's D saw "
                        "procedural paintings; on 4 real paintings its features cost 0.6 dB)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bars (the per-image PSNR/SSIM lines still print)")
    return parser


def _project_file(G: torch.nn.Module, D: torch.nn.Module | None, image: np.ndarray,
                  cfg: ProjectionConfig, name: str, quiet: bool) -> ProjectionResult:
    """:func:`project` with a progress bar (unless ``quiet``)."""
    if quiet:
        return project(G, image, D=D, config=cfg)
    from tqdm import tqdm

    with tqdm(total=cfg.steps, desc=name, unit="step", leave=False, dynamic_ncols=True) as bar:
        def progress(step: int, loss: float) -> None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)

        return project(G, image, D=D, config=cfg, progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    from datasets.imageio import BadImage

    args = _parser().parse_args(argv)
    setup_logging("WARNING")
    check_int(args.steps, "--steps", minimum=1)
    check_int(args.seed, "--seed", minimum=0)
    if check_int(args.threads, "--threads", minimum=0) > 0:
        torch.set_num_threads(args.threads)
    cfg = build_config(ProjectionConfig, space=args.space, steps=args.steps, seed=args.seed)
    out = args.out
    if out.exists() and not out.is_dir():
        raise NeuropaintError(f"'--out' must be a folder, got the file {out}.")
    files = _expand_inputs(args.images)
    if not files:
        raise NeuropaintError("no image files given (a folder stands for the image files "
                              "directly inside it).")
    device = _device(args.device)
    snapshot = resolve_snapshot(args.generator)
    G = load_generator(snapshot, device=device)
    _check_networks(G, None)
    D = None
    if not args.no_discriminator:
        try:
            D = load_network(snapshot, "D", device=device)
        except NeuropaintError:  # a G_ema-only snapshot (a gan.blend result): pixels and SSIM
            pass
    summary = {
        "generator": str(snapshot),
        "generator_sha256": weights_hash(snapshot),
        "discriminator_features": D is not None,
        "settings": cfg.model_dump(),
        "images": {},
        "skipped": [],
    }
    out.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    for path in files:
        try:
            image = read_image(path)
        except (BadImage, OSError) as exc:
            reason = f"{exc.reason}: {exc.detail}" if isinstance(exc, BadImage) \
                else f"unreadable: {exc.strerror or exc}"
            print(f"skipped {path}: {reason}", file=sys.stderr)
            summary["skipped"].append({"file": str(path), "reason": reason})
            write_json(out / "projection.json", summary)
            continue
        name = _unique_name(path.stem, taken)
        start = time.perf_counter()
        result = _project_file(G, D, image, cfg, name, args.quiet)
        seconds = time.perf_counter() - start
        ws_path, png_path = _save_outputs(result, out, name)
        summary["images"][name] = {
            "file": str(path), "ws": ws_path.name, "projection": png_path.name,
            "psnr": round(result.psnr, 3), "ssim": round(result.ssim, 4),
            "noise_psnr": round(result.noise_psnr, 3), "noise_ssim": round(result.noise_ssim, 4),
            "space": result.space, "steps": result.steps, "seconds": round(seconds, 2),
        }
        write_json(out / "projection.json", summary)  # after every image: Ctrl-C keeps them
        print(f"{name}: PSNR {result.psnr:.2f} dB, SSIM {result.ssim:.3f} ({result.space}, "
              f"{result.steps} steps, {seconds:.1f} s) -> {ws_path}")
    done = len(summary["images"])
    if done == 0:
        raise NeuropaintError(f"none of the {len(files)} images could be projected.")
    print(f"projected {done} of {len(files)} images into {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
