"""GAN checkpoints: a folder of ``config.json`` + safetensors weights, written atomically.

Layout of one snapshot folder::

    config.json          format version, package version, each network's class name and
                         constructor arguments, the training config and stats
    G.safetensors        generator weights and buffers (w_avg, constant noise)
    D.safetensors        discriminator
    G_ema.safetensors    the moving average of the generator: the one to render with
    state.pt             resume state (optimisers, step, kimg, augmentation p, RNG): tensors
                         and plain containers only, read with ``torch.load(weights_only=True)``

Loading never executes code from the file: networks are rebuilt from a registry of known
classes and their JSON constructor arguments, then the weights are filled in. A snapshot is
assembled in ``NAME.partial`` and renamed when complete, so a run killed at any moment
leaves its previous snapshots intact and never a half-written one.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from neuropaint import __version__
from neuropaint.atomic import atomic_folder, atomic_path, write_json, write_text
from neuropaint.validate import NeuropaintError, read_manifest

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
KIND = "neuropaint.gan_snapshot"
# The only classes a checkpoint may name: nothing else is ever imported or built.
NETWORK_CLASSES = {
    "Generator": "gan.networks:Generator",
    "Discriminator": "gan.networks:Discriminator",
    "DCGANGenerator": "gan.dcgan:DCGANGenerator",
    "DCGANDiscriminator": "gan.dcgan:DCGANDiscriminator",
    "RRDBNet": "gan.upscale:RRDBNet",
    "CompactNet": "gan.upscale:CompactNet",
    "PatchDiscriminator": "gan.upscale:PatchDiscriminator",
}
LATEST = "latest"


def network_spec(net: torch.nn.Module) -> dict:
    """The JSON description that rebuilds ``net``: class name and constructor arguments."""
    name = type(net).__name__
    if name not in NETWORK_CLASSES:
        raise NeuropaintError(f"cannot checkpoint a {name}; known networks: "
                              f"{', '.join(NETWORK_CLASSES)}.")
    return {"class": name, "init_kwargs": net.init_kwargs}


def build_network(spec: dict) -> torch.nn.Module:
    """Rebuild a network from :func:`network_spec` output (weights not loaded)."""
    name = spec.get("class")
    if name not in NETWORK_CLASSES:
        raise NeuropaintError(f"checkpoint names an unknown network class {name!r}; known: "
                              f"{', '.join(NETWORK_CLASSES)}.")
    module_name, attr = NETWORK_CLASSES[name].split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    return cls(**spec["init_kwargs"])


def save_snapshot(
    folder: str | Path,
    networks: dict[str, torch.nn.Module],
    config: dict[str, Any],
    state: dict[str, Any] | None = None,
) -> Path:
    """Write a snapshot folder atomically; return its path.

    Parameters
    ----------
    folder : path
        The snapshot folder to create (replaced if it exists).
    networks : dict
        Name -> module, e.g. ``{"G": G, "D": D, "G_ema": G_ema}``.
    config : dict
        JSON-ready training configuration and stats, stored in config.json.
    state : dict | None
        Resume state (tensors and plain containers), stored in state.pt.
    """
    manifest = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "neuropaint_version": __version__,
        "networks": {name: network_spec(net) for name, net in networks.items()},
        **config,
    }
    with atomic_folder(folder) as partial:
        for name, net in networks.items():
            save_weights(net, partial / f"{name}.safetensors",
                         metadata={"class": type(net).__name__})
        if state is not None:
            with atomic_path(partial / "state.pt") as tmp:
                torch.save(state, tmp)
        write_json(partial / "config.json", manifest)  # last: its presence marks completeness
    return Path(folder)


def save_weights(net: torch.nn.Module, path: str | Path, metadata: dict[str, str]) -> Path:
    """A module's parameters and buffers as one safetensors file."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    save_file(tensors, str(path), metadata=metadata)
    return Path(path)


def load_weights(net: torch.nn.Module, path: str | Path, *, what: str = "its network"
                 ) -> torch.nn.Module:
    """Fill ``net`` from a safetensors file, strictly; one-line errors for bad files."""
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise NeuropaintError(f"{path} is missing or corrupt ({exc}).") from None
    missing, unexpected = net.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise NeuropaintError(f"{path} does not fit {what}: missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}.")
    return net


def mark_latest(run_dir: str | Path, snapshot: str | Path) -> None:
    """Record ``snapshot`` as the run's latest complete snapshot (atomic)."""
    write_text(Path(run_dir) / LATEST, Path(snapshot).name + "\n")


def resolve_snapshot(path: str | Path) -> Path:
    """A snapshot folder from a snapshot path or a run folder (its latest snapshot)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if (path / "config.json").exists():
        return path
    latest = path / LATEST
    if latest.exists():
        candidate = path / "snapshots" / latest.read_text().strip()
        if (candidate / "config.json").exists():
            return candidate
    snapshots = sorted(p for p in (path / "snapshots").glob("*")
                       if (p / "config.json").exists()) if (path / "snapshots").exists() else []
    if snapshots:
        return snapshots[-1]
    raise NeuropaintError(f"{path} is neither a GAN snapshot (no config.json) nor a run with "
                          f"snapshots.")


def read_config(path: str | Path) -> dict:
    """The config.json of a snapshot (checked for kind and version)."""
    return read_manifest(resolve_snapshot(path), "config.json", kind=KIND,
                         format_version=FORMAT_VERSION, what="a GAN snapshot")


def load_network(path: str | Path, name: str = "G_ema", *, device: str | torch.device = "cpu"
                 ) -> torch.nn.Module:
    """Rebuild one network of a snapshot and load its weights (strictly)."""
    folder = resolve_snapshot(path)
    config = read_config(folder)
    if name not in config["networks"]:
        raise NeuropaintError(f"{folder} has no network {name!r}; it has "
                              f"{', '.join(config['networks'])}.")
    net = build_network(config["networks"][name])
    return load_weights(net, folder / f"{name}.safetensors").to(device)


def load_generator(path: str | Path, *, ema: bool = True, device: str | torch.device = "cpu"
                   ) -> torch.nn.Module:
    """The generator of a snapshot (or a run's latest), in eval mode, without gradients."""
    net = load_network(path, "G_ema" if ema else "G", device=device)
    net.eval().requires_grad_(False)
    return net


def load_state(path: str | Path) -> dict:
    """The resume state of a snapshot (weights_only: no code is executed)."""
    file = resolve_snapshot(path) / "state.pt"
    if not file.exists():
        raise NeuropaintError(f"{file.parent} has no resume state (state.pt).")
    return torch.load(file, map_location="cpu", weights_only=True)


def weights_hash(path: str | Path, name: str = "G_ema") -> str:
    """SHA-256 of a network's weights file: identifies the exact generator an encoder is for."""
    file = resolve_snapshot(path) / f"{name}.safetensors"
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
