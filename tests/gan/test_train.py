"""gan.train: real (tiny) training runs on procedural paintings, resume, failures, DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gan.checkpoint import load_generator, load_network, load_state, read_config, resolve_snapshot
from gan.distributed import TrainingDiverged
from gan.extensions import Extension
from gan.loss import Latents
from gan.presets import get_preset, list_presets
from gan.train import TrainConfig, Trainer, main
from neuropaint.logs import run_cli
from neuropaint.validate import NeuropaintError

REPO = Path(__file__).resolve().parents[2]


def _config(store, out, **kwargs) -> TrainConfig:
    values = {"data": str(store), "out": str(out), "preset": "tiny", "kimg": 0.064,
              "snapshot_kimg": 0.032, "tick_kimg": 0.016, "device": "cpu", "aug_p": 0.1}
    values.update(kwargs)
    return TrainConfig(**values)


def test_presets_registry_lists_names_and_refuses_unknown_ones():
    names = list_presets()
    assert {"tiny", "cpu64", "paper256", "paper512", "paper1024", "dcgan64"} <= set(names)
    with pytest.raises(NeuropaintError, match=r"unknown preset 'huge'; valid presets: tiny"):
        get_preset("huge")
    assert get_preset("paper256").gamma == 1.0
    assert get_preset("tiny", batch=4).batch == 4


def test_tiny_run_writes_snapshots_stats_grid_and_plot(paintings_store, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(_config(paintings_store, run))
    last = trainer.train()
    assert last == resolve_snapshot(run)
    snapshots = sorted(p.name for p in (run / "snapshots").iterdir())
    assert snapshots == ["000000000032", "000000000064"]
    for name in ("config.json", "G.safetensors", "D.safetensors", "G_ema.safetensors",
                 "state.pt", "grid.png"):
        assert (last / name).exists(), name
    lines = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert [round(x["kimg"], 3) for x in lines] == [0.016, 0.032, 0.048, 0.064]
    assert all(torch.isfinite(torch.tensor(x["loss_d"])) for x in lines)
    assert (run / "training.png").exists()
    config = read_config(run)
    assert config["preset"]["name"] == "tiny" and config["stats"]["kimg"] == 0.064
    G = load_generator(run)
    img = G(torch.randn(2, G.z_dim), None)
    assert img.shape == (2, 3, 16, 16)


def test_resume_continues_the_run_exactly(paintings_store, tmp_path):
    full = tmp_path / "full"
    Trainer(_config(paintings_store, full)).train()
    # A second run that stopped at the first snapshot, then resumes.
    half = tmp_path / "half"
    Trainer(_config(paintings_store, half, kimg=0.032)).train()
    resumed = Trainer(_config(paintings_store, half, resume="auto"))
    assert resumed.counters.nimg == 32
    resumed.train()
    full_state = load_state(full)
    half_state = load_state(half)
    assert full_state["nimg"] == half_state["nimg"] == 64
    from safetensors.torch import load_file

    for name in ("G", "D", "G_ema"):
        a = load_file(str(resolve_snapshot(full) / f"{name}.safetensors"))
        b = load_file(str(resolve_snapshot(half) / f"{name}.safetensors"))
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}.{key}")
    assert full_state["ada"]["p"] == half_state["ada"]["p"]
    lines = [json.loads(x)["kimg"] for x in (half / "stats.jsonl").read_text().splitlines()]
    assert [round(k, 3) for k in lines] == [0.016, 0.032, 0.048, 0.064]


def test_resume_with_another_preset_is_refused(paintings_store, tmp_path):
    run = tmp_path / "run"
    Trainer(_config(paintings_store, run, kimg=0.016, snapshot_kimg=0.016)).train()
    with pytest.raises(NeuropaintError, match=r"holds a different G than preset 'tiny32'"):
        Trainer(_config(paintings_store, run, preset="tiny32", resume="auto"))


def test_nan_stops_the_run_and_keeps_the_last_good_snapshot(paintings_store, tmp_path):
    run = tmp_path / "run"
    trainer = Trainer(_config(paintings_store, run, kimg=0.032, snapshot_kimg=0.016))
    trainer.train()
    good = resolve_snapshot(run)
    trainer.cfg.kimg = 0.064
    with torch.no_grad():
        next(trainer.G.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"loss became nan; training stopped"):
        trainer.train()
    assert resolve_snapshot(run) == good
    assert torch.isfinite(next(load_generator(run).parameters())).all()


def test_discriminator_collapse_is_reported(paintings_store, tmp_path, caplog):
    trainer = Trainer(_config(paintings_store, tmp_path / "run", collapse_steps=5))
    for _ in range(5):
        trainer.watch_collapse(1e-5)
    assert trainer.counters.collapse_reported
    assert "discriminator collapse" in caplog.text
    trainer.watch_collapse(0.5)
    assert trainer.counters.collapse_run == 0


def test_store_resolution_must_fit_the_preset(paintings_store, tmp_path):
    with pytest.raises(NeuropaintError, match=r"tiles are 32 px and the preset trains at 64"):
        Trainer(_config(paintings_store, tmp_path / "run", preset="cpu64"))


def test_larger_tiles_are_downsampled_to_the_preset(paintings_store, tmp_path):
    trainer = Trainer(_config(paintings_store, tmp_path / "run"))  # 32 px store, 16 px preset
    assert trainer.data.batch(4).shape == (4, 3, 16, 16)


def test_dcgan_trains_in_the_same_loop(paintings_store, tmp_path):
    run = tmp_path / "dcgan"
    trainer = Trainer(_config(paintings_store, run, preset="dcgan_tiny", aug="none"))
    trainer.train()
    config = read_config(run)
    assert config["networks"]["G"]["class"] == "DCGANGenerator"
    G = load_generator(run)
    assert G(torch.randn(2, G.z_dim), None).shape == (2, 3, 16, 16)


def test_cli_trains_and_reports_one_line_errors(paintings_store, tmp_path, capsys):
    run = tmp_path / "cli"
    assert main(["--data", str(paintings_store), "--out", str(run), "--kimg", "0.016",
                 "--snap", "0.016", "--device", "cpu", "-q"]) == 0
    assert "latest snapshot" in capsys.readouterr().out
    assert run_cli(main, ["--data", str(paintings_store), "--out", str(run), "--preset",
                          "nope", "-q"]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    assert run_cli(main, ["--data", str(paintings_store), "--out", str(run), "--aug",
                          "fixed", "-q"]) == 2
    assert "'--aug fixed' needs a probability" in capsys.readouterr().err


def test_cli_resume_goes_on_with_the_runs_preset_and_target(paintings_store, tmp_path, capsys):
    run = tmp_path / "cli"
    common = ["--data", str(paintings_store), "--out", str(run), "--snap", "0.016", "--aug",
              "none", "--device", "cpu"]
    assert main([*common, "--preset", "dcgan_tiny", "--kimg", "0.016", "--xflip", "-q"]) == 0
    capsys.readouterr()
    # Neither flag repeated: not the default preset (tiny, another network) but the run's.
    assert main([*common, "--resume", "auto"]) == 0
    assert ("resuming as the run began: --preset dcgan_tiny --kimg 0.016 --xflip"
            in capsys.readouterr().err)
    assert main([*common, "--resume", "auto", "--kimg", "0.032", "-q"]) == 0  # A new target.
    config = read_config(run)
    assert config["preset"]["name"] == "dcgan_tiny" and config["train_config"]["xflip"]
    assert round(config["stats"]["kimg"], 3) == 0.032


@pytest.mark.slow
def test_kill_9_mid_run_leaves_a_resumable_run(paintings_store, tmp_path):
    run = tmp_path / "killed"
    cmd = [sys.executable, "-m", "gan.train", "--data", str(paintings_store), "--out", str(run),
           "--kimg", "100", "--snap", "0.016", "--device", "cpu", "-q"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            snaps = list((run / "snapshots").glob("0*")) if (run / "snapshots").exists() else []
            if len([s for s in snaps if not s.name.endswith(".partial")]) >= 3:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    latest = resolve_snapshot(run)
    state = load_state(latest)
    resumed = Trainer(_config(paintings_store, run, kimg=state["nimg"] / 1000 + 0.016,
                              resume="auto"))
    assert resumed.counters.nimg == state["nimg"]
    resumed.train()
    assert load_state(run)["nimg"] == state["nimg"] + 16


@pytest.mark.slow
def test_two_processes_stay_in_sync_under_torchrun(paintings_store, tmp_path):
    # The workers import this checkout whatever neuropaint pip has installed elsewhere.
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(29500 + os.getpid() % 1000),
           str(REPO / "tests" / "gan" / "ddp_worker.py"), str(paintings_store), str(tmp_path)]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    rank0 = (tmp_path / "rank0.txt").read_text().split()
    rank1 = (tmp_path / "rank1.txt").read_text().split()
    assert rank0 == rank1  # same weights, same augmentation p, same image count
    assert rank0[2] == "48"


def test_snapshot_metrics_are_written_and_do_not_change_the_run(paintings_store, tmp_path):
    plain = tmp_path / "plain"
    Trainer(_config(paintings_store, plain, kimg=0.032, snapshot_kimg=0.016)).train()
    measured = tmp_path / "measured"
    Trainer(_config(paintings_store, measured, kimg=0.032, snapshot_kimg=0.016, metrics=True,
                    metric_images=64)).train()
    lines = [json.loads(x) for x in (measured / "metrics.jsonl").read_text().splitlines()]
    assert [line["kimg"] for line in lines] == [0.016, 0.032]
    assert all(line["swd"] > 0 for line in lines)
    from safetensors.torch import load_file

    a = load_file(str(resolve_snapshot(plain) / "G.safetensors"))
    b = load_file(str(resolve_snapshot(measured) / "G.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


# --- --init: fine-tuning from a snapshot ------------------------------------------------------

@pytest.fixture(scope="module")
def small_collection(tmp_path_factory):
    """An artist's small collection: 16 Newman-like tiles of 16 px."""
    from datasets.procedural import write_store

    return write_store(tmp_path_factory.mktemp("artist") / "newman16", 16, 16, styles="newman")


def test_init_fine_tunes_with_fresh_optimisers_counters_and_data(paintings_store,
                                                                 small_collection, tmp_path):
    base = tmp_path / "base"
    Trainer(_config(paintings_store, base, kimg=0.032, snapshot_kimg=0.032)).train()
    tuned = tmp_path / "tuned"
    trainer = Trainer(_config(small_collection, tuned, kimg=0.016, snapshot_kimg=0.016,
                              init=str(base)))
    for name, net in (("G", trainer.G), ("D", trainer.D), ("G_ema", trainer.G_ema)):
        loaded = load_network(base, name).state_dict()
        for key, value in net.state_dict().items():
            torch.testing.assert_close(value, loaded[key], rtol=0, atol=0, msg=f"{name}.{key}")
    assert trainer.counters.nimg == 0 and not trainer.G_opt.state  # fresh
    assert trainer.data.path == str(small_collection) and trainer.ada.p == 0.1
    trainer.train()
    assert load_state(tuned)["nimg"] == 16
    assert read_config(tuned)["train_config"]["init"] == str(base)
    # The same command again continues the fine-tuning run instead of starting it over.
    again = Trainer(_config(small_collection, tuned, kimg=0.032, snapshot_kimg=0.016,
                            init=str(base), resume="auto"))
    assert again.counters.nimg == 16 and again.G_opt.state


def test_init_refuses_another_preset_and_a_missing_snapshot(paintings_store, tmp_path,
                                                            capsys):
    base = tmp_path / "base"
    Trainer(_config(paintings_store, base, kimg=0.016, snapshot_kimg=0.016)).train()
    with pytest.raises(NeuropaintError, match=r"holds a different G than preset 'tiny32' "
                       r"builds; use --init with the preset it was trained with \('tiny'\)"):
        Trainer(_config(paintings_store, tmp_path / "x", preset="tiny32", init=str(base)))
    with pytest.raises(NeuropaintError, match=r"^--init: no such snapshot or run: .*nowhere"):
        Trainer(_config(paintings_store, tmp_path / "x", init=str(tmp_path / "nowhere")))
    assert main(["--data", str(paintings_store), "--out", str(tmp_path / "cli"), "--init",
                 str(base), "--kimg", "0.008", "--snap", "0.008", "--device", "cpu", "-q"]) == 0
    assert "latest snapshot" in capsys.readouterr().out


# --- the extension points, used by a small InfoGAN-style extension -----------------------------

class CodeBank(Extension):
    """A categorical code (InfoGAN, Chen et al. 2016) through every extension point.

    Half of each batch is rendered from ``ws`` of a trainable bank of K codes (updated with G);
    an auxiliary head on D's features (updated in both phases) must tell which code made an
    image; the bank's sampling has its own random generator, resumed with the run.
    """

    name = "codes"
    stats_keys = ("aux_g", "aux_d")

    def __init__(self, k: int = 4):
        self.k = k

    def attach(self, trainer: Trainer) -> None:
        self.trainer = trainer
        G = trainer.G
        self.bank = torch.nn.Embedding(self.k, G.w_dim)
        with torch.no_grad():
            self.bank.weight.copy_(G.mapping(torch.randn(self.k, G.z_dim), None)[:, 0])
        features = trainer.D(torch.zeros(4, 3, 16, 16), None, return_features=True)[1]
        self.head = torch.nn.Linear(features.shape[1], self.k)
        trainer.add_trainable("bank", self.bank, torch.optim.Adam(self.bank.parameters(), 1e-3),
                              phases=["G"])
        trainer.add_trainable("head", self.head, torch.optim.Adam(self.head.parameters(), 1e-2),
                              phases=["G", "D"])
        self.gen = torch.Generator().manual_seed(7)

    def latents(self, n, phase):
        codes = torch.randint(self.k, [n // 2], generator=self.gen)
        with torch.set_grad_enabled(phase == "G"):
            ws = self.bank(codes)[:, None].expand(-1, self.trainer.G.num_ws, -1)
        return Latents(z=self.trainer.sample_z(n - len(codes)), ws=ws, extra={"codes": codes})

    def _aux(self, fake, key):
        codes = fake.latents.extra["codes"]
        logits = self.head(fake.features["D"][: len(codes)])
        loss = torch.nn.functional.cross_entropy(logits, codes)
        return loss, {key: loss.detach()}

    def g_loss(self, fake):
        return self._aux(fake, "aux_g")

    def d_loss(self, fake):
        return self._aux(fake, "aux_d")

    def state_dict(self):
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state):
        self.gen.set_state(state["gen"])

    def snapshot_config(self):
        return {"k": self.k}


@pytest.mark.slow
def test_extension_points_train_resume_exactly_and_learn(paintings_store, tmp_path):
    full = tmp_path / "full"
    trainer = Trainer(_config(paintings_store, full), extensions=[CodeBank()])
    trainer.train()
    half = tmp_path / "half"
    Trainer(_config(paintings_store, half, kimg=0.032), extensions=[CodeBank()]).train()
    resumed = Trainer(_config(paintings_store, half, resume="auto"), extensions=[CodeBank()])
    resumed.train()
    for name in ("G", "D", "G_ema"):
        a = load_network(full, name).state_dict()
        b = load_network(half, name).state_dict()
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=f"{name}.{key}")
    a, b = load_state(full), load_state(half)
    for name in ("bank", "head"):
        for key, value in a["trainables"][name]["weights"].items():
            torch.testing.assert_close(value, b["trainables"][name]["weights"][key], rtol=0,
                                       atol=0)
    assert read_config(full)["extensions"] == {"codes": {"k": 4}}
    lines = [json.loads(x) for x in (full / "stats.jsonl").read_text().splitlines()]
    assert all("aux_g" in line and "aux_d" in line for line in lines)
    assert load_generator(full).num_ws == trainer.G.num_ws  # G_ema stays a plain generator
    # The aux head learns to tell the codes apart (chance: ln 4 = 1.39).
    losses = [trainer.train_step()["aux_d"] for _ in range(40)]
    assert np.mean(losses[-20:]) < 0.5 * np.log(4)
    # A snapshot trained without the extension cannot be resumed with it.
    plain = tmp_path / "plain"
    Trainer(_config(paintings_store, plain, kimg=0.016, snapshot_kimg=0.016)).train()
    with pytest.raises(NeuropaintError, match=r"was trained without 'codes'; start from it "
                       r"with --init instead"):
        Trainer(_config(paintings_store, plain, resume="auto"), extensions=[CodeBank()])


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_writes_a_snapshot_that_resume_auto_continues(paintings_store, tmp_path, signum):
    """SIGINT (Ctrl-C) or SIGTERM to a real training process: a snapshot before it exits, and
    --resume auto continues from it."""
    run = tmp_path / "interrupted"
    cmd = [sys.executable, "-m", "gan.train", "--data", str(paintings_store), "--out", str(run),
           "--preset", "tiny", "--kimg", "100", "--device", "cpu", "-q"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "stats.jsonl").exists():  # the first tick (0.1 kimg) is written
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.05)
        assert not (run / "snapshots").exists()  # nothing saved yet: Ctrl-C must save it
        sent = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        seconds = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "writing a snapshot" in err
    latest = resolve_snapshot(run)
    state = load_state(latest)
    assert state["nimg"] >= 100
    assert f"interrupted at {state['nimg'] / 1000:.3f} kimg: snapshot {latest}" in out
    assert seconds < 30, f"{seconds:.1f} s from SIGINT to exit"
    print(f"{signal.Signals(signum).name} to exit: {seconds:.2f} s; saved {latest.name}")
    # The last stats line is the snapshot's point; a resumed run continues from it.
    stats = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["kimg"] == state["nimg"] / 1000
    resumed = Trainer(_config(paintings_store, run, kimg=state["nimg"] / 1000 + 0.016,
                              resume="auto", snapshot_kimg=4.0, tick_kimg=0.1))
    assert resumed.counters.nimg == state["nimg"]
    resumed.train()
    assert load_state(run)["nimg"] == state["nimg"] + 16


def test_resume_auto_with_nothing_to_resume_starts_fresh_and_drops_stale_stats(
        paintings_store, tmp_path, caplog):
    run = tmp_path / "stale"
    run.mkdir()
    # An earlier run that stopped (kill -9) before its first snapshot left stats behind.
    (run / "stats.jsonl").write_text("".join(json.dumps({"kimg": k, "loss_g": 1.0}) + "\n"
                                             for k in (0.1, 0.2, 0.3)))
    trainer = Trainer(_config(paintings_store, run, resume="auto"))
    assert "has no snapshot to resume" in caplog.text and "starting fresh" in caplog.text
    assert trainer.counters.nimg == 0
    assert (run / "stats.jsonl").read_text() == ""
    trainer.train()
    lines = [json.loads(x)["kimg"] for x in (run / "stats.jsonl").read_text().splitlines()]
    assert lines == sorted(lines)  # training.png no longer loops back


def test_resume_drops_stats_written_after_the_resumed_snapshot(paintings_store, tmp_path):
    run = tmp_path / "run"
    Trainer(_config(paintings_store, run, kimg=0.032)).train()  # snapshot at 32 images
    with open(run / "stats.jsonl", "a") as fh:  # a run killed after its snapshot at 32 img
        fh.write(json.dumps({"kimg": 0.048, "loss_g": 9.0}) + "\n")
    resumed = Trainer(_config(paintings_store, run, resume="auto"))
    kimgs = [round(json.loads(x)["kimg"], 3)
             for x in (run / "stats.jsonl").read_text().splitlines()]
    assert kimgs == [0.016, 0.032]
    assert [round(h["kimg"], 3) for h in resumed.history] == kimgs


def test_snapshots_also_follow_the_wall_clock(paintings_store, tmp_path):
    run = tmp_path / "timed"
    # Every step is a snapshot when the interval is tiny; kimg alone would give one.
    Trainer(_config(paintings_store, run, kimg=0.032, snapshot_kimg=4.0,
                    snapshot_minutes=1e-6)).train()
    assert sorted(p.name for p in (run / "snapshots").iterdir()) == [
        "000000000008", "000000000016", "000000000024", "000000000032"]


def test_list_presets_prints_one_line_each(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--list-presets"])
    assert exc.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list_presets()
    assert "16 px" in lines[0]


def test_a_fresh_run_in_a_used_folder_says_so_and_restarts_the_curve(paintings_store, tmp_path,
                                                                       caplog):
    run = tmp_path / "run"
    Trainer(_config(paintings_store, run, kimg=0.032)).train()
    Trainer(_config(paintings_store, run, kimg=0.016))  # no --resume: a new run, same folder
    assert "already holds snapshots; this run starts fresh (add --resume auto" in caplog.text
    assert (run / "stats.jsonl").read_text() == ""
