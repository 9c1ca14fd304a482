"""conditioning.train: align and pca fits on a real tiny generator and a real EEG store."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from conditioning.encoder import Encoder
from conditioning.train import EncoderTrainConfig, main, run, w_principal_directions
from datasets.eeg import EEGStore, build
from eeg.features import FeatureSpec
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError

SMALL = {"hidden": 64, "code_dim": 16, "batch": 128}


def _config(store, generator, out, **kwargs) -> EncoderTrainConfig:
    values = {"eeg": str(store), "generator": str(generator), "out": str(out), **SMALL}
    values.update(kwargs)
    return EncoderTrainConfig(**values)


@pytest.fixture(scope="module")
def aligned(eeg_store_path, generator_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("align") / "encoder"
    return run(_config(eeg_store_path, generator_path, out, steps=150, eval_every=15))


@pytest.fixture(scope="module")
def pca(eeg_store_path, generator_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("pca") / "encoder"
    return run(_config(eeg_store_path, generator_path, out, mode="pca", components=3))


def _encoded_group_ws(encoder, eeg_store, rows):
    """Group ws of store rows, each recording standardised by its own baseline (a session)."""
    from conditioning.encoder import FeatureNormalizer

    out = []
    for rec in np.unique(eeg_store.recording[rows]):
        take = rows[eeg_store.recording[rows] == rec]
        x = np.array(eeg_store.features[take])
        norm = FeatureNormalizer(x.shape[1]).calibrate(x)
        with torch.no_grad():
            out.append(encoder.group_ws(norm(torch.from_numpy(x))))
    return torch.cat(out).numpy()  # [n, 3, w_dim]


def test_align_lowers_its_loss_and_keeps_states_apart_on_held_out_recordings(aligned,
                                                                               eeg_store):
    history = aligned["history"]
    assert history[0]["step"] == 15 and history[-1]["step"] == 150
    for key in ("loss", "val_loss", "swd", "recon"):
        assert history[-1][key] < 0.7 * history[0][key], key
    held = aligned["held_out"]
    # Nearest state centroid (from training recordings) on the held-out recording's w.
    assert 0.25 <= held["chance"] < 0.3  # the majority share of the held-out rows
    assert held["state_accuracy"] >= 0.5 and held["balanced_state_accuracy"] >= 0.5
    assert held["w_swd"] < 0.5  # encoded EEG lies among the generator's w (1.0 ~ a point mass)
    # The per-state means of encoded w differ clearly, relative to their spread in a state.
    _, val_rows = eeg_store.split(0.25, seed=0)
    gw = _encoded_group_ws(aligned["encoder"], eeg_store, val_rows).reshape(len(val_rows), -1)
    labels = eeg_store.labels[val_rows]
    states = sorted(set(labels))
    means = np.stack([gw[labels == s].mean(axis=0) for s in states])
    within = np.mean([gw[labels == s].std(axis=0).mean() for s in states])
    gaps = [np.abs(means[i] - means[j]).mean() for i in range(4) for j in range(i + 1, 4)]
    assert min(gaps) > 0.4 * within  # shuffled labels give about within / 8


def test_the_whole_code_term_lowers_the_distance_to_unmixed_ws(aligned, eeg_store_path,
                                                             generator_path, tmp_path):
    """The group ws together, against the generator's own (w, w, w): with the term (the
    default, ``aligned``) that distance ends lower than without it."""
    untied = run(_config(eeg_store_path, generator_path, tmp_path / "untied", steps=150,
                         eval_every=15, unmixed_weight=0.0))
    tied_end, untied_end = aligned["history"][-1], untied["history"][-1]
    print(f"whole-code SWD (validation): with the term {tied_end['val_unmixed']:.4f}, "
          f"without {untied_end['val_unmixed']:.4f}")
    assert tied_end["val_unmixed"] < 0.95 * untied_end["val_unmixed"]  # 0.89 here at 150 steps
    assert aligned["history"][0]["unmixed"] > 2 * tied_end["unmixed"]


def test_align_writes_the_encoder_loss_plot_and_state_picture(aligned, generator_path):
    folder = aligned["paths"]["encoder"]
    assert {"config.json", "encoder.safetensors", "loss.png", "states.png",
            "history.jsonl"} <= {p.name for p in folder.iterdir()}
    picture = Image.open(folder / "states.png")
    assert picture.size[1] > 300  # four rows of paintings
    encoder = Encoder.from_pretrained(folder, generator_path=generator_path)
    stats = encoder.training_stats
    assert stats["mode"] == "align" and stats["config"]["steps"] == 150
    assert stats["data"]["train_recordings"] and stats["data"]["val_recordings"]
    assert not set(stats["data"]["train_recordings"]) & set(stats["data"]["val_recordings"])
    assert encoder.normalizer.calibrated  # the pooled baseline travels with it


def test_pca_maps_eeg_components_onto_the_principal_directions_of_w(pca, eeg_store, generator):
    table = pca["table"]
    assert "EEG component -> W direction" in table
    lines = table.splitlines()[2:]
    assert len(lines) == 9  # 3 groups x 3 components
    assert lines[0].startswith("coarse  PC1") and "<- slow-PC1" in lines[0]
    assert lines[-1].startswith("fine    PC3") and "<- fast-PC3" in lines[-1]
    coarse_top = [name for name, _ in pca["components"][0]["top_features"]]
    assert all(any(b in n for b in ("delta", "theta", "alpha")) for n in coarse_top)
    (pca["paths"]["encoder"] / "components.txt").read_text().startswith("EEG component")

    mean, dirs, sigma, _ = w_principal_directions(generator, seed=1)
    train_rows, _ = eeg_store.split(0.25, seed=0)
    gw = _encoded_group_ws(pca["encoder"], eeg_store, train_rows) - mean  # [n, 3, w_dim]
    basis = dirs[:3]  # [3, w_dim]
    for g in range(3):
        coords = gw[:, g] @ basis.T  # [n, 3]
        residual = gw[:, g] - coords @ basis
        assert np.abs(residual).max() < 1e-3 * np.abs(gw[:, g]).max()  # spans the directions
        # Unit-variance EEG scores move w by sigma_k along direction k (strength 1).
        np.testing.assert_allclose(coords.std(axis=0), sigma[:3], rtol=0.05)
        np.testing.assert_allclose(coords.mean(axis=0), 0, atol=0.05 * sigma[0])


def test_cli_end_to_end_prints_the_figures(eeg_store_path, generator_path, tmp_path, capsys):
    out = tmp_path / "enc"
    code = main(["--eeg", str(eeg_store_path), "--generator", str(generator_path),
                 "--out", str(out), "--steps", "20", "--seed", "1", "-q"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "held-out state accuracy in W (nearest centroid)" in printed
    assert f"encoder: {out}" in printed and "loss_plot:" in printed
    assert {"loss.png", "states.png", "config.json"} <= {p.name for p in out.iterdir()}
    code = main(["--eeg", str(eeg_store_path), "--generator", str(generator_path), "--mode",
                 "pca", "--out", str(tmp_path / "pca"), "--components", "2", "-q"])
    assert code == 0
    assert "fine    PC2" in capsys.readouterr().out


def test_fine_tuning_continues_from_an_encoder(aligned, eeg_store_path, generator_path,
                                               tmp_path):
    out = tmp_path / "tuned"
    result = run(_config(eeg_store_path, generator_path, out, steps=5,
                         init=str(aligned["paths"]["encoder"])))
    assert result["encoder"].hidden == 64 and (out / "config.json").exists()


# --- bad inputs ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def other_spec_store(eeg_files, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores") / "window1"
    build(eeg_files[:2], out, spec=FeatureSpec(window=1.0))
    return out


def _store_copy(store_path, tmp_path, name):
    copy = tmp_path / name
    shutil.copytree(store_path, copy)
    return copy


def test_a_store_with_another_feature_spec_is_refused(aligned, eeg_store_path, other_spec_store,
                                                      generator_path, tmp_path):
    with pytest.raises(NeuropaintError, match=r"was built with a different FeatureSpec than the "
                       r"encoder .* \(window 1.0 vs 2.0\)"):
        run(_config(other_spec_store, generator_path, tmp_path / "x", steps=5,
                    init=str(aligned["paths"]["encoder"])))
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(FeatureSpec(hop=0.25).model_dump(mode="json")))
    with pytest.raises(NeuropaintError, match=r"different FeatureSpec than --spec .*spec.json "
                       r"\(hop 0.1 vs 0.25\)"):
        run(_config(eeg_store_path, generator_path, tmp_path / "x", spec=str(spec_file)))


def test_a_generator_path_that_is_not_a_snapshot_is_refused(eeg_store_path, tmp_path,
                                                            capsys):
    (tmp_path / "not_a_run").mkdir()
    with pytest.raises(NeuropaintError, match=r"--generator: .*not_a_run is neither a GAN "
                       r"snapshot"):
        run(_config(eeg_store_path, tmp_path / "not_a_run", tmp_path / "x"))
    argv = ["--eeg", str(eeg_store_path), "--generator", str(tmp_path / "missing"), "--out",
            str(tmp_path / "x"), "-q"]
    assert run_cli(main, argv) == 2
    err = capsys.readouterr().err
    assert "error: no such checkpoint" in err and len(err.strip().splitlines()) == 1


def test_a_store_without_usable_rows_is_refused(eeg_store_path, generator_path, tmp_path):
    store = _store_copy(eeg_store_path, tmp_path, "flagged")
    valid = np.load(store / "valid.npy")
    np.save(store / "valid.npy", np.zeros_like(valid))
    with pytest.raises(NeuropaintError, match=rf"has no usable rows: all {len(valid)} rows are "
                       r"flagged invalid"):
        run(_config(store, generator_path, tmp_path / "x", mode="pca"))


def test_nan_rows_are_skipped_and_counted(eeg_store_path, generator_path, tmp_path, caplog):
    store = _store_copy(eeg_store_path, tmp_path, "nan")
    features = np.load(store / "features.npy")
    features[10:17, 3] = np.nan
    features[40, 0] = np.inf
    np.save(store / "features.npy", features)
    result = run(_config(store, generator_path, tmp_path / "enc", mode="pca"))
    assert result["data"]["skipped_non_finite"] == 8
    assert "skipped 8 of 1104 rows with non-finite" in caplog.text
    n_valid = int(EEGStore(eeg_store_path).valid.sum())
    assert result["data"]["train_rows"] + result["data"]["val_rows"] == n_valid - 8



def test_live_normalization_follows_the_baseline_as_the_live_loop_does():
    from conditioning.train import live_normalized

    rng = np.random.default_rng(0)
    times = np.arange(0, 120, 0.1)
    feats = rng.standard_normal((len(times), 3)).astype(np.float32)
    feats[times >= 30] += 4.0  # the signal drifts up after calibration
    out = live_normalized(feats, times, calibration=10.0, memory=20.0, hop=0.1)
    # Right after the drift the rows stand far above the calibration baseline ...
    assert out[(times >= 30) & (times < 31)].mean() > 2.0
    # ... and the running baseline has caught up a minute later.
    assert abs(out[times >= 100].mean()) < 0.5
    fixed = live_normalized(feats, times, calibration=10.0, memory=None, hop=0.1)
    assert fixed[times >= 100].mean() > 2.0
    # Shuffled input gives the same rows back in the same shuffled order.
    perm = rng.permutation(len(times))
    np.testing.assert_allclose(live_normalized(feats[perm], times[perm], 10.0, 20.0, 0.1),
                               out[perm], rtol=1e-5, atol=1e-5)


def test_held_out_recordings_are_chosen_to_hold_every_state(tmp_path):
    """Three recordings, two with one state each: a split by recording that held out one of
    those would measure nothing; the stratified split holds out the one with every state."""
    from conditioning.train import stratified_split
    from eeg.synthetic import make_raw

    files = []
    for i, states in enumerate([["eyes_closed"], ["focused"],
                                ["eyes_closed", "focused", "drowsy"]]):
        path = tmp_path / f"s{i}_raw.fif"
        make_raw(18.0, n_channels=8, states=states, state_duration=6.0, seed=i).save(
            path, verbose="error")
        files.append(path)
    build(files, tmp_path / "store")
    store = EEGStore(tmp_path / "store")
    labels = np.asarray(store.label_names)[np.asarray(store.label_index)]
    for seed in range(4):
        _, val = stratified_split(store, 0.34, seed=seed)
        assert set(labels[val]) - {""} == {"eyes_closed", "focused", "drowsy"}
