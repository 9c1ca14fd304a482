"""``python -m live.replay``: re-render a recorded live session offline.

Examples
--------
python -m live.replay sessions/tonight --out out/tonight               # as it was, animated GIF
python -m live.replay sessions/tonight --size 1024 --format frames --out out/hd
python -m live.replay sessions/tonight --recompute --out out/again     # from the EEG again

By default the painted latents recorded with the session (``ws.f32``) are painted again, so
the result is the performance itself, frame for frame, at any size (``--size``); the frames are
placed on a regular ``--fps`` clock by their recorded times (the nearest earlier frame fills a
dropped one). ``--recompute`` instead runs the recorded EEG (``eeg.npeeg``) through
:func:`conditioning.render.render_recording`, the offline twin of the live loop, with the
session's encoder or another one (``--encoder``).

The generator is the one named in ``session.json`` unless ``--generator`` gives another; it
must be the one the session was painted with (the weights hash is checked) unless
``--any-generator`` says a different painter on the same latents is wanted.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, check_positive

logger = logging.getLogger(__name__)

__all__ = ["main", "regular_frames", "replay_session"]


def regular_frames(times: np.ndarray, fps: float) -> np.ndarray:
    """For each tick of a regular ``fps`` clock from the first frame: the newest frame by then."""
    times = np.asarray(times, dtype=np.float64)
    if len(times) == 0:
        return np.zeros(0, dtype=np.int64)
    span = times[-1] - times[0]
    ticks = times[0] + np.arange(math.floor(span * fps + 1e-9) + 1) / fps
    return np.maximum(np.searchsorted(times, ticks + 1e-9, side="right") - 1, 0)


def _generator_for(session: dict, folder: Path, override: str | None, any_generator: bool):
    from gan.checkpoint import load_generator, resolve_snapshot, weights_hash

    path = Path(override) if override else Path(session.get("generator") or "")
    if not str(path) or not path.exists():
        raise NeuropaintError(f"the session's generator {str(path)!r} is not here; pass "
                              f"--generator PATH.")
    recorded = (session.get("generator_identity") or {}).get("weights_hash")
    if recorded and not any_generator and weights_hash(path) != recorded:
        raise NeuropaintError(f"{resolve_snapshot(path)} is not the generator session {folder} "
                              f"was painted with (weights hash differs); pass "
                              f"--any-generator to paint its latents with it anyway.")
    return load_generator(path), path


def replay_session(folder: str | Path, *, fps: float | None = None, size: int | None = None,
                   generator: str | None = None, any_generator: bool = False,
                   progress: bool = False) -> tuple[np.ndarray, list[dict], float]:
    """Frames ``[N, S, S, 3]``, a per-frame table and the fps, from a session's recorded ws."""
    from conditioning.render import synthesize
    from live.record import read_session

    folder = Path(folder)
    session, rows, ws = read_session(folder)
    G, _ = _generator_for(session, folder, generator, any_generator)
    if tuple(ws.shape[1:]) != (G.num_ws, G.w_dim):
        raise NeuropaintError(f"the session's ws are {list(ws.shape[1:])}, the generator takes "
                              f"[{G.num_ws}, {G.w_dim}].")
    fps = fps or float((session.get("engine") or {}).get("fps") or 15.0)
    fps = check_positive(fps, "fps")
    times = np.array([float(r["time"]) for r in rows])
    pick = regular_frames(times, fps)
    frames = synthesize(G, ws[pick], size=size, progress=progress)
    table = [{"frame": i, "time": round(float(times[k] - times[0]), 6),
              "live_frame": int(rows[k]["frame"]), "eeg_time": float(rows[k]["eeg_time"]),
              "age_ms": float(rows[k]["age_ms"]) if rows[k]["age_ms"] else float("nan"),
              "signal": rows[k]["signal"], "valid": rows[k]["valid"] == "1",
              "calibrating": rows[k]["calibrating"] == "1"} for i, k in enumerate(pick)]
    return frames, table, fps


def main(argv: Sequence[str] | None = None) -> int:
    from conditioning.render import FORMATS, save_outputs

    p = argparse.ArgumentParser(prog="python -m live.replay",
                                description="Re-render a recorded live session offline.")
    p.add_argument("session", help="session folder (python -m live.render --record DIR)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, help="output side in px (default: the generator's)")
    p.add_argument("--fps", type=float, help="frames per second (default: the session's)")
    p.add_argument("--format", choices=FORMATS, default="gif",
                   help="gif, webp, frames (PNG files) or mp4 (needs ffmpeg) "
                   "(default: %(default)s)")
    p.add_argument("--generator", help="generator to paint with (default: the session's)")
    p.add_argument("--any-generator", action="store_true",
                   help="allow a generator other than the session's (same latent shape)")
    p.add_argument("--recompute", action="store_true",
                   help="encode the recorded EEG again instead of using the recorded ws")
    p.add_argument("--encoder", help="with --recompute: encoder (default: the session's)")
    p.add_argument("--profile", help="with --recompute: performer profile (default: the "
                   "session's, when it was painted with one)")
    args = p.parse_args(argv)
    setup_logging("WARNING")
    if args.format == "mp4" and shutil.which("ffmpeg") is None:
        raise NeuropaintError("mp4 needs ffmpeg, which is not installed; use --format gif, "
                              "webp or frames (or install ffmpeg).")
    folder = Path(args.session)
    if args.recompute:
        from conditioning.encoder import Encoder
        from conditioning.render import render_recording
        from live.record import read_session

        session, _, _ = read_session(folder)
        G, gen_path = _generator_for(session, folder, args.generator, args.any_generator)
        engine = session.get("engine") or {}
        profile_path = args.profile or (None if args.encoder else session.get("profile"))
        if profile_path:
            from conditioning.profile import PerformerProfile

            if not Path(profile_path).exists():
                raise NeuropaintError(f"the session's profile {profile_path!r} is not here; "
                                      f"pass --profile PATH.")
            encoder = PerformerProfile.from_pretrained(profile_path, generator_path=gen_path)
        else:
            enc_path = args.encoder or session.get("encoder")
            if not enc_path or not Path(enc_path).exists():
                raise NeuropaintError(f"the session's encoder {enc_path!r} is not here; pass "
                                      f"--encoder PATH.")
            encoder = Encoder.from_pretrained(enc_path, generator_path=gen_path)
        fps = args.fps or float(engine.get("fps") or 15.0)
        frames, table = render_recording(encoder, G, folder, fps=fps, size=args.size,
                                         progress=True)
    else:
        frames, table, fps = replay_session(folder, fps=args.fps, size=args.size,
                                            generator=args.generator,
                                            any_generator=args.any_generator, progress=True)
    save_outputs(frames, table, Path(args.out), args.format, fps, name=folder.resolve().name)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
