"""neuropaint's shared helpers: validation messages, atomic writes, CLI errors, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from neuropaint.atomic import atomic_open, atomic_path, trim_json_lines, write_json, write_text
from neuropaint.logs import run_cli
from neuropaint.signals import stop_on_signals
from neuropaint.validate import (
    NeuropaintError,
    build_config,
    check_int,
    check_option,
    check_positive,
    check_unique,
)


class _Toy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(1.0, gt=0, description="A rate.")
    mode: Literal["a", "b"] = Field("a", description="A mode.")


def test_check_positive_message_names_the_parameter_and_value():
    with pytest.raises(NeuropaintError, match=r"^'sfreq' must be a positive number, got -3\.$"):
        check_positive(-3, "sfreq")
    assert check_positive(2, "sfreq") == 2.0


@pytest.mark.parametrize("value", [0, float("nan"), float("inf"), "3", True, None])
def test_check_positive_refuses_non_positive_and_non_numbers(value):
    with pytest.raises(NeuropaintError, match=r"'x' must be a positive number"):
        check_positive(value, "x")


def test_check_int_and_option_and_unique_messages():
    with pytest.raises(NeuropaintError, match=r"'n' must be an integer >= 1, got 0\."):
        check_int(0, "n", minimum=1)
    with pytest.raises(NeuropaintError, match=r"'level' must be one of 'a', 'b', got 'c'\."):
        check_option("c", "level", ["a", "b"])
    with pytest.raises(NeuropaintError, match=r"'ch_names' must be unique, got duplicates \['Cz'\]"):
        check_unique(["Cz", "Pz", "Cz"], "ch_names")


def test_build_config_turns_validation_errors_into_one_line():
    with pytest.raises(NeuropaintError) as info:
        build_config(_Toy, rate=-1, colour="red")
    message = str(info.value)
    assert "\n" not in message
    assert "'rate'" in message and "'colour': unknown field" in message


def test_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "out" / "report.json"
    write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]


def test_failed_atomic_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "data.txt"
    write_text(target, "precious")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as fh:
        fh.write("half")
        raise RuntimeError("writer died")
    assert target.read_text() == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]


def test_atomic_path_keeps_the_suffix_for_writers_that_need_it(tmp_path):
    with atomic_path(tmp_path / "picture.png") as tmp:
        assert tmp.suffix == ".png"
        tmp.write_bytes(b"png")
    assert (tmp_path / "picture.png").read_bytes() == b"png"


def test_run_cli_prints_user_errors_as_one_line(capsys):
    def main(argv=None):
        raise NeuropaintError("'sfreq' must be a positive number, got -3.")

    assert run_cli(main, []) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("error: 'sfreq' must be a positive number, got -3.")
    assert len(err.splitlines()) == 1


def test_atomic_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    write_text(tmp_path / "a.txt", "x")
    plain = tmp_path / "b.txt"
    plain.write_text("x")
    mode = stat.S_IMODE(os.stat(tmp_path / "a.txt").st_mode)
    assert mode == stat.S_IMODE(os.stat(plain).st_mode)


def test_atomic_folder_replaces_the_target_only_when_complete(tmp_path):
    from neuropaint.atomic import atomic_folder

    target = tmp_path / "store"
    with atomic_folder(target) as partial:
        (partial / "a.txt").write_text("first")
    assert (target / "a.txt").read_text() == "first"
    with pytest.raises(RuntimeError), atomic_folder(target) as partial:
        (partial / "a.txt").write_text("half")
        raise RuntimeError("writer died")
    assert (target / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]


def test_read_manifest_checks_kind_version_and_unfinished_writes(tmp_path):
    from neuropaint.validate import read_manifest

    def read(folder):
        return read_manifest(folder, "manifest.json", kind="k", format_version=1,
                             what="a thing", verb="build")

    folder = tmp_path / "thing"
    (tmp_path / "thing.partial").mkdir()
    with pytest.raises(NeuropaintError, match=r"is not a thing: no manifest.json \(a build"):
        read(folder)
    folder.mkdir()
    write_json(folder / "manifest.json", {"kind": "other"})
    with pytest.raises(NeuropaintError, match=r"is not a thing \(kind 'other'\)"):
        read(folder)
    write_json(folder / "manifest.json", {"kind": "k", "format_version": 9})
    with pytest.raises(NeuropaintError, match=r"format version 9; this neuropaint reads up to 1"):
        read(folder)
    write_json(folder / "manifest.json", {"kind": "k", "format_version": 1, "x": 2})
    assert read(folder)["x"] == 2


# The main thread holds the lock that stopping needs when the signal comes: a handler that
# stopped by itself would wait for its own thread (how a killed live.render left its
# simulator running). In a child process, so that a regression hangs there, not here.
_SIGNAL_WHILE_HOLDING_THE_LOCK = textwrap.dedent("""
    import os, signal, threading, time
    from neuropaint.signals import stop_on_signals

    lock, stopped = threading.Lock(), threading.Event()

    def on_stop():
        with lock:
            stopped.set()

    with stop_on_signals(on_stop):
        for _ in range(3):
            stopped.clear()
            with lock:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.1)  # the handler runs in here, the lock held
            assert stopped.wait(5), "on_stop never ran"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    print("stopped three times")
""")


def test_a_signal_that_comes_while_the_main_thread_holds_a_lock_still_stops():
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_WHILE_HOLDING_THE_LOCK],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "stopped three times"


def test_stop_on_signals_calls_on_stop_and_restores_the_previous_handler():
    before = signal.getsignal(signal.SIGINT)
    called = threading.Event()
    with stop_on_signals(called.set, (signal.SIGINT,)):
        assert signal.getsignal(signal.SIGINT) is not before
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the block handles it
        assert called.wait(5)
    assert signal.getsignal(signal.SIGINT) is before


def test_trim_json_lines_keeps_lines_up_to_the_resumed_point(tmp_path):
    log = tmp_path / "stats.jsonl"
    assert trim_json_lines(log, "kimg", 1.0) == ([], 0)  # no file: nothing to trim
    log.write_text("".join(json.dumps({"kimg": k}) + "\n" for k in (0.1, 0.2, 0.3)) + "\n")
    kept, dropped = trim_json_lines(log, "kimg", 0.2)
    assert (kept, dropped) == ([{"kimg": 0.1}, {"kimg": 0.2}], 1)
    assert [json.loads(x) for x in log.read_text().splitlines()] == kept
    assert trim_json_lines(log, "kimg", 0.0) == ([], 2)
    assert log.read_text() == ""
