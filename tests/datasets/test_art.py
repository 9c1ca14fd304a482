"""Art tile store: builds from small real image files made here, in every format and every way
a file can be bad, then reads the store back (numpy, torch, PNG export, contact sheet)."""

from __future__ import annotations

import io
import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from datasets.art import ArtTiles, TileStore, TileStoreWriter, build, main
from datasets.art_build import SMALL_CROP, near_blank
from datasets.art_store import MANIFEST, PARTIAL_MARKER, partial_dir
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError

SIZE = 32  # Tile side used throughout: small and fast, same code as 512 px.


def painting(seed: int, width: int = 160, height: int = 120) -> Image.Image:
    """A small picture with structure: a smooth colour field, shapes, and some grain."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    image = Image.fromarray(cells).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, x1 = sorted(rng.integers(0, width, 2))
        y0, y1 = sorted(rng.integers(0, height, 2))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape((x0, y0, x1 + 4, y1 + 4), fill=colour)
    grain = rng.normal(0, 4, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image) + grain, 0, 255).astype(np.uint8))


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def load_tiles(store: Path) -> np.ndarray:
    s = TileStore(store)
    return s.gather(np.arange(len(s)))


def tile_sources(store: Path) -> list[str]:
    return [t["source"] for t in TileStore(store).tiles]


@pytest.fixture(scope="module")
def art(tmp_path_factory) -> Path:
    """Three lossless paintings of different shapes, one in a sub-folder, plus clutter."""
    src = tmp_path_factory.mktemp("art")
    save(painting(1, 160, 120), src / "a.png")
    save(painting(2, 96, 128), src / "b.png")
    save(painting(3, 200, 64), src / "series" / "c.png")
    (src / "notes.txt").write_text("titles and dates\n")
    (src / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (src / "._a.png").write_bytes(b"\0\5\26\7 AppleDouble resource fork")
    save(painting(1, 160, 120), src / "__MACOSX" / "a.png")
    return src


def rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# -- modes ---------------------------------------------------------------------------------
def test_random_crop_counts_shapes_and_native_pixels(art, tmp_path):
    out = tmp_path / "store"
    report = build(art, out, size=SIZE, crops_per_image=5, tiles_per_shard=4)
    store = TileStore(out)
    assert len(store) == report["counts"]["tiles"] == 15
    assert report["counts"] == {
        "files": 7, "ignored": 4, "images": 3, "curated_out": 0, "skipped": 0,
        "duplicates": 0, "duplicates_dropped": 0, "upscaled": 0, "images_used": 3, "tiles": 15,
        "blank_tiles": 0, "blank_skipped": 0,
    }
    assert report["warnings"] == []  # 32 px crops of 64-200 px works are not fragments.
    # macOS clutter is not mistaken for images.
    assert report["ignored"] == [".DS_Store", "._a.png", "__MACOSX/", "notes.txt"]
    assert len(store.manifest["shards"]) == 4  # 4 + 4 + 4 + 3 tiles.
    assert sorted(store.sources()) == ["a.png", "b.png", "series/c.png"]
    tiles = store.gather(np.arange(len(store)))
    assert tiles.shape == (15, SIZE, SIZE, 3) and tiles.dtype == np.uint8
    # Without --scale-range a tile is the source's own pixels at its box.
    for tile, record in zip(tiles, store.tiles, strict=True):
        left, top, right, bottom = record["box"]
        assert right - left == bottom - top == SIZE
        np.testing.assert_array_equal(tile, rgb(art / record["source"])[top:bottom, left:right])
    assert json.loads((out / "report.json").read_text())["counts"]["tiles"] == 15


def test_pad_mode_keeps_the_whole_work_on_the_background(tmp_path):
    src = tmp_path / "src"
    save(Image.new("RGB", (120, 60), (255, 0, 0)), src / "wide.png")
    out = tmp_path / "store"
    report = build(src, out, mode="pad", size=SIZE, background="#0000ff")
    store = TileStore(out)
    assert len(store) == 1 and report["counts"]["tiles"] == 1
    assert store.tiles[0]["box"] == [0, -30, 120, 90]  # The padded square, in source pixels.
    tile = store[0].astype(int)
    np.testing.assert_array_equal(tile[SIZE // 2, SIZE // 2], [255, 0, 0])  # The work...
    np.testing.assert_array_equal(tile[1, SIZE // 2], [0, 0, 255])  # ...padded above
    np.testing.assert_array_equal(tile[-2, SIZE // 2], [0, 0, 255])  # and below.


def test_center_crop_takes_the_largest_centred_square(art, tmp_path):
    out = tmp_path / "store"
    build(art, out, mode="center-crop", size=SIZE)
    store = TileStore(out)
    boxes = {t["source"]: t["box"] for t in store.tiles}
    assert boxes == {
        "a.png": [20, 0, 140, 120], "b.png": [0, 16, 96, 112], "series/c.png": [68, 0, 132, 64],
    }
    assert store.gather(np.arange(3)).shape == (3, SIZE, SIZE, 3)


def test_crops_are_reproducible_by_seed_and_independent_of_workers(art, tmp_path):
    one = build(art, tmp_path / "one", size=SIZE, crops_per_image=6, seed=7, n_jobs=1)
    two = build(art, tmp_path / "two", size=SIZE, crops_per_image=6, seed=7, n_jobs=2)
    other = build(art, tmp_path / "other", size=SIZE, crops_per_image=6, seed=8, n_jobs=2)
    assert one["n_jobs"] == 1 and two["n_jobs"] == 2
    np.testing.assert_array_equal(load_tiles(tmp_path / "one"), load_tiles(tmp_path / "two"))
    assert TileStore(tmp_path / "one").tiles == TileStore(tmp_path / "two").tiles
    assert TileStore(tmp_path / "one").tiles != TileStore(tmp_path / "other").tiles
    assert other["counts"]["tiles"] == 18


def test_scale_range_crops_larger_areas_and_downsamples(art, tmp_path):
    out = tmp_path / "store"
    build(art, out, size=SIZE, crops_per_image=20, scale_range=(1.0, 2.0), seed=3)
    store = TileStore(out)
    sides = np.array([t["box"][2] - t["box"][0] for t in store.tiles])
    assert sides.min() >= SIZE and sides.max() <= 2 * SIZE and sides.max() > 1.3 * SIZE
    assert store.gather(np.arange(len(store))).shape == (60, SIZE, SIZE, 3)


def test_min_side_drops_small_images_and_reports_them(tmp_path):
    src = tmp_path / "src"
    save(painting(1, 100, 80), src / "big.png")
    save(painting(2, 40, 20), src / "small.png")
    report = build(src, tmp_path / "default", size=SIZE, crops_per_image=2)
    assert report["counts"]["images_used"] == 1
    assert report["skipped"] == [{"file": "small.png", "reason": "too-small",
                                  "detail": "40x20: shorter side 20 < min_side 32"}]
    # A lower --min-side lets small images in, upscaled, and says so.
    report = build(src, tmp_path / "low", size=SIZE, crops_per_image=2, min_side=16)
    assert report["counts"]["images_used"] == 2 and report["upscaled"] == ["small.png"]
    assert TileStore(tmp_path / "low").gather(np.arange(4)).shape == (4, SIZE, SIZE, 3)


def test_min_side_that_drops_everything_is_a_clear_error(tmp_path):
    src = tmp_path / "src"
    save(painting(1, 100, 80), src / "big.png")
    with pytest.raises(NeuropaintError, match=r"no usable images .* 1 too-small"):
        build(src, tmp_path / "out", size=SIZE, min_side=90)
    assert not (tmp_path / "out").exists()


def test_augment_multiplies_tiles_with_rotations_and_flips(art, tmp_path):
    report = build(art, tmp_path / "aug", size=SIZE, crops_per_image=2, augment="rot90,flip")
    assert report["counts"]["tiles"] == 3 * 2 * 8
    store = TileStore(tmp_path / "aug")
    first = [t for t in store.tiles if t["source"] == "a.png"]
    assert sorted({t["transform"] for t in first}) == sorted(
        ["none", "rot90", "rot180", "rot270", "flip", "flip+rot90", "flip+rot180", "flip+rot270"]
    )
    index = {(t["source"], tuple(t["box"]), t["transform"]): i for i, t in enumerate(store.tiles)}
    box = tuple(first[0]["box"])
    base = store[index[("a.png", box, "none")]]
    np.testing.assert_array_equal(store[index[("a.png", box, "rot90")]], np.rot90(base))
    np.testing.assert_array_equal(store[index[("a.png", box, "flip")]], base[:, ::-1])
    np.testing.assert_array_equal(store[index[("a.png", box, "flip+rot90")]],
                                  np.rot90(base[:, ::-1]))
    report = build(art, tmp_path / "half", size=SIZE, crops_per_image=2, augment=["rot180"])
    assert report["counts"]["tiles"] == 3 * 2 * 2


def test_keep_and_remove_lists(art, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("# favourites\na.png\nseries/*.png\nmissing.jpg\n")
    report = build(art, tmp_path / "kept", size=SIZE, crops_per_image=1, keep=keep)
    assert sorted(set(tile_sources(tmp_path / "kept"))) == ["a.png", "series/c.png"]
    assert report["curation"]["not_kept"] == 1
    assert report["curation"]["keep_unmatched"] == ["missing.jpg"]
    remove = tmp_path / "remove.txt"
    remove.write_text("c.png\n")  # A bare name matches in any folder.
    report = build(art, tmp_path / "removed", size=SIZE, crops_per_image=1, remove=remove)
    assert sorted(set(tile_sources(tmp_path / "removed"))) == ["a.png", "b.png"]
    assert report["curation"]["removed"] == ["series/c.png"]
    assert report["counts"]["curated_out"] == 1
    with pytest.raises(NeuropaintError, match=r"'keep' list .* does not exist"):
        build(art, tmp_path / "x", size=SIZE, keep=tmp_path / "nope.txt")


def test_exact_and_near_duplicates_are_reported_and_dropped_by_policy(tmp_path):
    src = tmp_path / "src"
    original = painting(5, 160, 120)
    save(original, src / "original.png")
    shutil.copy(src / "original.png", src / "zz copy.png")
    # A smaller, recompressed copy: the bigger file must win.
    save(original.resize((120, 90), Image.Resampling.LANCZOS), src / "a_thumb.jpg", quality=70)
    save(painting(6, 160, 120), src / "other.png")
    report = build(src, tmp_path / "exact", size=SIZE, crops_per_image=1, min_side=16)
    dups = {d["file"]: d for d in report["duplicates"]}
    assert dups["zz copy.png"] == {
        "file": "zz copy.png", "duplicate_of": "original.png", "kind": "exact",
        "distance": 0, "dropped": True,
    }
    assert dups["a_thumb.jpg"]["duplicate_of"] == "original.png"
    assert dups["a_thumb.jpg"]["kind"] == "near" and dups["a_thumb.jpg"]["distance"] <= 8
    assert dups["a_thumb.jpg"]["dropped"] is False
    assert "other.png" not in dups
    assert sorted(set(tile_sources(tmp_path / "exact"))) == [
        "a_thumb.jpg", "original.png", "other.png"]
    report = build(src, tmp_path / "near", size=SIZE, crops_per_image=1, min_side=16,
                   dedupe="near")
    assert report["counts"]["duplicates_dropped"] == 2
    assert sorted(set(tile_sources(tmp_path / "near"))) == ["original.png", "other.png"]
    report = build(src, tmp_path / "none", size=SIZE, crops_per_image=1, min_side=16,
                   dedupe="none")
    assert report["counts"]["images_used"] == 4 and report["counts"]["duplicates"] == 2


# -- transparent portraits: blank tiles, background, crop size -----------------------------
def portrait(seed: int, width: int = 320, height: int = 400) -> Image.Image:
    """A painted figure (head, neck, shoulders, a few brush dabs) on a transparent canvas."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)

    def colour() -> tuple[int, ...]:
        return (*(int(c) for c in rng.integers(30, 230, 3)), 255)

    cx = width // 2 + int(rng.integers(-30, 31))
    head = int(rng.integers(45, 70))
    draw.polygon([(cx - 110, height), (cx - 70, 230), (cx + 70, 230), (cx + 110, height)],
                 fill=colour())
    draw.rectangle((cx - 22, 180, cx + 22, 240), fill=colour())
    draw.ellipse((cx - head, 200 - 2 * head, cx + head, 200), fill=colour())
    for _ in range(6):
        x, y = int(rng.integers(cx - 60, cx + 40)), int(rng.integers(90, 380))
        draw.ellipse((x, y, x + 20, y + 14), fill=colour())
    return image


@pytest.fixture(scope="module")
def portraits(tmp_path_factory) -> Path:
    """Four 320x400 RGBA portraits with transparent backgrounds, and one empty canvas."""
    src = tmp_path_factory.mktemp("portraits")
    for seed in range(4):
        save(portrait(seed), src / f"portrait{seed}.png")
    save(Image.new("RGBA", (320, 400), (0, 0, 0, 0)), src / "empty_canvas.png")
    return src


def test_near_blank_is_almost_one_colour():
    rng = np.random.default_rng(0)
    plain = np.full((1, 64, 64, 3), 255, np.uint8)
    grain = np.clip(rng.normal(200, 2, (1, 64, 64, 3)), 0, 255).astype(np.uint8)  # Scan noise.
    speck = plain.copy()
    speck[0, :6, :6] = 0  # 36 px: under 2 % of the tile.
    sliver = plain.copy()
    sliver[0, :, :3] = 0  # A 3 px edge of a figure: 4.7 %.
    ramp = np.broadcast_to(np.arange(64, dtype=np.uint8)[None, :, None, None] * 4,
                           (1, 64, 64, 3))  # A gradient is content.
    tiles = np.concatenate([plain, grain, speck, sliver, ramp])
    np.testing.assert_array_equal(near_blank(tiles), [True, True, True, False, False])
    exact = near_blank(tiles, tolerance=0, fraction=1.0)  # Strictly one colour.
    np.testing.assert_array_equal(exact, [True, False, False, False, False])
    big = np.full((2, 512, 512, 3), 9, np.uint8)  # Judged on a 64x64 grid of its pixels.
    big[1, :, :64] = 250
    np.testing.assert_array_equal(near_blank(big), [True, False])


def test_transparent_background_tiles_are_counted_and_skipped_unless_kept(portraits, tmp_path):
    kept = build(portraits, tmp_path / "kept", size=64, crops_per_image=25, keep_blank=True)
    skipped = build(portraits, tmp_path / "skipped", size=64, crops_per_image=25)
    blank = kept["counts"]["blank_tiles"]
    assert 25 + 10 <= blank < 5 * 25  # The empty canvas, and the portraits' surroundings.
    assert kept["counts"]["tiles"] == 125 and kept["counts"]["blank_skipped"] == 0
    assert skipped["counts"]["blank_tiles"] == skipped["counts"]["blank_skipped"] == blank
    assert skipped["counts"]["tiles"] == 125 - blank
    assert sum(skipped["blank"]["by_source"].values()) == blank
    assert skipped["blank"]["by_source"]["empty_canvas.png"] == 25
    # An image with nothing but blank tiles is skipped, with its reason.
    assert skipped["skipped"] == [{"file": "empty_canvas.png", "reason": "blank",
                                   "detail": "all 25 tiles are near-blank (one colour: empty or "
                                   "transparent)"}]
    assert json.loads((tmp_path / "skipped" / "report.json").read_text())["counts"] == \
        skipped["counts"]
    # The store has no near-uniform tile, by the criterion and by plain per-tile spread...
    tiles = load_tiles(tmp_path / "skipped")
    assert not near_blank(tiles).any()
    assert tiles.reshape(len(tiles), -1, 3).std(axis=1).max(axis=1).min() > 20
    # ...while the kept store holds them: plain white (the default background).
    all_tiles = load_tiles(tmp_path / "kept")
    is_blank = near_blank(all_tiles)
    assert is_blank.sum() == blank
    assert (all_tiles[is_blank] == 255).all(axis=(1, 2, 3)).sum() >= blank - 10
    # Skipping moves no crop: the other tiles are the same, from the same boxes.
    kept_records = [r for r, b in zip(TileStore(tmp_path / "kept").tiles, is_blank,
                                      strict=True) if not b]
    assert kept_records == TileStore(tmp_path / "skipped").tiles
    np.testing.assert_array_equal(all_tiles[~is_blank], tiles)


def test_background_black_composites_transparency_onto_black(portraits, tmp_path, capsys):
    for colour in ["black", "white"]:
        assert main(["build", str(portraits), str(tmp_path / colour), "--size", "64", "--mode",
                     "pad", "--background", colour, "--keep-blank", "--quiet"]) == 0
    black = TileStore(tmp_path / "black")
    white = TileStore(tmp_path / "white")
    sources = black.sources()
    canvas = black[sources.index("empty_canvas.png")]
    assert (canvas == 0).all()  # All transparent: all background.
    figure = sources.index("portrait0.png")
    np.testing.assert_array_equal(black[figure][0, 0], [0, 0, 0])  # Top corner: background.
    np.testing.assert_array_equal(white[figure][0, 0], [255, 255, 255])
    np.testing.assert_array_equal(black[figure][60, 32], white[figure][60, 32])  # The figure.
    assert black.options["background"] == [0, 0, 0]
    assert "near-blank tiles: 1 of 5 (20%) were almost one colour, kept" in capsys.readouterr().out


def test_small_crop_warning_for_large_works_at_their_own_resolution(portraits, tmp_path, capsys):
    assert main(["build", str(portraits), str(tmp_path / "native"), "--size", "64",
                 "--crops-per-image", "10", "--quiet"]) == 0
    printed = capsys.readouterr().out
    warning = next(line for line in printed.splitlines() if line.startswith("warning:"))
    assert "crops are small for these works: a crop sees a median 20% of a work's shorter side"\
        " (64 of 320 px)" in warning
    assert "--mode pad" in warning and "--scale-range 1,5 " in warning
    report = json.loads((tmp_path / "native" / "report.json").read_text())
    assert report["crop_coverage"]["median"] == 0.2 < SMALL_CROP
    assert report["warnings"] == [warning.removeprefix("warning: ")]
    assert "near-blank tiles: " in printed and "skipped (--keep-blank keeps them)" in printed
    blank = report["counts"]["blank_skipped"]
    assert main(["info", str(tmp_path / "native"), "--no-sheet"]) == 0
    assert f", {blank} near-blank tiles skipped" in capsys.readouterr().out
    # A scale range is the user's choice of crop size: no warning, even for small crops.
    chosen = build(portraits, tmp_path / "chosen", size=64, crops_per_image=5,
                   scale_range=(1.0, 1.2))
    assert chosen["crop_coverage"]["median"] < SMALL_CROP and chosen["warnings"] == []
    # Either suggestion silences it.
    for options in (["--mode", "pad"], ["--scale-range", "1,5", "--crops-per-image", "10"]):
        out = tmp_path / options[1].replace(",", "_")
        assert main(["build", str(portraits), str(out), "--size", "64", *options, "-q"]) == 0
        assert "warning:" not in capsys.readouterr().out
        assert json.loads((out / "report.json").read_text())["warnings"] == []


def test_bad_background_is_a_one_line_error(portraits, tmp_path, capsys):
    for value, message in [("#12345", r"unknown colour '#12345'"),
                           ("300,0,0", r"'background.0': Input should be less than or equal")]:
        assert run_cli(main, ["build", str(portraits), str(tmp_path / "out"), "--background",
                              value]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "'background" in err
        assert re.search(message, err), err
    assert not (tmp_path / "out").exists()


# -- formats and colour --------------------------------------------------------------------
def test_every_format_and_colour_mode_becomes_8bit_rgb(tmp_path):
    src = tmp_path / "src"
    red, green = (200, 30, 30), (30, 180, 60)
    expected = {}

    def solid(name, image, colour, **kwargs):
        save(image, src / name, **kwargs)
        expected[name] = colour

    for name, fmt in [("j.jpg", "JPEG"), ("p.png", "PNG"), ("w.webp", "WEBP"),
                      ("t.tif", "TIFF"), ("b.bmp", "BMP"), ("g.gif", "GIF")]:
        solid(name, Image.new("RGB", (48, 40), red), red, format=fmt)
    solid("cmyk.jpg", Image.new("CMYK", (48, 40), (0, 255, 255, 0)), (255, 0, 0))
    solid("cmyk.tif", Image.new("CMYK", (48, 40), (255, 0, 255, 0)), (0, 255, 0))
    solid("gray.png", Image.new("L", (48, 40), 90), (90, 90, 90))
    palette = Image.new("P", (48, 40), 3)
    palette.putpalette([0, 0, 0] * 3 + list(green) + [0, 0, 0] * 252)
    solid("palette.png", palette, green)
    solid("deep.png", Image.new("I;16", (48, 40), 40000), (156, 156, 156))  # 40000/257
    clear = Image.new("RGBA", (48, 40), (255, 0, 0, 0))
    solid("clear.png", clear, (0, 0, 255))  # Fully transparent: the background shows.
    solid("half.png", Image.new("RGBA", (48, 40), (255, 0, 0, 128)), (128, 0, 127))
    # Solid colours are near-blank tiles by design here: kept, and counted.
    report = build(src, tmp_path / "store", mode="center-crop", size=SIZE, background="0,0,255",
                   keep_blank=True)
    assert report["skipped"] == []
    assert report["counts"]["blank_tiles"] == len(expected)
    assert report["counts"]["blank_skipped"] == 0
    store = TileStore(tmp_path / "store")
    for record, tile in zip(store.tiles, store.gather(np.arange(len(store))), strict=True):
        mean = tile.reshape(-1, 3).mean(axis=0)
        np.testing.assert_allclose(mean, expected[record["source"]], atol=6,
                                   err_msg=record["source"])
    assert len(store) == len(expected)


def test_animated_gif_uses_its_first_frame(tmp_path):
    src = tmp_path / "src"
    frames = [Image.new("RGB", (40, 40), c) for c in [(250, 250, 0), (0, 0, 0)]]
    save(frames[0], src / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    build(src, tmp_path / "store", mode="center-crop", size=SIZE, keep_blank=True)  # Solid.
    assert TileStore(tmp_path / "store")[0].reshape(-1, 3).mean(0) == pytest.approx(
        [250, 250, 0], abs=8)


def test_exif_orientation_comes_out_upright(tmp_path):
    # Upright: red top-left, blue top-right, green bottom-left, yellow bottom-right.
    upright = np.zeros((48, 64, 3), np.uint8)
    upright[:24, :32] = (255, 0, 0)
    upright[:24, 32:] = (0, 0, 255)
    upright[24:, :32] = (0, 255, 0)
    upright[24:, 32:] = (255, 255, 0)
    # Stored as a camera held sideways does: pixels rotated, EXIF orientation 6 says how.
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "src"
    save(stored, src / "sideways.jpg", exif=exif, quality=95)
    report = build(src, tmp_path / "store", mode="center-crop", size=SIZE)
    assert report["counts"]["images_used"] == 1
    store = TileStore(tmp_path / "store")
    assert store.tiles[0]["box"] == [8, 0, 56, 48]  # Box in upright 64x48 coordinates.
    tile = store[0].astype(int)
    quarter = SIZE // 4
    corners = {
        (255, 0, 0): tile[quarter, quarter], (0, 0, 255): tile[quarter, -quarter],
        (0, 255, 0): tile[-quarter, quarter], (255, 255, 0): tile[-quarter, -quarter],
    }
    for colour, pixel in corners.items():
        np.testing.assert_allclose(pixel, colour, atol=40)


# -- bad files -----------------------------------------------------------------------------
def test_bad_files_are_skipped_with_reasons_and_the_build_completes(tmp_path):
    src = tmp_path / "src"
    save(painting(1, 100, 80), src / "good.png")
    buf = io.BytesIO()
    painting(2, 100, 80).save(buf, format="JPEG", quality=90)
    (src / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (src / "letter.png").write_text("Dear gallery, please find attached ...\n")
    (src / "empty.jpg").write_bytes(b"")
    (src / "IMG_0042.HEIC").write_bytes(b"\0\0\0\x18ftypheic")  # A phone photo.
    # A real decompression bomb: 225 megapixels that compress to a few kB.
    save(Image.new("1", (15000, 15000)), src / "bomb.png")
    report = build(src, tmp_path / "store", size=SIZE, crops_per_image=3)
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert reasons == {
        "truncated.jpg": "truncated", "letter.png": "not-an-image", "empty.jpg": "empty-file",
        "bomb.png": "decompression-bomb", "IMG_0042.HEIC": "unsupported-format",
    }
    details = {s["file"]: s["detail"] for s in report["skipped"]}
    assert "15000x15000 = 225.0 MP exceeds the limit of 200.0 MP" in details["bomb.png"]
    assert "export the work as JPEG, PNG or TIFF" in details["IMG_0042.HEIC"]
    assert report["skipped_by_reason"]["truncated"] == 1
    assert report["counts"]["images_used"] == 1 and len(TileStore(tmp_path / "store")) == 3


def test_max_pixels_limit_is_configurable(tmp_path):
    src = tmp_path / "src"
    save(painting(1, 100, 80), src / "ok.png")
    save(painting(2, 200, 150), src / "large.png")
    report = build(src, tmp_path / "store", size=SIZE, crops_per_image=1, max_pixels=10_000)
    assert [(s["file"], s["reason"]) for s in report["skipped"]] == [
        ("large.png", "decompression-bomb")]


# -- atomicity and refusals ----------------------------------------------------------------
def test_interrupted_build_leaves_no_store_and_a_later_build_succeeds(art, tmp_path):
    out = tmp_path / "store"

    def die_after_first_image(stage, done, total):
        if stage == "tile" and done == 1:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match=r"killed"):
        build(art, out, size=SIZE, crops_per_image=4, n_jobs=2, progress=die_after_first_image)
    assert not out.exists() and not partial_dir(out).exists()
    with pytest.raises(NeuropaintError, match=r"tile store .* does not exist"):
        TileStore(out)
    # A build killed outright (no clean-up) leaves a marked .partial folder: not a store,
    # and the next build clears it away.
    partial = partial_dir(out)
    partial.mkdir()
    (partial / PARTIAL_MARKER).touch()
    (partial / "tiles-00000.npy").write_bytes(b"half")
    with pytest.raises(NeuropaintError, match=r"not a complete tile store: no manifest.json \(an "
                                         r"interrupted build\?\)"):
        TileStore(partial)
    report = build(art, out, size=SIZE, crops_per_image=4)
    assert report["counts"]["tiles"] == 12 and len(TileStore(out)) == 12
    assert not partial.exists() and not (out / PARTIAL_MARKER).exists()


def test_writer_that_raises_before_commit_writes_no_manifest(tmp_path):
    out = tmp_path / "store"
    with pytest.raises(KeyError), TileStoreWriter(out, size=8, options={}) as w:
        w.add(np.zeros((8, 8, 3), np.uint8), source="x.png", box=(0, 0, 8, 8))
        raise KeyError("boom")
    assert not (out / MANIFEST).exists() and not partial_dir(out).exists()


def test_existing_store_is_refused_unless_overwrite(art, tmp_path):
    out = tmp_path / "store"
    build(art, out, size=SIZE, crops_per_image=1)
    with pytest.raises(NeuropaintError,
                       match=r"'out' is already a complete tile store.*--overwrite"):
        build(art, out, size=SIZE, crops_per_image=2)
    report = build(art, out, size=SIZE, crops_per_image=2, overwrite=True)
    assert report["counts"]["tiles"] == 6 and len(TileStore(out)) == 6
    folder = tmp_path / "my_paintings"
    folder.mkdir()
    (folder / "keep me.txt").write_text("precious")
    with pytest.raises(NeuropaintError, match=r"'out' exists and is not a tile store"):
        build(art, folder, size=SIZE, overwrite=True)
    assert (folder / "keep me.txt").read_text() == "precious"


def test_build_errors_are_one_line(art, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "readme.md").write_text("x")
    cases = [
        (dict(src=tmp_path / "nowhere"), r"'src' folder .* does not exist"),
        (dict(src=empty), r"'src' folder .* is empty"),
        (dict(src=texts), r"'src' folder .* holds no images \(1 other files"),
        (dict(mode="tiles"), r"'mode': Input should be 'random-crop', 'pad' or 'center-crop'"),
        (dict(size=4), r"'size': Input should be greater than or equal to 8"),
        (dict(mode="pad", scale_range=(1, 2)), r"scale_range applies to mode 'random-crop'"),
        (dict(scale_range=(0.5, 2)), r"'scale_range': .*1 <= lo <= hi"),
        (dict(background="not-a-colour"), r"'background': .*unknown colour"),
        (dict(blank_fraction=0.3), r"'blank_fraction': Input should be greater than 0.5"),
        (dict(augment="rot45"), r"'augment.0': Input should be 'rot90', 'rot180' or 'flip'"),
        (dict(out=art / "store"), r"'out' must not be inside 'src'"),
    ]
    for overrides, message in cases:
        kwargs = {"src": art, "out": tmp_path / "out", "size": SIZE, **overrides}
        with pytest.raises(NeuropaintError, match=message):
            build(kwargs.pop("src"), kwargs.pop("out"), **kwargs)
        assert "\n" not in message


def test_reading_a_missing_or_corrupt_store_is_a_clear_error(art, tmp_path):
    with pytest.raises(NeuropaintError, match=r"tile store .* does not exist"):
        ArtTiles(tmp_path / "nope")
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(NeuropaintError, match=r"is not a complete tile store: no manifest.json\."):
        TileStore(folder)
    out = tmp_path / "store"
    build(art, out, size=SIZE, crops_per_image=1)
    manifest = (out / MANIFEST).read_text()
    (out / MANIFEST).write_text(manifest[: len(manifest) // 2])
    with pytest.raises(NeuropaintError, match=r"tile store manifest .* is corrupt"):
        TileStore(out)
    data = json.loads(manifest)
    data["tiles"] = data["tiles"][:-1]
    (out / MANIFEST).write_text(json.dumps(data))
    with pytest.raises(NeuropaintError, match=r"2 tile records but 3 tiles in the shards"):
        TileStore(out)
    (out / MANIFEST).write_text(manifest)
    (out / "tiles-00000.npy").unlink()
    with pytest.raises(NeuropaintError, match=r"shard 'tiles-00000.npy' is missing"):
        TileStore(out)


# -- export, info, CLI ---------------------------------------------------------------------
def test_cli_build_export_info(art, tmp_path, capsys):
    out = tmp_path / "store"
    assert main(["build", str(art), str(out), "--size", str(SIZE), "--crops-per-image", "3",
                 "--augment", "flip", "--quiet"]) == 0
    assert "wrote 18 tiles of 32 px from 3 of 3 images" in capsys.readouterr().out
    pngs = tmp_path / "pngs"
    assert main(["export", str(out), str(pngs), "--quiet"]) == 0
    store = TileStore(out)
    files = sorted(pngs.glob("*.png"))
    assert len(files) == len(store) == 18
    for i, file in enumerate(files):
        assert file.name == f"{i:06d}.png"
        np.testing.assert_array_equal(np.asarray(Image.open(file)), store[i])
    index = (pngs / "index.csv").read_text().splitlines()
    assert index[0] == "file,source,left,top,right,bottom,transform" and len(index) == 19
    with pytest.raises(NeuropaintError, match=r"'dir' folder .* is not empty"):
        main(["export", str(out), str(pngs)])
    sheet = tmp_path / "sheet.png"
    assert main(["info", str(out), "--sheet", str(sheet), "--count", "9", "--thumb", "40"]) == 0
    printed = capsys.readouterr().out
    assert "18 x 32x32 RGB uint8" in printed and "3 images" in printed
    with Image.open(sheet) as image:
        assert image.size == (3 * 44 + 4, 3 * 44 + 4)
    assert main(["info", str(out), "--json", "--no-sheet"]) == 0
    assert json.loads(capsys.readouterr().out)["tiles"] == 18


def test_cli_user_errors_print_one_line(tmp_path, capsys):
    assert run_cli(main, ["info", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "tile store" in err and "does not exist" in err


# -- torch ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def store(art, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("stores") / "tiles"
    build(art, out, size=SIZE, crops_per_image=4, tiles_per_shard=5)
    return out


def test_art_tiles_values_shapes_and_xflip(store):
    data = ArtTiles(store)
    assert len(data) == 12 and data.img_resolution == SIZE and data.img_channels == 3
    x = data[0]
    assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32
    everything = data.gather(np.arange(len(data)))
    assert everything.min() >= -1.0 and everything.max() <= 1.0
    raw = TileStore(store)[5]
    expected = torch.from_numpy(raw.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
    torch.testing.assert_close(data[5], expected)
    flipped = ArtTiles(store, xflip=True)
    assert len(flipped) == 24
    torch.testing.assert_close(flipped[5], data[5])
    torch.testing.assert_close(flipped[12 + 5], data[5].flip(-1))
    torch.testing.assert_close(flipped[-1], data[11].flip(-1))
    with pytest.raises(IndexError):
        flipped[24]


def test_sample_batch_is_fast_batched_and_deterministic(store):
    data = ArtTiles(store, xflip=True)
    batch = data.sample_batch(16, torch.Generator().manual_seed(0))
    assert batch.shape == (16, 3, SIZE, SIZE) and batch.dtype == torch.float32
    assert batch.is_contiguous()
    again = data.sample_batch(16, torch.Generator().manual_seed(0))
    other = data.sample_batch(16, torch.Generator().manual_seed(1))
    torch.testing.assert_close(batch, again)
    assert not torch.equal(batch, other)
    # uint8 batches (for a GPU to convert: 4x less to copy) hold the same images.
    raw = data.sample_batch(16, torch.Generator().manual_seed(0), dtype=torch.uint8)
    assert raw.dtype == torch.uint8 and raw.shape == (16, 3, SIZE, SIZE)
    torch.testing.assert_close(raw.float() / 127.5 - 1, batch)
    # Same images as item-by-item access; indices cross shard boundaries, in any order.
    indices = torch.randint(len(data), (16,), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(batch, torch.stack([data[int(i)] for i in indices]))
    epoch = list(data.iter_batches(5, generator=torch.Generator().manual_seed(2)))
    assert [len(b) for b in epoch] == [5, 5, 5, 5, 4]
    loader = torch.utils.data.DataLoader(data, batch_size=8, shuffle=True, num_workers=0)
    assert next(iter(loader)).shape == (8, 3, SIZE, SIZE)
    # DataLoader workers get the dataset pickled: file names travel, not the mapped tiles.
    restored = pickle.loads(pickle.dumps(data))
    assert restored.store._maps is None
    torch.testing.assert_close(restored[7], data[7])


def test_writer_api_for_other_producers(tmp_path):
    out = tmp_path / "procedural"
    tiles = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    with TileStoreWriter(out, size=16, options={"style": "rothko"}, tiles_per_shard=2) as w:
        for i, tile in enumerate(tiles):
            w.add(tile, source=f"rothko_{i:04d}.png", box=(0, 0, 16, 16))
        with pytest.raises(NeuropaintError, match=r"tiles must be uint8 \[n, 16, 16, 3\]"):
            w.add(tile.astype(np.float32), source="bad.png", box=(0, 0, 16, 16))
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["format_version"] == 1 and manifest["size"] == 16
    assert manifest["options"] == {"style": "rothko"}
    assert [s["count"] for s in manifest["shards"]] == [2, 2, 1]
    assert manifest["tiles"][4] == {"source": "rothko_0004.png", "box": [0, 0, 16, 16],
                                    "transform": "none"}
    # Shards are plain .npy files: any numpy can memory-map them.
    last = np.load(out / "tiles-00002.npy", mmap_mode="r")
    np.testing.assert_array_equal(last, tiles[4:])
    np.testing.assert_array_equal(TileStore(out).gather([4, 0, 3]), tiles[[4, 0, 3]])
