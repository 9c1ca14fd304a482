"""Does the brain show in the paintings? Fidelity of EEG -> W encoders on held-out sessions.

Prints one JSON line per encoder mode and calibration. Run: ``python benchmarks/fidelity.py``
(about 8 minutes on a 2-core CPU with ``OMP_NUM_THREADS=1``). Steps:

1. a small generator: the ``tiny`` preset (16 px) trained for ``--gan-minutes`` on procedural
   colour-field paintings with :class:`gan.train.Trainer` (or ``--generator PATH``);
2. synthetic EEG sessions (:func:`eeg.synthetic.make_raw`, the four named states cycling): a
   training EEG store (:func:`datasets.eeg.build`) and separate held-out sessions (other
   seeds, never seen by training);
3. one encoder per mode with ``conditioning.train`` (``align``, ``pca`` and ``joint`` by
   default). ``joint`` also fine-tunes the generator (``--joint-kimg`` thousand images, on the
   tiles the generator was trained on, or ``--tiles``) with EEG latents for ``--eeg-share``
   of each batch and the auxiliary EEG-recovery head (``--aux-weight``); its figures are
   measured with its own fine-tuned generator (``OUT/generator``). ``--joint-init align``
   starts its encoder from the align encoder instead of from scratch;
4. :func:`conditioning.metrics.evaluate_encoder` on the held-out sessions, painted exactly as
   the live loop would (online features, 10 s calibration, artifact gating, ``WMotion``)
   at 10 frames per second; again with the live running update of the baseline
   (momentum 0.003 per feature row, a ~30 s memory); and with each session's whole-recording
   baseline (``calibration: "session"``), which is how ``conditioning.train`` standardises
   its training sessions: the gaps between the lines are what the short live calibration
   costs. align and joint encoders are trained with the (opt-in) output map
   (:mod:`conditioning.transport`, fitted for ``--tau``) and measured with it and without it
   (``"output_map"`` true / false), in the same run.
   ``responsiveness_ceiling`` is the same probe on the EEG features behind the frames.
   ``--probe`` picks the probe behind ``responsiveness`` (ridge, the default, or lda: see
   :func:`conditioning.metrics.linear_probe`); both are printed as ``responsiveness_ridge``,
   ``responsiveness_lda`` and their ceilings, from the same frames.
   ``--unmixed-weight 0,0.25,1,4`` trains and measures an align (and joint) encoder per
   weight of the whole-code term (:mod:`conditioning.train`), for its trade-off in one run.

Goals (the conditioning issue): responsiveness (a linear probe on the paintings recovers the
state, cross-validated by session) >= 0.9; coverage (SWD of whitened 8 x 8 pixels to
random-latent paintings, as a ratio to the same between random-latent sets) <= 1.2; smoothness
(the change a state switch causes over the mean frame-to-frame change within a settled state)
>= 5. See
:mod:`conditioning.metrics` for the exact definitions.

Bigger runs: ``--gan-minutes 30 --preset tiny32 --train-sessions 12 --steps 3000``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from conditioning.encoder import Encoder
from conditioning.metrics import PROBES, evaluate_encoder, json_ready, random_sets, summary_line
from datasets.eeg import build as build_eeg_store
from datasets.procedural import write_store
from eeg.synthetic import list_states, make_raw
from gan.checkpoint import load_generator
from gan.presets import get_preset
from gan.train import TrainConfig, Trainer
from neuropaint.validate import build_config


def train_generator(folder: Path, preset: str, minutes: float, paintings: int) -> Path:
    size = get_preset(preset).resolution
    store = write_store(folder / "paintings", paintings, size)
    cfg = TrainConfig(data=str(store), out=str(folder / "gan"), preset=preset, kimg=1e6,
                      snapshot_kimg=1e6, tick_kimg=1.0, device="cpu", max_minutes=minutes)
    Trainer(cfg).train()
    return folder / "gan"


HELD_OUT_SEED = 10_000  # Held-out sessions' seeds start here (training's at --seed).


def synthetic_session(k: int, first_seed: int, args):
    """The k-th synthetic session (seed ``first_seed + k``): the four states cycling, each
    session starting its cycle at another state, so that the calibration period (the first
    state) is not always the same one."""
    states = list(list_states())
    states = states[k % len(states):] + states[: k % len(states)]
    return make_raw(args.session_seconds, n_channels=args.channels, sfreq=args.sfreq,
                    states=states, state_duration=args.state_seconds, seed=first_seed + k)


def write_sessions(folder: Path, count: int, first_seed: int, args) -> list[Path]:
    """Synthetic sessions (:func:`synthetic_session`) as FIF files."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(count):
        path = folder / f"session{first_seed + k:04d}_raw.fif"
        synthetic_session(k, first_seed, args).save(path, verbose="error", overwrite=True)
        files.append(path)
    return files


def train_encoder(mode: str, store: Path, generator: Path, out: Path, args,
                  unmixed_weight: float | None = None) -> float:
    from conditioning.train import EncoderTrainConfig, run

    extra = {} if unmixed_weight is None else {"unmixed_weight": unmixed_weight}
    if mode == "joint":
        # The align encoder of the same whole-code weight (named like this one).
        init = (out.parent / out.name.replace("joint", "align")
                if args.joint_init == "align" else None)
        extra |= {"kimg": args.joint_kimg, "eeg_share": args.eeg_share,
                 "aux_weight": args.aux_weight, "swd_weight": args.joint_swd_weight,
                 "tiles": args.tiles, "fidelity": False,
                 "snapshot_kimg": args.joint_kimg, "init": None if init is None else str(init),
                 "run_dir": str(out.parent / f"{out.name}.run")}
        if init is not None and not (init / "config.json").exists():
            raise SystemExit("--joint-init align needs the align mode to run first: put it "
                             "before joint in --modes.")
    cfg = build_config(EncoderTrainConfig, eeg=str(store), generator=str(generator),
                       out=str(out), mode=mode, steps=args.steps, seed=args.seed,
                       normalization=args.normalization, output_map=mode != "pca",
                       output_map_tau=args.tau, **extra)
    start = time.perf_counter()
    run(cfg)
    return time.perf_counter() - start


def _calibrations(text: str) -> list[tuple[float | None, float | None]]:
    """'10,10@0.003,session' -> [(10, None), (10, 0.003), (None, None)]."""
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if part == "session":
            out.append((None, None))
        elif part:
            seconds, _, momentum = part.partition("@")
            out.append((float(seconds), float(momentum) if momentum else None))
    return out


def _line(mode: str, result: dict, args, fit_seconds: float, eval_seconds: float) -> dict:
    r, c, s = result["responsiveness"], result["coverage"], result["smoothness"]
    return {
        "benchmark": "fidelity",
        "mode": mode,
        "normalization": args.normalization,
        "calibration": result["calibration"],
        "update_momentum": result["update_momentum"],
        "responsiveness": round(r["accuracy"], 3),
        "responsiveness_goal": f">= {r['goal']}",
        "responsiveness_chance": round(r["chance"], 3),
        "responsiveness_ceiling": round(r["ceiling"], 3),
        "probe": r["method"],
        **{f"responsiveness_{name}": round(b["accuracy"], 3)
           for name, b in r["by_probe"].items()},
        **{f"responsiveness_ceiling_{name}": round(b["ceiling"], 3)
           for name, b in r["by_probe"].items()},
        "coverage_image_ratio": round(c["image_ratio"], 3),
        "coverage_goal": f"<= {c['goal']}",
        "coverage_w_ratio": round(c["w_ratio"], 3),
        "coverage_image_swd": round(c["image_swd"], 3),
        "coverage_image_swd_reference": round(c["image_swd_reference"], 3),
        "coverage_reference_spread": round(c["image_reference_spread"], 3),
        "smoothness_ratio": None if s["ratio"] is None else round(s["ratio"], 2),
        "smoothness_goal": f">= {s['goal']}",
        "smoothness_ratio_w": None if s["ratio_w"] is None else round(s["ratio_w"], 2),
        "passed": {"responsiveness": r["passed"], "coverage": c["passed"],
                   "smoothness": s["passed"]},
        "states": r["classes"],
        "frames": result["frames"],
        "fps": result["fps"],
        "tau": result["tau"],
        "resolution": result["resolution"],
        "generator": "given" if args.generator else args.preset,
        "fit_seconds": round(fit_seconds, 1),
        "eval_seconds": round(eval_seconds, 1),
        "threads": torch.get_num_threads(),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", type=Path, help="a trained generator (skips training)")
    parser.add_argument("--preset", default="tiny", help="GAN preset to train (tiny)")
    parser.add_argument("--gan-minutes", type=float, default=4.0, help="GAN training time")
    parser.add_argument("--paintings", type=int, default=1000, help="procedural paintings")
    parser.add_argument("--modes", default="align,pca,joint",
                        help="encoder modes, comma-separated")
    parser.add_argument("--steps", type=int, default=1500, help="align: optimisation steps")
    parser.add_argument("--unmixed-weight", default="1",
                        help="align, joint: whole-code term weight; a comma list trains and "
                        "measures one encoder per weight (e.g. 0,0.25,1,4)")
    parser.add_argument("--normalization", choices=["session", "live", "global"],
                        default="session", help="how training standardises each session "
                        "(live: as the live loop will, calibration then a running baseline)")
    parser.add_argument("--joint-kimg", type=float, default=2.0,
                        help="joint: thousands of real images of generator fine-tuning")
    parser.add_argument("--eeg-share", type=float, default=0.5, help="joint: EEG share")
    parser.add_argument("--aux-weight", type=float, default=1.0, help="joint: aux weight")
    parser.add_argument("--joint-swd-weight", type=float, default=1.0,
                        help="joint: weight of the term keeping encoded w among G's own")
    parser.add_argument("--joint-init", choices=["none", "align"], default="none",
                        help="joint: start the encoder from scratch or from the align one")
    parser.add_argument("--tiles", help="joint: tile store to fine-tune on (default: the "
                        "generator's own)")
    parser.add_argument("--train-sessions", type=int, default=8)
    parser.add_argument("--test-sessions", type=int, default=8,
                        help="held-out sessions (the probe learns from all but one: with 3, "
                        "it learns from 2 and scores lower)")
    parser.add_argument("--session-seconds", type=float, default=90.0)
    parser.add_argument("--state-seconds", type=float, default=15.0)
    parser.add_argument("--channels", type=int, default=16, choices=[8, 16, 32, 64])
    parser.add_argument("--sfreq", type=float, default=128.0)
    parser.add_argument("--fps", type=float, default=10.0, help="updates per second")
    parser.add_argument("--tau", type=float, default=0.5, help="motion time constant (s)")
    parser.add_argument("--probe", choices=list(PROBES), default="ridge",
                        help="the linear probe behind 'responsiveness' (both are printed)")
    parser.add_argument("--calibration", default="10,10@0.003,session",
                        help="calibrations to evaluate, comma-separated: seconds at the start "
                        "of each session (as live), optionally @momentum of the live running "
                        "update per feature row, or 'session' (each whole session's baseline, "
                        "as training standardises)")
    parser.add_argument("--n-random", type=int, default=1024,
                        help="frames and samples per coverage set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="keep the generator, store and encoders here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")  # montage fit warnings of the 16-channel layout

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        generator = args.generator
        if generator is None:
            generator = train_generator(folder, args.preset, args.gan_minutes, args.paintings)
        gan_seconds = time.perf_counter() - started
        G = load_generator(generator)

        t0 = time.perf_counter()
        train_files = write_sessions(folder / "eeg_train", args.train_sessions, args.seed, args)
        test_files = write_sessions(folder / "eeg_test", args.test_sessions,
                                    args.seed + HELD_OUT_SEED, args)
        store = folder / "eeg_store"
        build_eeg_store(train_files, store, overwrite=True)
        eeg_seconds = time.perf_counter() - t0

        references = {}
        weights = [float(w) for w in args.unmixed_weight.split(",") if w.strip()]
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        runs = [(mode, weight) for mode in modes
                for weight in ([None] if mode == "pca" else weights)]
        for mode, weight in runs:
            several = len(weights) > 1 and weight is not None
            out = folder / (f"encoder_{mode}_unmixed{weight:g}" if several else f"encoder_{mode}")
            fit_seconds = train_encoder(mode, store, generator, out, args, weight)
            # joint fine-tunes the generator too: its encoder belongs to OUT/generator.
            mode_generator = out / "generator" if mode == "joint" else generator
            encoder = Encoder.from_pretrained(out, generator_path=mode_generator)
            G_mode = load_generator(mode_generator) if mode == "joint" else G
            if id(G_mode) not in references:  # one ruler per generator, for every line
                references[id(G_mode)] = random_sets(G_mode, n=args.n_random, seed=args.seed)
            variants = [encoder]
            if encoder.has_output_map:  # the same encoder without its map, for the ratio
                bare = Encoder.from_pretrained(out)
                bare.clear_output_map()
                variants.append(bare)
            for (calibration, momentum), enc in itertools.product(
                    _calibrations(args.calibration), variants):
                t0 = time.perf_counter()
                result = evaluate_encoder(enc, G_mode, test_files, fps=args.fps, tau=args.tau,
                                          calibration_s=calibration, update_momentum=momentum,
                                          n_random=args.n_random, seed=args.seed,
                                          probe=args.probe,
                                          coverage_reference=references[id(G_mode)])
                line = _line(mode, result, args, fit_seconds, time.perf_counter() - t0)
                line.update(output_map=enc.has_output_map, gan_seconds=round(gan_seconds, 1),
                            eeg_seconds=round(eeg_seconds, 1),
                            train_sessions=len(train_files), test_sessions=len(test_files),
                            unmixed_weight=weight)
                if mode == "joint":
                    line.update(joint_kimg=args.joint_kimg, eeg_share=args.eeg_share,
                                aux_weight=args.aux_weight,
                                joint_swd_weight=args.joint_swd_weight,
                                joint_init=args.joint_init)
                print(json.dumps(json_ready(line)), flush=True)
                print(f"# {mode}, whole-code weight {weight}, calibration "
                      f"{line['calibration']}, running update "
                      f"{momentum}, output map {enc.has_output_map}: {summary_line(result)}",
                      file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
