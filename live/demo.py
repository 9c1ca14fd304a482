"""The bundled demo model: where it lives, and the command that makes it.

``python -m live.render`` with no arguments paints with the model in ``live/demo_model/``:

- ``generator/``: the ``demo64`` preset (a slim 64 px StyleGAN2) trained by ``gan.train`` on
  ``datasets.procedural`` colour-field paintings; its ``G_ema`` paints, and its ``D`` is kept
  in half precision so that fine-tuning from it (``gan.train --init``) starts with a judge
  of paintings, and ``gan.project`` compares in the judge's features;
- ``encoder/``: a ``conditioning.train --mode align`` encoder trained for that generator on
  synthetic EEG sessions (``eeg.synthetic``, every state, several seeds);
- ``upscaler/``: a ``gan.upscale`` ``compact`` x4 model (the seeds' 64 -> 256 px step)
  trained on 256 px procedural paintings, so the live painting is 256 px at the cost of a
  64 px generator;
- ``upscaler_x8/``: a ``compact`` x8 model (64 -> 512 px) trained on 512 px procedural
  paintings, which ``live.render --size 512`` takes (:func:`demo_upscaler`);
- ``profile/``: a performer profile (:mod:`conditioning.profile`) of the simulated headset,
  from a guided ``live.calibrate`` session (eyes closed, eyes open, focused, relaxed; the
  simulator plays them as eyes_closed, neutral, focused, drowsy) with ``auto`` targets.
  ``python -m live.render`` with no arguments plays it.

Made by the project's own code, from nothing but this repository::

    python -m live.demo build --out live/demo_model --work runs/demo --minutes 60

To train the bundled painter further and refit its encoder and profile for it, keeping its
upscalers (the demo's progress across sessions; ``--work`` keeps the run, which resumes)::

    python -m live.demo build --work runs/demo --init live/demo_model/generator \
        --minutes 50 --upscaler-minutes 0

and ``python -m live.demo grid --out docs/demo_model_grid.jpg`` draws the README's picture.
Each step resumes or is skipped when its output in ``--work`` exists, so an interrupted build
goes on where it stopped. The paintings and EEG are generated, so nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, check_positive

logger = logging.getLogger(__name__)

__all__ = ["DEMO_MODEL", "build_demo_model", "demo_paths", "demo_profile", "main"]

DEMO_MODEL = Path(__file__).resolve().parent / "demo_model"
DEMO_PRESET = "demo64"
DEMO_RESOLUTION = 64      # The demo generator's side in px.
EEG_SESSIONS = 8          # Synthetic sessions for the encoder (2 held out by the trainer).
EEG_SESSION_S = 160.0     # Each cycles the four states 4 times (10 s each).


def demo_upscaler(folder: str | Path = DEMO_MODEL, size: int | None = 256) -> Path | None:
    """The demo model's upscaler for a ``size`` px painting, or None when it has none.

    Of its upscalers (``upscaler/`` x4, ``upscaler_x8/``), the one that paints the fewest
    pixels at or above ``size``; the largest when none reaches it (then the engine says so).
    """
    found = {}
    for path in sorted(Path(folder).glob("upscaler*")):
        config = path / "config.json"
        if config.is_file():
            scale = json.loads(config.read_text()).get("scale")
            if isinstance(scale, int):
                found[scale] = path
    if not found:
        return None
    painted = {scale * DEMO_RESOLUTION: path for scale, path in found.items()}
    enough = [side for side in painted if size is None or side >= size]
    return painted[min(enough)] if enough else painted[max(painted)]


def demo_profile(folder: str | Path = DEMO_MODEL) -> Path | None:
    """The demo model's performer profile folder, or None when it has none."""
    path = Path(folder) / "profile"
    return path if (path / "config.json").is_file() else None


def demo_paths(folder: str | Path = DEMO_MODEL) -> tuple[Path, Path]:
    """``(encoder, generator)`` folders of a demo model; a clear error when it is missing."""
    folder = Path(folder)
    encoder, generator = folder / "encoder", folder / "generator"
    if not (encoder / "config.json").is_file() or not (generator / "config.json").is_file():
        raise NeuropaintError(
            f"no demo model in {folder}; make it with: python -m live.demo build --out {folder}")
    return encoder, generator


def _paintings(work: Path, count: int) -> Path:
    """The training paintings in ``work``; painted again when ``count`` differs from theirs
    (a run that resumes then goes on with the new set)."""
    from datasets.art_store import TileStore
    from datasets.procedural import write_store

    store = work / "paintings"
    if store.exists():
        try:
            had = TileStore(store).options.get("count")
        except NeuropaintError:  # an interrupted or damaged store: paint it again
            had = None
        if had == count:
            return store
        logger.info("%s holds %s paintings, not %d: painting them again", store, had, count)
    write_store(store, count=count, size=DEMO_RESOLUTION, overwrite=True)
    return store


def _train_generator(work: Path, store: Path, minutes: float, init: str | None, *,
                     lr: float | None = None, ema_kimg: float | None = None) -> Path:
    from gan.train import TrainConfig, Trainer, snapshot_on_interrupt

    run = work / "gan"
    cfg = TrainConfig(data=str(store), out=str(run), preset=DEMO_PRESET, kimg=100_000,
                      max_minutes=minutes, snapshot_kimg=10, xflip=True, init=init,
                      lr=lr, ema_kimg=ema_kimg,
                      resume="auto" if (run / "latest").exists() else None)
    trainer = Trainer(cfg)
    with snapshot_on_interrupt(trainer):
        trainer.train(progress=True)
    if trainer.interrupted is not None:
        logger.warning("stopped at %.1f kimg with a snapshot in %s: the same command "
                       "resumes it", trainer.interrupted["kimg"], run)
        raise KeyboardInterrupt  # run_cli: "interrupted", exit 130; nothing is exported
    return run


def _export_generator(run: Path, out: Path) -> None:
    """G_ema and D of the run's latest snapshot, D in half precision (a normal snapshot
    folder, without G, optimisers and resume state; half of D's size: its weights load back
    into float32, and a judge to fine-tune from needs no more than fp16's 3 digits)."""
    from gan.checkpoint import load_generator, load_network, read_config, save_snapshot

    config = read_config(run)
    networks = {"G_ema": load_generator(run), "D": load_network(run, "D").half()}
    keep = {k: v for k, v in config.items()
            if k not in ("networks", "format_version", "kind", "neuropaint_version")}
    save_snapshot(out, networks, keep)


def _train_upscaler(work: Path, minutes: float, count: int, scale: int) -> Path:
    """A ``compact`` x4 (64 -> 256 px, on 256 px paintings) or x8 (64 -> 512 px, on 512 px
    paintings) upscaler; ``benchmarks/upscale_512.py`` measured both ahead of bicubic and the
    x4 as good as the RRDB ``cpu`` preset at a fifth of its cost."""
    from datasets.procedural import write_store
    from gan.upscale import UpscaleTrainConfig, UpscaleTrainer

    size = DEMO_RESOLUTION * scale
    store = work / f"paintings{size}"
    if not store.exists():
        write_store(store, count=count, size=size)
    run = work / f"upscaler_x{scale}"
    cfg = UpscaleTrainConfig(data=str(store), out=str(run), scale=scale, preset="compact",
                             patch=16 * scale, steps=None, max_minutes=minutes, device="cpu",
                             val_every=2000, resume="auto" if run.exists() else None)
    UpscaleTrainer(cfg).train(progress=True)
    return run


def _eeg_store(work: Path) -> Path:
    from datasets.eeg import build
    from eeg.synthetic import make_raw

    store = work / "eeg_store"
    if store.exists():
        return store
    folder = work / "eeg"
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for seed in range(EEG_SESSIONS):
        path = folder / f"synthetic_{seed:02d}_raw.fif"
        if not path.exists():
            make_raw(EEG_SESSION_S, n_channels=32, seed=seed).save(path, verbose="error")
        files.append(path)
    build(files, store, progress=True)
    return store


PROFILE_STATES = "eyes_closed,eyes_open,focused,relaxed"  # the simulator plays each by alias


def _profile(work: Path, generator: Path, out: Path) -> None:
    """The demo profile: a guided calibration of the simulated headset (``live.calibrate``,
    4 states x 4 blocks of 20 s, 6 minutes of real time, recorded in ``work``), fitted with
    ``auto`` targets. A recording already in ``work`` is fitted again instead."""
    from conditioning.calibrate import calibrate
    from live.calibrate import main as calibrate_live

    recording = work / "calibration"
    if not (recording / "session.json").is_file():
        calibrate_live(["--out", str(out), "--record", str(recording), "--no-serve",
                        "--generator", str(generator), "--states", PROFILE_STATES])
        return
    _, report = calibrate([recording], generator, out, states=PROFILE_STATES.split(","))
    logger.info("demo profile:\n%s", report.summary())


def _keep_upscalers(out: Path, staged: Path) -> None:
    """Copy the upscalers the demo model at ``out`` already has into ``staged``."""
    for folder in sorted(out.glob("upscaler*")) if out.is_dir() else []:
        if (folder / "config.json").is_file():
            shutil.copytree(folder, staged / folder.name)
            logger.info("kept %s (no upscaler training asked for)", folder)


def build_demo_model(out: str | Path = DEMO_MODEL, *, work: str | Path = "runs/demo",
                     minutes: float = 60.0, count: int = 20000, encoder_steps: int = 1500,
                     upscaler_minutes: float = 15.0, init: str | None = None,
                     lr: float | None = None, ema_kimg: float | None = None) -> Path:
    """Make the demo model into ``out`` (see the module docstring); returns ``out``.

    ``init``: a generator snapshot the training starts from (the bundled demo's, to train it
    further) instead of from scratch; a run already in ``work`` resumes instead.
    ``upscaler_minutes`` 0 trains no upscaler and keeps those ``out`` already has.
    ``lr``, ``ema_kimg``: the generator run's learning rate and G_ema half-life instead of
    the preset's (lower and longer to anneal a long run; gan.train's --lr and --ema-kimg).
    """
    from conditioning.train import EncoderTrainConfig, run

    minutes = check_positive(minutes, "minutes")
    out, work = Path(out), Path(work)
    work.mkdir(parents=True, exist_ok=True)
    store = _paintings(work, count)
    gan_run = _train_generator(work, store, minutes, init, lr=lr, ema_kimg=ema_kimg)
    staged = work / "demo_model"
    if staged.exists():
        shutil.rmtree(staged)
    _export_generator(gan_run, staged / "generator")
    if upscaler_minutes > 0:
        from gan.upscale import Upscaler

        for scale, name in ((4, "upscaler"), (8, "upscaler_x8")):
            sr_run = _train_upscaler(work, upscaler_minutes, count=300, scale=scale)
            Upscaler.from_pretrained(sr_run).save_pretrained(staged / name)
    else:
        _keep_upscalers(out, staged)
    eeg_store = _eeg_store(work)
    run(EncoderTrainConfig(eeg=str(eeg_store), generator=str(staged / "generator"),
                           out=str(staged / "encoder"), mode="align", steps=encoder_steps),
        progress=True)
    _profile(work, staged / "generator", staged / "profile")
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(staged, out)
    logger.info("demo model written to %s", out)
    return out


def grid_picture(out: str | Path, *, folder: str | Path = DEMO_MODEL, count: int = 16,
                 cols: int = 8, truncation_psi: float = 0.8) -> Path:
    """A JPEG grid of the demo model's paintings (seeds 0.., upscaled as live) at ``out``."""
    import torch
    from PIL import Image

    from gan.checkpoint import load_generator
    from gan.generate import seed_z
    from gan.images import image_grid, to_uint8
    from gan.upscale import Upscaler
    from neuropaint.atomic import atomic_path

    _, generator = demo_paths(folder)
    G = load_generator(generator)
    sr_path = demo_upscaler(folder)
    upscaler = Upscaler.from_pretrained(sr_path) if sr_path else None
    with torch.inference_mode():
        img = G(seed_z(G, list(range(count))), None, truncation_psi=truncation_psi,
                noise_mode="const")
        if upscaler is not None:
            img = upscaler(img)
    grid = image_grid(to_uint8(img), cols=cols)
    with atomic_path(out) as tmp:
        Image.fromarray(grid).save(tmp, format="JPEG", quality=90)
    return Path(out)


def states_picture(out: str | Path, *, folder: str | Path = DEMO_MODEL, moments: int = 6,
                   seed: int = 77, side: int = 128) -> Path:
    """One row per state of the demo profile: its target, then moments of a held-out
    synthetic session painted as live (settled frames, 3 s or more into the state)."""
    import copy

    import numpy as np
    import torch
    from PIL import Image, ImageDraw

    from conditioning.profile import PerformerProfile
    from conditioning.render import session_latents
    from eeg.synthetic import make_raw
    from gan.checkpoint import load_generator
    from gan.images import to_uint8
    from gan.upscale import Upscaler
    from live.calibrate import SIMULATOR_ALIASES
    from neuropaint.atomic import atomic_path

    _, generator = demo_paths(folder)
    profile = PerformerProfile.from_pretrained(demo_profile(folder), generator_path=generator)
    G = load_generator(generator)
    sr_path = demo_upscaler(folder)
    upscaler = Upscaler.from_pretrained(sr_path) if sr_path else None
    played = {state: SIMULATOR_ALIASES.get(state, state) for state in profile.states}
    raw = make_raw(20.0 * 2 * len(played), n_channels=32, seed=seed,
                   states=[(s, 20.0) for s in played.values()])
    lat = session_latents(copy.deepcopy(profile), raw, fps=5)

    @torch.inference_mode()
    def paint(ws: np.ndarray) -> np.ndarray:
        img = G.synthesis(torch.from_numpy(np.ascontiguousarray(ws, np.float32)),
                          noise_mode="const")
        if upscaler is not None:
            img = upscaler(img)
        img = torch.nn.functional.interpolate(img, size=(side, side), mode="bicubic",
                                              antialias=True, align_corners=False)
        return to_uint8(img)

    label_w, gap = 110, 4
    sheet = Image.new("RGB", (label_w + (moments + 1) * (side + gap), len(played) *
                              (side + gap) + 18), "black")
    draw = ImageDraw.Draw(sheet)
    draw.text((label_w, 2), "target", fill="white")
    draw.text((label_w + side + gap, 2), "moments of a held-out session, painted as live",
              fill="white")
    for row, (state, simulated) in enumerate(played.items()):
        into = np.zeros(len(lat.times))  # seconds into the current labelled state
        for i in range(1, len(lat.times)):
            same = lat.states[i] == lat.states[i - 1]
            into[i] = into[i - 1] + (lat.times[i] - lat.times[i - 1]) if same else 0.0
        pick = [i for i in range(len(lat.times)) if lat.states[i] == simulated and into[i] >= 3]
        pick = [pick[int(j)] for j in np.linspace(0, len(pick) - 1, moments)] if pick else []
        images = paint(np.concatenate([profile.targets.numpy()[row][None], lat.ws[pick]]))
        y = 18 + row * (side + gap)
        draw.text((4, y + side // 2 - 6), f"{state}\n(sim: {simulated})", fill="white")
        for col, img in enumerate(images):
            sheet.paste(Image.fromarray(img), (label_w + col * (side + gap), y))
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    return Path(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m live.demo", description="Make the bundled demo model.")
    sub = parser.add_subparsers(dest="command", required=True)
    shows_defaults = {"formatter_class": argparse.ArgumentDefaultsHelpFormatter}
    b = sub.add_parser("build", help="train the demo generator and encoder", **shows_defaults)
    b.add_argument("--out", default=str(DEMO_MODEL), help="demo model folder to write")
    b.add_argument("--work", default="runs/demo", help="working folder (resumable)")
    b.add_argument("--minutes", type=float, default=60.0, help="generator training time")
    b.add_argument("--count", type=int, default=20000,
                   help="procedural paintings the painter trains on (default: %(default)s; "
                   "2,000 let the discriminator overfit after about 60 kimg)")
    b.add_argument("--encoder-steps", type=int, default=1500, help="align steps")
    b.add_argument("--upscaler-minutes", type=float, default=15.0,
                   help="training time of each upscaler, x4 and x8 (0: train none and keep "
                        "those --out already has; bicubic where it has none)")
    b.add_argument("--init", metavar="SNAPSHOT",
                   help="start the generator from this snapshot (e.g. live/demo_model/"
                        "generator, to train the bundled painter further) instead of from "
                        "scratch; a run already in --work resumes instead")
    b.add_argument("--lr", type=float, help="learning rate of G and D instead of the "
                   "preset's (lower, to anneal a run that resumes in --work)")
    b.add_argument("--ema-kimg", type=float, help="half-life of G_ema in kimg instead of "
                   "the preset's")
    g = sub.add_parser("grid", help="a JPEG grid of the demo model's paintings",
                       **shows_defaults)
    g.add_argument("--out", default="docs/demo_model_grid.jpg", help="picture to write")
    g.add_argument("--model", default=str(DEMO_MODEL), help="demo model folder")
    st = sub.add_parser("states", help="a picture: each state of the demo profile, its "
                        "target and moments of a held-out session", **shows_defaults)
    st.add_argument("--out", default="docs/demo_states.png", help="picture to write")
    st.add_argument("--model", default=str(DEMO_MODEL), help="demo model folder")
    args = parser.parse_args(argv)
    setup_logging()
    if args.command == "states":
        print(f"states: {states_picture(args.out, folder=args.model)}")
        return 0
    if args.command == "grid":
        print(f"grid: {grid_picture(args.out, folder=args.model)}")
        return 0
    path = build_demo_model(args.out, work=args.work, minutes=args.minutes, count=args.count,
                            encoder_steps=args.encoder_steps,
                            upscaler_minutes=args.upscaler_minutes, init=args.init,
                            lr=args.lr, ema_kimg=args.ema_kimg)
    print(f"demo model: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
