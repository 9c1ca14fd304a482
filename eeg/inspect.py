"""``python -m eeg.inspect``: what is in an EEG recording, at a glance.

Prints the channels, rate, duration, line frequency, bad channels and bad spans found by
:func:`eeg.preprocess.clean`, and a table of band power per scalp region from
:func:`eeg.features.extract`; ``--plot`` draws the spectra per region and the band powers.

Examples
--------
python -m eeg.inspect recording.edf --plot recording.png
python -m eeg.inspect --synthetic 60 --plot demo.png     # no file needed
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import mne
import numpy as np

from eeg.features import WHOLE_HEAD, FeatureFrame, FeatureSpec, extract
from eeg.io import UNITS_CHOICES
from eeg.preprocess import CleanReport, PreprocessConfig, clean
from neuropaint.atomic import atomic_path
from neuropaint.logs import run_cli, setup_logging
from neuropaint.validate import NeuropaintError

logger = logging.getLogger(__name__)


def band_table(frame: FeatureFrame, spec: FeatureSpec) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Mean absolute (µV²) and relative band power per unit over the valid rows.

    Returns
    -------
    units : list of str
    power : ndarray, shape (n_units, n_bands), µV²
    relative : ndarray, shape (n_units, n_bands)
    """
    rows = frame.valid if frame.valid.any() else np.ones(len(frame), dtype=bool)
    if len(frame) == 0:
        rows = slice(None)  # No rows at all (a recording shorter than a window): NaN means.
    units = [n.rsplit(":", 1)[1] for n in frame.names if n.startswith("log_power:")]
    units = list(dict.fromkeys(units))
    power = np.zeros((len(units), len(spec.bands)))
    relative = np.zeros_like(power)
    for u, unit in enumerate(units):
        for b, band in enumerate(spec.bands):
            power[u, b] = np.mean(10.0 ** frame.column(f"log_power:{band}:{unit}")[rows])
            relative[u, b] = np.mean(frame.column(f"relative_power:{band}:{unit}")[rows])
    return units, power, relative


def describe(raw: mne.io.BaseRaw, report: CleanReport, frame: FeatureFrame,
             spec: FeatureSpec, source: str) -> str:
    """The text summary printed by the CLI (``raw`` is the recording before cleaning)."""
    units, power, relative = band_table(frame, spec)
    names = raw.ch_names
    spans = ", ".join(f"{reason} {stats.count}" for reason, stats in report.bad_spans.items())
    lines = [
        f"recording: {source}",
        f"channels:  {len(names)} EEG ({_short_list(names)})",
        f"rate:      {report.sfreq:g} Hz",
        f"duration:  {report.duration:.1f} s",
        f"line:      {_line_text(report)}",
        f"bad channels: {_bads_text(report)}",
        f"bad spans: {report.bad_span_seconds:.1f} s, {100 * report.bad_span_fraction:.1f} % "
        f"of the recording ({spans or 'none'})",
        f"after cleaning: {report.n_channels_out} channels, filter "
        f"{report.l_freq}-{report.h_freq} Hz, reference {report.reference}",
    ]
    if report.units_note:
        lines.append(f"units:     {report.units_note}")
    lines.extend(f"warning:   {w}" for w in report.warnings)
    if len(frame) and not frame.valid.any():
        lines.append("warning:   no clean feature row: the band powers below are over all rows, "
                     "artefacts included")
    lines += [
        "",
        "band power per region: mean µV² (relative %)",
        f"{'region':<20}" + "".join(f"{band:>16}" for band in spec.bands),
    ]
    for u, unit in enumerate(units):
        cells = "".join(f"{power[u, b]:9.2f} ({100 * relative[u, b]:3.0f}%)"
                        for b in range(len(spec.bands)))
        lines.append(f"{unit:<20}{cells}")
    return "\n".join(lines)


def _short_list(names: Sequence[str], limit: int = 10) -> str:
    head = ", ".join(names[:limit])
    return head + (f", ... +{len(names) - limit}" if len(names) > limit else "")


def _line_text(report: CleanReport) -> str:
    if report.line_freq is None:
        return "no line noise found (no notch)"
    how = "detected" if report.line_freq_detected else "given"
    return f"{report.line_freq:g} Hz ({how}); notched at {list(report.notch_freqs)} Hz"


def _bads_text(report: CleanReport) -> str:
    if not report.bad_channels:
        return "none"
    parts = [f"{name} ({reason})" for name, reason in report.bad_channels.items()]
    fate = []
    if report.interpolated:
        fate.append(f"interpolated {report.interpolated}")
    if report.dropped:
        fate.append(f"dropped {report.dropped}")
    return ", ".join(parts) + (f"; {'; '.join(fate)}" if fate else "")


def plot(raw: mne.io.BaseRaw, frame: FeatureFrame, spec: FeatureSpec, fname: Path,
         title: str, *, before: mne.io.BaseRaw | None = None) -> Path:
    """Spectra per region (left) and band power per region (right), written atomically.

    ``raw`` is the cleaned recording; ``before``, when given, adds its whole-head spectrum
    before cleaning (dashed), so that the effect of the filters and notches shows.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import signal

    from eeg.channels import channel_regions

    sfreq = raw.info["sfreq"]
    data = raw.get_data(picks="eeg", reject_by_annotation="omit", verbose="error")
    if data.ndim != 2 or data.shape[1] < int(2 * sfreq):
        # Everything (or all but a sliver) is annotated bad: show the whole recording, say so.
        data = raw.get_data(picks="eeg")
        title += " (all of it marked bad: spectra include the artefacts)"
    freqs, psd = signal.welch(data, fs=sfreq, nperseg=min(data.shape[1], int(2 * sfreq)))
    regions = channel_regions(raw.info, raw.ch_names)
    units, power, _ = band_table(frame, spec)

    fig, (ax_psd, ax_bands) = plt.subplots(1, 2, figsize=(13, 5), width_ratios=[1.2, 1])
    keep = (freqs >= 0.5) & (freqs <= min(60.0, sfreq / 2))
    cmap = plt.get_cmap("tab20")
    for i, unit in enumerate(units):
        members = ([True] * len(raw.ch_names) if unit == WHOLE_HEAD
                   else [regions[c] == unit for c in raw.ch_names])
        curve = psd[np.asarray(members)].mean(axis=0) * 1e12
        ax_psd.semilogy(freqs[keep], curve[keep], color="black" if unit == WHOLE_HEAD else
                        cmap(i % 20), lw=2.2 if unit == WHOLE_HEAD else 1.1, label=unit)
    if before is not None:
        raw_data = before.get_data(picks="eeg")
        raw_data = raw_data[:, np.all(np.isfinite(raw_data), axis=0)]
        f_raw, psd_raw = signal.welch(raw_data, fs=before.info["sfreq"],
                                      nperseg=min(raw_data.shape[1], int(2 * sfreq)))
        keep_raw = (f_raw >= 0.5) & (f_raw <= min(60.0, sfreq / 2))
        ax_psd.semilogy(f_raw[keep_raw], np.median(psd_raw, axis=0)[keep_raw] * 1e12,
                        color="0.4", ls="--", lw=1.2, label="before cleaning (median)")
    for b, (low, high) in enumerate(spec.bands.values()):
        ax_psd.axvspan(low, high, color="0.5", alpha=0.07 * (1 + b % 2), lw=0)
    ax_psd.set(xlabel="frequency (Hz)", ylabel="power (µV²/Hz)", title="spectrum per region")
    ax_psd.legend(fontsize=7, ncol=2)
    image = ax_bands.imshow(np.log10(power), aspect="auto", cmap="magma")
    ax_bands.set_xticks(range(len(spec.bands)), list(spec.bands))
    ax_bands.set_yticks(range(len(units)), units, fontsize=8)
    ax_bands.set_title("band power per region (log10 µV²)")
    fig.colorbar(image, ax=ax_bands)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(fname) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return Path(fname)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eeg.inspect",
        description="Summarise an EEG recording: channels, rate, line noise, bad channels, "
        "band power per region.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("file", nargs="?", help="EDF, BDF, GDF, FIF, BrainVision .vhdr, "
                        "EEGLAB .set or XDF recording")
    source.add_argument("--synthetic", type=float, metavar="SECONDS",
                        help="inspect a synthetic recording of this length instead of a file")
    parser.add_argument("--stream", help="XDF only: the EEG stream's name or type")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="write a picture here")
    parser.add_argument("--units", choices=UNITS_CHOICES, default="auto",
                        help="unit of the file's numbers: auto trusts the file unless its "
                        "amplitude cannot be EEG in that unit, then rescales and says so; V, "
                        "uV or mV override the file (default: auto)")
    parser.add_argument("--line-freq", type=float, choices=[50.0, 60.0],
                        help="mains frequency (default: detected from the spectrum)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    args = parser.parse_args(argv)
    setup_logging("INFO" if args.verbose else "WARNING")

    if args.synthetic is not None:
        from eeg.synthetic import make_raw

        if args.synthetic <= 0:
            raise NeuropaintError(f"'--synthetic' must be a positive number of seconds, "
                                  f"got {args.synthetic:g}.")
        raw = make_raw(args.synthetic, n_channels=32, seed=0, bad_channel="T8")
        label = f"synthetic, {args.synthetic:g} s, 32 channels (T8 made bad on purpose)"
    else:
        from eeg.io import read_raw

        raw = read_raw(args.file, stream=args.stream, units=args.units)
        label = str(args.file)
    spec = FeatureSpec()
    cleaned, report = clean(raw, PreprocessConfig(line_freq=args.line_freq))
    frame = extract(cleaned, spec)
    print(describe(raw, report, frame, spec, label))
    if args.plot:
        path = plot(cleaned, frame, spec, args.plot, Path(label).name, before=raw)
        print(f"\npicture: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
