"""gan.collection via ``python -m gan.generate --collection``: unique items from a real tiny GAN."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from gan.checkpoint import load_generator, resolve_snapshot, save_snapshot, weights_hash
from gan.collection import image_traits, thumbnails
from gan.generate import main, render_z, seed_z, w_loop
from gan.presets import get_preset
from gan.train import TrainConfig, Trainer, build_networks
from neuropaint.logs import run_cli

pytestmark = pytest.mark.slow  # the module's trained generator takes several seconds here


@pytest.fixture(scope="module")
def run(paintings_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("collection") / "run"
    cfg = TrainConfig(data=str(paintings_store), out=str(out), preset="tiny", kimg=0.032,
                      snapshot_kimg=0.032, device="cpu")
    Trainer(cfg).train()
    return out


def files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def collection(run, out, count, *extra: str) -> list[str]:
    return [str(run), "--collection", str(count), "--trunc", "0.7", *extra, "--out", str(out)]


def _save_untrained(folder, preset: str):
    torch.manual_seed(7)
    G, D = build_networks(get_preset(preset))
    return save_snapshot(folder, {"G": G, "D": D, "G_ema": G}, {"arch": get_preset(preset).arch})


def test_items_are_unique_in_w_and_pixels_and_carry_token_metadata(run, tmp_path, capsys):
    out = tmp_path / "fields"
    assert main(collection(run, out, 8, "--min-distance", "0.8", "--pixel-distance", "0.22",
                           "--name", "Fields", "--description", "Colour fields.")) == 0
    assert "8 unique images" in capsys.readouterr().out
    manifest = json.loads((out / "collection.json").read_text())
    items = manifest["items"]
    seeds = [item["seed"] for item in items]
    assert len(items) == 8 and seeds == sorted(set(seeds))
    tried = manifest["candidates"]
    # Both checks rejected real candidates, so the distances below are not vacuous.
    assert tried["rejected_w"] > 0 and tried["rejected_pixels"] > 0
    assert tried["tried"] == 8 + tried["rejected_w"] + tried["rejected_pixels"]

    G = load_generator(run)
    ws = np.load(out / "ws.npy")
    assert ws.shape == (8, G.num_ws, G.w_dim) and ws.dtype == np.float32
    w = ws.mean(1, dtype=np.float64)
    pairs = np.triu_indices(8, 1)
    w_dist = np.linalg.norm(w[:, None] - w[None], axis=-1)[pairs]
    assert manifest["w_threshold"] == pytest.approx(0.8 * manifest["w_scale"])
    assert w_dist.min() > manifest["w_threshold"]
    images = np.stack([np.asarray(Image.open(out / item["image"])) for item in items])
    thumbs = thumbnails(images)
    rms = np.sqrt(((thumbs[:, None] - thumbs[None]) ** 2).mean(-1))[pairs]
    assert rms.min() > 0.22

    generator_sha = weights_hash(resolve_snapshot(run))
    assert manifest["generator"]["weights_sha256"] == generator_sha
    for i, item in enumerate(items):
        meta = json.loads((out / item["metadata"]).read_text())
        assert meta["name"] == f"Fields #{i + 1}" and meta["description"] == "Colour fields."
        assert meta["image"] == item["image"] == f"{i + 1:04d}.png"
        assert all(set(a) == {"trait_type", "value"} for a in meta["attributes"])
        traits = {a["trait_type"]: a["value"] for a in meta["attributes"]}
        assert traits["Seed"] == meta["seed"] == item["seed"]
        assert traits["Brightness"] in ("Dark", "Medium", "Light")
        assert meta["truncation_psi"] == 0.7 and meta["generator_sha256"] == generator_sha
        assert meta["w_sha256"] == hashlib.sha256(ws[i].astype("<f4").tobytes()).hexdigest()
        # The seed and truncation in the metadata remake the image.
        again = render_z(G, seed_z(G, [meta["seed"]]), truncation_psi=0.7)[0]
        np.testing.assert_array_equal(again, images[i])
    with Image.open(out / "contact_sheet.jpg") as sheet:
        assert sheet.format == "JPEG" and sheet.size == (3 * 16, 3 * 16)


def test_same_arguments_give_the_same_collection_byte_for_byte(run, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(collection(run, first, 6)) == 0
    assert main(collection(run, second, 6)) == 0
    made = files(first)
    assert made == files(second) and len(made) == 2 * 6 + 3  # items, manifest, ws, sheet
    assert main(collection(run, first, 6)) == 0  # into the same folder: replaced by itself
    assert files(first) == made


def test_extend_keeps_the_first_items_and_equals_a_fresh_larger_run(run, tmp_path):
    grown, fresh = tmp_path / "grown", tmp_path / "fresh"
    args = ("--min-distance", "0.7")
    assert main(collection(run, grown, 5, *args)) == 0
    before = files(grown)
    assert main(collection(run, grown, 11, *args, "--extend")) == 0
    after = files(grown)
    for stem in ("0001", "0002", "0003", "0004", "0005"):
        for suffix in (".png", ".json"):
            assert after[stem + suffix] == before[stem + suffix]
    manifest = json.loads(after["collection.json"])
    seeds = [item["seed"] for item in manifest["items"]]
    assert len(seeds) == 11 and len(set(seeds)) == 11
    assert len({item["w_sha256"] for item in manifest["items"]}) == 11
    assert main(collection(run, fresh, 11, *args)) == 0
    assert files(fresh) == after


def test_asking_for_more_than_the_constraint_allows_names_the_limit(run, tmp_path, capsys):
    out = tmp_path / "kept"
    assert main(collection(run, out, 4)) == 0
    before = files(out)
    code = run_cli(main, collection(run, out, 50, "--min-distance", "1.2",
                                    "--max-candidates", "64"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    match = re.search(r"found (\d+) unique images? of 50 within 64 candidates \(--max-candidates"
                      r"\) at --min-distance 1.2 and --pixel-distance 0.02; lower them or ask "
                      r"for fewer", err)
    assert match and 0 < int(match.group(1)) < 50
    assert files(out) == before  # the collection that was there stays as it was
    assert not (tmp_path / "kept.partial").exists()


def test_bad_requests_are_one_line_errors(run, tmp_path, capsys):
    other = tmp_path / "holiday"
    other.mkdir()
    (other / "photo.txt").write_text("mine")
    made = tmp_path / "made"
    assert main(collection(run, made, 3)) == 0
    dcgan = _save_untrained(tmp_path / "dcgan", "dcgan_tiny")
    cases = [
        (collection(run, tmp_path / "a", 0), "'count'"),
        (collection(run, tmp_path / "a", 3, "--min-distance", "-1"), "'min_distance'"),
        (collection(run, other, 3), "is not a collection"),
        (collection(run, tmp_path / "none", 3, "--extend"), "--extend needs an existing"),
        (collection(run, made, 2, "--extend"), "already holds 3 items"),
        ([str(run), "--collection", "5", "--trunc", "0.5", "--extend", "--out", str(made)],
         "was made with truncation_psi=0.7"),
        (collection(dcgan, tmp_path / "a", 3), "needs a StyleGAN2 generator"),
    ]
    for argv, message in cases:
        assert run_cli(main, argv) == 2, message
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert (other / "photo.txt").read_text() == "mine"
    assert not (tmp_path / "a").exists()


def test_interpolation_loops_through_chosen_items(run, tmp_path, capsys):
    made = tmp_path / "made"
    assert main(collection(run, made, 6)) == 0
    video = tmp_path / "video"
    assert main([str(run), "--collection-dir", str(made), "--interpolate-items", "2,5,3",
                 "--frames", "4", "--format", "frames", "--out", str(video)]) == 0
    frames = sorted(video.glob("frame*.png"))
    assert len(frames) == 12
    for k, item in enumerate((2, 5, 3)):  # every 4th frame is an item itself
        np.testing.assert_array_equal(np.asarray(Image.open(frames[4 * k])),
                                      np.asarray(Image.open(made / f"{item:04d}.png")))
    assert main([str(run), "--collection-dir", str(made), "--interpolate-items", "1,6",
                 "--frames", "3", "--out", str(video)]) == 0
    with Image.open(video / "items_1-6.gif") as gif:
        assert gif.n_frames == 6
    ws = torch.from_numpy(np.load(made / "ws.npy"))
    assert torch.equal(w_loop(ws[:2], 3)[3], ws[1])

    stranger = _save_untrained(tmp_path / "stranger", "tiny")
    cases = [
        ([str(run), "--collection-dir", str(made), "--interpolate-items", "2,9"],
         "there is no item 9"),
        ([str(run), "--collection-dir", str(made), "--interpolate-items", "2"],
         "at least 2 item numbers"),
        ([str(run), "--interpolate-items", "1,2"], "go together"),
        ([str(stranger), "--collection-dir", str(made), "--interpolate-items", "1,2"],
         "was made by the generator"),
        ([str(run), "--collection-dir", str(tmp_path), "--interpolate-items", "1,2"],
         "is not a collection"),
    ]
    np.save(tmp_path / "ws_tampered.npy", np.load(made / "ws.npy") * 1.01)
    for argv, message in cases:
        assert run_cli(main, [*argv, "--out", str(video)]) == 2, message
        assert message in capsys.readouterr().err
    (tmp_path / "ws_tampered.npy").replace(made / "ws.npy")
    assert run_cli(main, [str(run), "--collection-dir", str(made), "--interpolate-items", "1,2",
                          "--out", str(video)]) == 2
    assert "does not match item 1's w_sha256" in capsys.readouterr().err


def test_traits_name_the_dominant_hue_brightness_and_contrast():
    def traits(image) -> dict:
        return {a["trait_type"]: a["value"] for a in image_traits(image)}

    assert traits(np.full((16, 16, 3), (30, 30, 200), np.uint8)) == {
        "Palette": "Blue", "Brightness": "Dark", "Contrast": "Low"}
    assert traits(np.full((16, 16, 3), (250, 250, 40), np.uint8))["Palette"] == "Yellow"
    grey = np.full((16, 16, 3), 128, np.uint8)
    grey[:8] = 255
    assert traits(grey) == {"Palette": "Neutral", "Brightness": "Light", "Contrast": "High"}
