"""Procedural colour-field paintings: shapes, determinism, texture, style signatures, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from datasets.procedural import STYLES, main, paint, paint_many
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError

SEEDS = range(6)


def _grey(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64).mean(axis=2)


def _block_std(image: np.ndarray, block: int = 8) -> float:
    """Median standard deviation of grey level in ``block`` x ``block`` tiles (0..255 units)."""
    grey = _grey(image)
    h, w = (s // block * block for s in grey.shape)
    tiles = grey[:h, :w].reshape(h // block, block, w // block, block)  # [rows, b, cols, b]
    return float(np.median(tiles.std(axis=(1, 3))))


def _low_frequency_fraction(image: np.ndarray, cutoff: float = 0.25) -> float:
    """Share of the grey-level power below ``cutoff`` cycles per pixel (half Nyquist)."""
    grey = _grey(image)
    power = np.abs(np.fft.fft2(grey - grey.mean())) ** 2
    fy = np.fft.fftfreq(grey.shape[0])[:, None]
    fx = np.fft.fftfreq(grey.shape[1])[None, :]
    return float(power[np.hypot(fx, fy) < cutoff].sum() / power.sum())


def _across_over_along(image: np.ndarray) -> float:
    """Variance of the column means over the variance of the row means (vertical structure)."""
    pixels = image.astype(np.float64)
    columns = pixels.mean(axis=0).var(axis=0).sum()
    rows = pixels.mean(axis=1).var(axis=0).sum()
    return float(columns / max(rows, 1e-9))


def _radial_r2(image: np.ndarray) -> float:
    """Share of the colour variance explained by the distance to the image centre."""
    pixels = image.astype(np.float64)
    h, w = pixels.shape[:2]
    radius = np.hypot(np.arange(h)[:, None] + 0.5 - h / 2, np.arange(w)[None, :] + 0.5 - w / 2)
    radius = radius.astype(int).ravel()
    counts = np.bincount(radius)
    residual = total = 0.0
    for channel in range(3):
        values = pixels[..., channel].ravel()
        means = np.bincount(radius, values) / counts
        residual += ((values - means[radius]) ** 2).sum()
        total += ((values - values.mean()) ** 2).sum()
    return 1.0 - residual / total


# -- the API -----------------------------------------------------------------------------------

@pytest.mark.parametrize("style", STYLES)
def test_each_style_is_a_uint8_square_deterministic_by_seed(style):
    image = paint(style, 48, seed=3)
    assert image.dtype == np.uint8
    assert image.shape == (48, 48, 3)
    np.testing.assert_array_equal(image, paint(style, 48, seed=3))
    assert np.abs(image.astype(int) - paint(style, 48, seed=4)).mean() > 2.0


def test_styles_are_independent_streams_and_accept_height_width():
    assert not np.array_equal(paint("rothko", 32, 0), paint("newman", 32, 0))
    assert paint("noland", (40, 72), seed=1).shape == (40, 72, 3)


@pytest.mark.parametrize("style", STYLES)
def test_a_seed_is_the_same_painting_at_any_resolution(style):
    small = paint(style, 64, seed=5).astype(np.float64)
    large = np.asarray(Image.fromarray(paint(style, 256, seed=5)).resize((64, 64), Image.BOX))
    assert np.corrcoef(small.ravel(), large.astype(np.float64).ravel())[0, 1] > 0.95


@pytest.mark.parametrize("style", STYLES)
def test_paintings_have_texture_but_are_not_noise(style):
    for seed in SEEDS:
        image = paint(style, 128, seed)
        # Texture: even inside one colour field neighbouring pixels differ (weave, brushwork).
        assert _block_std(image) > 1.0, (style, seed)
        # Not noise: most of the power is in the lower half of the spectrum (white noise: 20%).
        assert _low_frequency_fraction(image) > 0.55, (style, seed)


@pytest.mark.parametrize("style", STYLES)
def test_without_weave_the_same_painting_loses_its_finest_detail(style):
    woven = paint(style, 64, seed=3).astype(np.float64)
    smooth = paint(style, 64, seed=3, weave=False).astype(np.float64)
    assert np.corrcoef(woven.ravel(), smooth.ravel())[0, 1] > 0.95  # the same painting

    def grain(image):  # the typical step between neighbours (the median skips the edges)
        return np.median(np.abs(np.diff(image, axis=1)))

    assert grain(smooth) < grain(woven), style


def test_the_noise_check_refuses_white_noise():
    noise = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    assert _low_frequency_fraction(noise) < 0.3


def test_davis_stripes_change_across_x_not_along_y():
    for seed in SEEDS:
        assert _across_over_along(paint("davis", 128, seed)) > 30.0, seed
    for style in ("rothko", "louis", "noland"):
        assert max(_across_over_along(paint(style, 128, s)) for s in SEEDS) < 15.0, style


def test_noland_targets_are_radially_symmetric():
    for seed in SEEDS:
        assert _radial_r2(paint("noland", 128, seed)) > 0.7, seed
    for style in ("davis", "newman"):
        assert max(_radial_r2(paint(style, 128, s)) for s in SEEDS) < 0.3, style


def test_newman_has_one_dominant_field_and_narrow_zips():
    for seed in range(12):
        columns = paint("newman", 128, seed).astype(np.float64).mean(axis=0)  # [W, 3]
        distance = np.linalg.norm(columns - np.median(columns, axis=0), axis=1)
        assert (distance < 30).mean() > 0.8, seed  # the field covers most of the width
        assert distance.max() > 45, seed  # a zip stands out from it
        assert (distance > 45).mean() < 0.15, seed  # and it is narrow


def test_rothko_stacks_horizontal_fields():
    for seed in SEEDS:
        pixels = paint("rothko", 128, seed).astype(np.float64)
        centre = pixels[:, 128 // 5: 4 * 128 // 5]  # inside the side margins
        down = centre.mean(axis=1).var(axis=0).sum()  # variation from field to field
        across = centre.mean(axis=0).var(axis=0).sum()
        assert down > 5 * across, seed


def test_louis_leaves_raw_canvas_bare():
    for seed in SEEDS:
        pixels = paint("louis", 128, seed).astype(np.float64) / 255
        canvas = (pixels.mean(axis=2) > 0.7) & (np.ptp(pixels, axis=2) < 0.2)  # light, greyish
        assert canvas.mean() > 0.1, seed


def test_paint_many_cycles_styles_and_names_each_by_its_seed():
    paintings = list(paint_many(5, 32, styles=["louis", "davis"], seed=10))
    names = [name for name, _ in paintings]
    assert names == ["louis_0000", "davis_0000", "louis_0001", "davis_0001", "louis_0002"]
    np.testing.assert_array_equal(paintings[4][1], paint("louis", 32, 12))
    assert [n for n, _ in paint_many(2, 32, styles="noland")] == ["noland_0000", "noland_0001"]


# -- bad inputs --------------------------------------------------------------------------------

def test_unknown_style_lists_the_valid_ones():
    valid = r"'rothko', 'newman', 'louis', 'noland', 'davis'"
    message = rf"^'style' must be one of {valid}, got 'picasso'\.$"
    with pytest.raises(NeuropaintError, match=message):
        paint("picasso", 64, 0)
    with pytest.raises(NeuropaintError, match=r"'style' must be one of .*got None"):
        paint(None, 64, 0)
    with pytest.raises(NeuropaintError, match=r"'style' must be one of .*got 'picasso'"):
        paint_many(3, 64, styles=["rothko", "picasso"])


@pytest.mark.parametrize("count", [0, -2])
def test_count_must_be_positive(count):
    with pytest.raises(NeuropaintError, match=rf"^'count' must be an integer >= 1, got {count}\.$"):
        paint_many(count, 64)


@pytest.mark.parametrize("size", [8, 15, (64, 4)])
def test_size_must_be_at_least_16(size):
    with pytest.raises(NeuropaintError, match=r"^'size' must be an integer >= 16, got \d+\.$"):
        paint("rothko", size, 0)


def test_seed_must_be_a_non_negative_integer():
    with pytest.raises(NeuropaintError, match=r"^'seed' must be an integer >= 0, got -1\.$"):
        paint("davis", 32, -1)


# -- the command line --------------------------------------------------------------------------

def test_cli_writes_named_pngs_and_a_contact_sheet(tmp_path):
    out = tmp_path / "art"
    sheet = tmp_path / "docs" / "sheet.png"
    argv = [str(out), "--count", "5", "--size", "32", "--style", "rothko,davis", "--seed", "2",
            "--contact-sheet", str(sheet)]
    assert main(argv) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["davis_0000.png", "davis_0001.png",
                     "rothko_0000.png", "rothko_0001.png", "rothko_0002.png"]
    with Image.open(out / "rothko_0002.png") as png:
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), paint("rothko", 32, 4))
    with Image.open(sheet) as png:
        assert png.width > 3 * 32 and png.height > 2 * 32  # two rows of up to three paintings
    assert not list(tmp_path.rglob(".*"))  # no temporary files left behind


def test_cli_style_option_can_repeat(tmp_path):
    assert main([str(tmp_path), "--count", "2", "--size", "16", "--style", "noland",
                 "--style", "louis"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["louis_0000.png", "noland_0000.png"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--style", "rothko,cezanne"], r"'style' must be one of 'rothko', .*got 'cezanne'\."),
        (["--count", "0"], r"'count' must be an integer >= 1, got 0\."),
        (["--size", "12"], r"'size' must be an integer >= 16, got 12\."),
    ],
)
def test_cli_bad_inputs_are_one_line_errors(tmp_path, capsys, args, message):
    with pytest.raises(NeuropaintError, match=message):
        main([str(tmp_path / "out"), *args])
    assert run_cli(main, [str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("python -m datasets.procedural: error: ")
    assert not (tmp_path / "out").exists()


def test_cli_store_writes_a_readable_tile_store(tmp_path):
    try:
        from datasets.art import TileStore, TileStoreWriter  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"datasets.art has no tile store yet: {exc}")
    store = tmp_path / "store"
    assert main([str(store), "--count", "3", "--size", "32", "--store", "--style", "newman"]) == 0
    tiles = TileStore(store)
    assert len(tiles) == 3 and tiles.size == 32
    np.testing.assert_array_equal(np.asarray(tiles[2]), paint("newman", 32, 2))
    assert tiles.tiles[2]["source"] == "procedural/newman_0002"
    assert tiles.options["generator"] == "datasets.procedural"
    # A second build refuses to clobber the store unless asked to.
    with pytest.raises(NeuropaintError, match="overwrite"):
        main([str(store), "--count", "2", "--size", "32", "--store"])
    assert main([str(store), "--count", "2", "--size", "32", "--store", "--overwrite"]) == 0
    assert len(TileStore(store)) == 2
