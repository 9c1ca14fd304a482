"""Run by tests/gan/test_train.py under torchrun: train a few steps, write this rank's checksum.

Each rank writes ``rank{R}.txt`` with a hash of its generator and discriminator weights, so the
test can check that every process holds the same weights after training.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

from gan.train import TrainConfig, Trainer


def weights_digest(*nets: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for net in nets:
        for name, tensor in sorted(net.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main() -> int:
    store, out = sys.argv[1], Path(sys.argv[2])
    cfg = TrainConfig(data=store, out=str(out / "run"), preset="tiny", kimg=0.048, batch=8,
                      snapshot_kimg=1.0, device="cpu", aug="ada", aug_p=0.2)
    trainer = Trainer(cfg)
    trainer.train()
    rank = torch.distributed.get_rank()
    (out / f"rank{rank}.txt").write_text(
        f"{weights_digest(trainer.G, trainer.D, trainer.G_ema)} {trainer.ada.p:.8f} "
        f"{trainer.counters.nimg}\n")
    torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
