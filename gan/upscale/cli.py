"""The command line: ``python -m gan.upscale {train,apply} ...``.

Examples
--------
python -m gan.upscale train tiles256/ --scale 4 --out runs/sr4                  # cpu preset
python -m gan.upscale train tiles256/ --scale 4 --out runs/sr4 --minutes 30 --resume auto
python -m gan.upscale train tiles256/ --scale 2 --out runs/sr2 --steps 4000 --adversarial-steps 2000
python -m gan.upscale train tiles512/ --scale 4 --out runs/big --preset full --device cuda
python -m gan.upscale train tiles512/ --scale 8 --out runs/sr8 --preset compact      # 64 -> 512 live
python -m gan.upscale apply runs/sr4 out/*.png --out big/ --denoise before
python -m gan.upscale apply runs/sr4 photos/ --out big/ --tile 128 --overlap 16
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from gan.checkpoint import resolve_snapshot
from gan.distributed import setup_distributed
from gan.upscale.apply import ApplyResult, _expand_inputs, apply_files
from gan.upscale.degrade import DEGRADATIONS
from gan.upscale.model import DENOISE_MODES, Upscaler
from gan.upscale.networks import SCALES, get_preset, list_presets
from gan.upscale.train import UpscaleTrainConfig, UpscaleTrainer
from neuropaint.atomic import write_json
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError, build_config, check_option

logger = logging.getLogger(__name__)


def _cmd_train(args: argparse.Namespace) -> int:
    check_option(args.scale, "scale", SCALES)
    get_preset(args.preset)  # an unknown name: the error lists the valid ones
    if args.steps is None and args.minutes is None:
        args.steps = 20000
    cfg = build_config(UpscaleTrainConfig, data=args.store, out=args.out, scale=args.scale,
                       preset=args.preset, steps=args.steps,
                       adversarial_steps=args.adversarial_steps,
                       adversarial_weight=args.adversarial_weight, batch=args.batch,
                       patch=args.patch, lr=args.lr, degradation=args.degradation,
                       denoise=args.denoise, val_fraction=args.val_fraction,
                       val_every=args.val_every, snapshot_every=args.snapshot_every,
                       seed=args.seed, resume=args.resume, device=args.device,
                       max_minutes=args.minutes)
    trainer = UpscaleTrainer(cfg)
    if not args.quiet:
        train_sources, val_sources = trainer.data.n_sources
        print(f"x{cfg.scale} upscaler, preset {trainer.preset.name} "
              f"({sum(p.numel() for p in trainer.net.parameters()):,} parameters) on "
              f"{trainer.device}; {len(trainer.data.train_idx)} training tiles from "
              f"{train_sources} images, {len(trainer.data.val_idx)} held-out tiles from "
              f"{val_sources}")
    snapshot = trainer.train(progress=not args.quiet) or resolve_snapshot(trainer.run_dir)
    last = next((h for h in reversed(trainer.history) if "psnr_model" in h), None)
    summary = f"done: step {trainer.counters.step}; latest snapshot {snapshot}"
    if last:
        summary += (f"; held-out PSNR {last['psnr_model']:.2f} dB (bicubic "
                    f"{last['psnr_bicubic']:.2f}), SSIM {last['ssim_model']:.4f} (bicubic "
                    f"{last['ssim_bicubic']:.4f})")
    print(summary)
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    device = setup_distributed(args.device).device
    upscaler = Upscaler.from_pretrained(args.model, device=device)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=len(_expand_inputs(args.images)), unit="img", dynamic_ncols=True)

    def report(result: ApplyResult) -> None:
        if bar is not None:
            bar.update(1)
        if result.status == "skipped":
            logger.warning("skipped %s: %s", result.file, result.reason)
        elif result.note:
            logger.info("%s: %s", result.file, result.note)

    try:
        results = apply_files(upscaler, args.images, args.out, denoise=args.denoise,
                              tile=args.tile, overlap=args.overlap, overwrite=args.overwrite,
                              progress=report)
    finally:
        if bar is not None:
            bar.close()
    counts = {k: sum(r.status == k for r in results) for k in ("written", "kept", "skipped")}
    write_json(Path(args.out) / "upscale_report.json", {
        "model": upscaler.info.get("path"), "scale": upscaler.scale,
        "denoise": args.denoise or upscaler.default_denoise, "tile": args.tile,
        "overlap": args.overlap, "counts": counts,
        "files": [r.__dict__ for r in results]})
    print(f"x{upscaler.scale}: wrote {counts['written']}, kept {counts['kept']} existing, "
          f"skipped {counts['skipped']} of {len(results)} images into {args.out}")
    for r in results:
        if r.status == "skipped":
            print(f"  skipped {r.file}: {r.reason}")
        elif r.note:
            print(f"  note {r.file}: {r.note}")
    if counts["written"] + counts["kept"] == 0:
        raise NeuropaintError(f"none of the {len(results)} images could be upscaled.")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m gan.upscale",
        description="Train an ESRGAN-style x2/x4/x8 upscaler on a tile store, or apply one to "
        "image files (with optional non-local-means denoising before and/or after).",
        epilog="Run 'python -m gan.upscale COMMAND --help' for the options of each command.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser(
        "train", help="train an upscaler on a tile store",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train on HR patches cut from STORE's tiles, degraded on the fly (blur, "
        "downscale, noise, JPEG); held-out source images validate (PSNR/SSIM against "
        "bicubic). L1 first, then optionally RaGAN fine-tuning with L1 kept.",
        epilog="examples:\n"
        "  python -m gan.upscale train tiles256/ --scale 4 --out runs/sr4 --minutes 30\n"
        "  python -m gan.upscale train tiles256/ --scale 4 --out runs/sr4 --resume auto\n"
        "  python -m gan.upscale train tiles512/ --scale 2 --out runs/sr2 --preset full "
        "--device cuda\n"
        f"presets: {', '.join(f'{n} ({get_preset(n).description})' for n in list_presets())}")
    t.add_argument("store", metavar="STORE", help="tile store (python -m datasets.art build)")
    t.add_argument("--scale", type=int, default=4, help="upscaling factor, 2, 4 or 8 (default 4)")
    t.add_argument("--out", required=True, help="run folder (snapshots, stats.jsonl)")
    t.add_argument("--preset", default="cpu", help="network: cpu (default), compact (cheapest; x8 live), full (GPU), tiny (tests)")
    t.add_argument("--steps", type=int, help="L1 steps (default 20000, or until --minutes)")
    t.add_argument("--minutes", type=float, help="stop (with a snapshot) after this long")
    t.add_argument("--adversarial-steps", type=int, default=0, metavar="N",
                   help="RaGAN fine-tuning steps after the L1 steps (default 0)")
    t.add_argument("--adversarial-weight", type=float, default=0.05, metavar="W",
                   help="weight of the GAN loss against L1 (default 0.05)")
    t.add_argument("--batch", type=int, help="patches per step (default: the preset's)")
    t.add_argument("--patch", type=int, help="HR patch side in px (default: the preset's)")
    t.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    t.add_argument("--degradation", default="light", choices=list(DEGRADATIONS),
                   help="light (default): blur, noise, JPEG each 30%% of the time, mild; mixed: "
                   "each half the time; real: all, Real-ESRGAN's ranges; bicubic: clean "
                   "downscale only")
    t.add_argument("--denoise", default="none", choices=DENOISE_MODES,
                   help="the denoise step 'apply' uses by default with this model")
    t.add_argument("--val-fraction", type=float, default=0.1, metavar="F",
                   help="share of source images held out for validation (default 0.1)")
    t.add_argument("--val-every", type=int, default=500, metavar="N",
                   help="steps between validations (default 500)")
    t.add_argument("--snapshot-every", type=int, default=1000, metavar="N",
                   help="steps between snapshots (default 1000)")
    t.add_argument("--seed", type=int, default=0,
                   help="random seed of the initialisation, patches and degradations "
                   "(default 0)")
    t.add_argument("--resume", help="'auto' (the run's latest snapshot) or a snapshot folder")
    t.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    t.set_defaults(handler=_cmd_train)

    a = sub.add_parser(
        "apply", help="upscale image files with a trained upscaler",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Upscale IMAGES (files, or folders of image files) into OUT as "
        "NAME_x4.png. Large images are processed in overlapping tiles with feathered seams. "
        "Bad files are skipped and reported; existing outputs are kept unless --overwrite.",
        epilog="examples:\n"
        "  python -m gan.upscale apply runs/sr4 frames/*.png --out big/\n"
        "  python -m gan.upscale apply runs/sr4 scans/ --out big/ --denoise before\n"
        "denoise: non-local means with the noise level estimated per image; 'before' cleans "
        "the input, 'after' the upscaled result.")
    a.add_argument("model", metavar="MODEL", help="upscaler run folder or snapshot")
    a.add_argument("images", metavar="IMAGES", nargs="+", help="image files or folders")
    a.add_argument("--out", required=True, help="output folder")
    a.add_argument("--tile", type=int, default=128, help="tile side in input px (default 128)")
    a.add_argument("--overlap", type=int, default=16,
                   help="overlap of neighbouring tiles in input px (default 16)")
    a.add_argument("--denoise", choices=DENOISE_MODES,
                   help="none, before, after or both (default: the model's, usually none)")
    a.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    a.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    a.set_defaults(handler=_cmd_apply)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m gan.upscale {train,apply} ...``."""
    args = _parser().parse_args(argv)
    setup_logging("WARNING" if args.quiet else "INFO")
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
