"""The tick/snapshot loop that ``gan.train`` (StyleGAN2 and the seeds' DCGAN) and
``gan.upscale train`` share.

A run is a sequence of steps grouped into *ticks*: each tick ends with one line in the run's
``stats.jsonl`` (the mean of its steps' stats) and a new progress-bar postfix. Every so often a
*snapshot* is written. The run ends at its total, or when its time budget is spent, or when it
is asked to stop (Ctrl-C); the last step always ends a tick and writes a snapshot, so nothing
is lost and ``--resume auto`` continues exactly. Positions count whatever the trainer counts
(images for ``gan.train``, steps for ``gan.upscale``); a tick or snapshot is due when the
position passes the next multiple of its interval, so a resumed run ticks and snapshots where
the uninterrupted run would have.

The loop consumes no random numbers and decides nothing about the networks: a trainer supplies
``train_step()``, ``tick_line(tick)``, ``snapshot()`` and ``postfix(line)``
(:class:`TickTrainer`). A snapshot's resume state carries the global random state
(:func:`rng_state`, :func:`restore_rng`); on resume, :func:`trim_log` drops the log lines
written after the snapshot, so the curves continue instead of looping back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from neuropaint.atomic import atomic_path, trim_json_lines

logger = logging.getLogger(__name__)

__all__ = ["Every", "LoopEnd", "Tick", "TickLoop", "TickTrainer", "has_snapshot",
           "plot_history", "restore_rng", "rng_state", "trim_log"]


class Every:
    """Due when a position passes the next multiple of ``interval`` (counted from ``start``)."""

    def __init__(self, interval: int, start: int):
        self.interval = max(1, int(interval))
        self.next = (start // self.interval + 1) * self.interval

    def due(self, position: int) -> bool:
        return position >= self.next

    def advance(self, position: int) -> None:
        while self.next <= position:
            self.next += self.interval


@dataclass
class Tick:
    """The steps since the last stats line."""

    start: int  # Position when the tick began.
    started: float = field(default_factory=time.monotonic)  # time.monotonic() then.
    stats: list[dict] = field(default_factory=list)  # Each step's stats.
    end: bool = False  # The run stops after this tick.

    def mean(self) -> dict[str, Any]:
        """Each stat averaged over the steps that reported it, keys sorted."""
        keys = sorted({k for s in self.stats for k in s})
        return {k: float(np.mean([s[k] for s in self.stats if k in s])) for k in keys}

    def seconds(self) -> float:
        """Wall-clock time since the tick began (never 0)."""
        return max(time.monotonic() - self.started, 1e-9)

    def sec_per_step(self) -> float:
        return self.seconds() / max(len(self.stats), 1)


@dataclass
class LoopEnd:
    """How :meth:`TickLoop.run` ended."""

    snapshot: Path | None = None  # The last snapshot written (None: none, or not rank 0).
    interrupted: bool = False  # Stopped on request (after writing ``snapshot``).
    snapshot_seconds: float = 0.0  # How long writing that last snapshot took.


class TickTrainer(Protocol):
    def train_step(self) -> dict: ...
    def tick_line(self, tick: Tick) -> dict: ...
    def snapshot(self) -> Path | None: ...
    def postfix(self, line: dict) -> str: ...


def _never_stop(timed_out: bool) -> tuple[bool, bool]:
    return False, timed_out


@dataclass
class TickLoop:
    """When a run ticks, snapshots and stops; :meth:`run` drives a :class:`TickTrainer`."""

    position: Callable[[], int]  # Where the run is: images shown, or steps taken.
    total: float  # Where it ends (math.inf: only the time budget or a stop ends it).
    tick_every: int  # Position units between stats lines.
    snapshot_every: int  # Position units between snapshots.
    max_minutes: float | None = None  # Time budget: stop, with a snapshot, after it.
    minutes_option: str = "--max-minutes"  # The option that set it, for the log line.
    snapshot_minutes: float | None = None  # Also snapshot this long after the last one.
    # (interrupted, timed out) from this step's timed-out flag: a stop request, agreed by
    # every process in a distributed run.
    should_stop: Callable[[bool], tuple[bool, bool]] = _never_stop
    # Another reason to end a tick at a position (the upscaler's validations).
    tick_also: Callable[[int], bool] | None = None

    def run(self, trainer: TickTrainer, bar: Any = None, bar_scale: float = 1.0) -> LoopEnd:
        """Step until the end; ``bar`` (tqdm, shows position / ``bar_scale``) is closed after."""
        started = time.monotonic()
        last_snapshot_time = started
        ticks = Every(self.tick_every, self.position())
        snapshots = Every(self.snapshot_every, self.position())
        tick = Tick(start=self.position())
        result = LoopEnd()
        try:
            while self.position() < self.total:
                tick.stats.append(trainer.train_step())
                position = self.position()
                if bar is not None:
                    bar.update(min(position, self.total) / bar_scale - bar.n)  # may overshoot
                timed_out = (self.max_minutes is not None
                             and time.monotonic() - started > self.max_minutes * 60)
                interrupted, timed_out = self.should_stop(timed_out)
                tick.end = position >= self.total or timed_out or interrupted
                if (ticks.due(position) or tick.end
                        or (self.tick_also is not None and self.tick_also(position))):
                    line = trainer.tick_line(tick)
                    tick = Tick(start=position)
                    ticks.advance(position)
                    if bar is not None:
                        bar.set_postfix_str(trainer.postfix(line))
                overdue = (self.snapshot_minutes is not None
                           and time.monotonic() - last_snapshot_time >= self.snapshot_minutes * 60)
                if snapshots.due(position) or position >= self.total or timed_out \
                        or interrupted or overdue:
                    snap_start = time.monotonic()
                    result.snapshot = trainer.snapshot()
                    last_snapshot_time = time.monotonic()
                    result.snapshot_seconds = last_snapshot_time - snap_start
                    snapshots.advance(position)
                    if interrupted:
                        result.interrupted = True
                        break
                if timed_out:
                    logger.info("stopping after %.1f minutes (%s)", self.max_minutes,
                                self.minutes_option)
                    break
        finally:
            if bar is not None:
                bar.close()
        return result


def has_snapshot(run_dir: Path) -> bool:
    """Whether a run folder holds anything ``--resume auto`` can continue from."""
    return (run_dir / "latest").exists() or (run_dir / "snapshots").exists()


def trim_log(path: Path, key: str, value: float, where: str) -> list[dict]:
    """Drop the lines of a JSON-lines log whose ``key`` is past ``value`` (written after the
    snapshot a run resumes from, described by ``where``); return the lines kept."""
    kept, dropped = trim_json_lines(path, key, value)
    if dropped:
        logger.info("%s: dropped %d lines written after %s", path.name, dropped, where)
    return kept


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """The global random state a snapshot keeps: torch's CPU generator and, on CUDA, the
    device's (an empty tensor elsewhere)."""
    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": (torch.cuda.get_rng_state(device)
                         if device.type == "cuda" else torch.zeros(0, dtype=torch.uint8))}


def restore_rng(state: dict, device: torch.device) -> None:
    """Put back what :func:`rng_state` saved (the CUDA part only on a CUDA device)."""
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state["cuda_rng"].numel():
        torch.cuda.set_rng_state(state["cuda_rng"], device)


def plot_history(history: list[dict], path: Path, extra_keys: Sequence[str] = ()
                 ) -> Path | None:
    """Losses (and ``extra_keys``) and augmentation strength against kimg."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    kimg = [h["kimg"] for h in history]
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_aug = fig.subplots(1, 2)
    for key in ("loss_g", "loss_d", "r1_penalty", "pl_penalty", *extra_keys):
        values = [h.get(key, np.nan) for h in history]
        if not all(np.isnan(v) for v in values):
            ax_loss.plot(kimg, values, label=key)
    ax_loss.set(xlabel="kimg", title="losses")
    ax_loss.legend()
    suffixes = sorted({k[len("aug_p"):] for h in history for k in h if k.startswith("aug_p")})
    for suffix in suffixes or [""]:
        ax_aug.plot(kimg, [h.get("aug_p" + suffix, 0) for h in history], label="p" + suffix)
        ax_aug.plot(kimg, [h.get("ada_rt" + suffix) if h.get("ada_rt" + suffix) is not None
                           else np.nan for h in history], label="r_t" + suffix)
    ax_aug.set(xlabel="kimg", title="augmentation", ylim=(-0.05, 1.05))
    ax_aug.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return path
