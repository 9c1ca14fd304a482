"""neuropaint.logs: one log format for a CLI, whatever the libraries and warnings do."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import warnings

import mne
import numpy as np

from neuropaint.logs import quiet_lsl_config, setup_logging


def test_warnings_and_long_lists_are_one_line_each(capsys):
    setup_logging("INFO")
    logging.getLogger("eeg.io").info("dropping %d non-EEG channel(s): %s", 316,
                                     [f"MEG {i:04d}" for i in range(316)])
    warnings.warn("Mean of empty slice", RuntimeWarning, stacklevel=1)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith("INFO    eeg.io: dropping 316 non-EEG channel(s): MEG 0000, "
                             "MEG 0001, MEG 0002, MEG 0003, MEG 0004, MEG 0005, MEG 0006, "
                             "MEG 0007, … 308 more")
    # On the warning module's own logger, not 'py.warnings', without the source line.
    assert re.search(rf"WARNING {__name__}: RuntimeWarning: Mean of empty slice "
                     r"\(test_logs.py:\d+\)$", lines[1]), lines[1]


def _meg_recording(path) -> None:
    names = [f"MEG {i:04d}" for i in range(40)] + ["Fz", "Cz", "Pz"]
    info = mne.create_info(names, 256.0, ["mag"] * 40 + ["eeg"] * 3)
    rng = np.random.default_rng(0)
    mne.io.RawArray(rng.normal(0, 1e-5, (43, 512)), info, verbose="error").save(
        path, verbose="error")


def test_simulator_log_has_no_liblsl_or_mne_chatter_unless_verbose(tmp_path):
    """A real simulator process streaming a FIF with MEG channels (MNE reads it, liblsl
    starts): one format on stderr; ``-v`` lets the libraries talk."""
    recording = tmp_path / "meg_raw.fif"
    _meg_recording(recording)
    runs = {}
    for extra in ([], ["-v"]):
        proc = subprocess.run([sys.executable, "-m", "live.simulate", "--file", str(recording),
                               "--duration", "0.5", "--name", f"np-logs-{len(extra)}", *extra],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        runs[bool(extra)] = proc
    quiet = runs[False].stderr.splitlines()
    assert quiet and all(" INFO    " in line or " WARNING " in line for line in quiet), quiet
    assert any("dropping 40 non-EEG channel(s): MEG 0000" in line and "… 32 more" in line
               for line in quiet)
    assert "Opening raw data file" not in runs[False].stdout + runs[False].stderr
    loud = runs[True].stderr
    assert "api_config.cpp" in loud  # liblsl's own start-up lines, in its own format
    assert "Opening raw data file" in loud  # MNE, now in ours
    assert any(" INFO    mne: Opening raw data file" in line for line in loud.splitlines())


def test_quiet_liblsl_keeps_the_lslapicfg_file(tmp_path, monkeypatch):
    """The tests' loopback-only file (and any user's) survives; only the log level is added."""
    config = quiet_lsl_config()  # tests/conftest.py points LSLAPICFG at tests/lsl/lsl_api.cfg
    assert "[multicast]\nResolveScope = machine\n" in config
    assert "KnownPeers = {127.0.0.1}" in config and "[log]\nlevel = -2\n" in config
    odd = tmp_path / "odd.cfg"
    odd.write_text("no section header = here\n")
    monkeypatch.setenv("LSLAPICFG", str(odd))
    assert quiet_lsl_config() is None  # unreadable here: left to liblsl as it is
