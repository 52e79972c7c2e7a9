"""Small labelled data sets in each input format, generated per test (never the shared data)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

START = datetime(2024, 1, 1, tzinfo=UTC)


def nab_stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def signal(rows: int, seed: int, bursts: dict[int, float] | None = None,
           length: int = 10) -> np.ndarray:
    """A daily-ish cycle with noise, plus ``length``-row bursts starting at the given rows.

    (Bursts, not single-row spikes: the engine's calibration averages the last few raw
    scores, so one isolated row barely moves the calibrated score.)
    """
    rng = np.random.default_rng(seed)
    values = 50 + 10 * np.sin(np.arange(rows) * 2 * np.pi / 96) + rng.normal(0, 0.5, rows)
    for row, height in (bursts or {}).items():
        values[row:row + length] += height
    return values


def write_nab(root: Path, *, quirks: bool = True) -> tuple[Path, Path]:
    """Two categories, three files; returns (data dir, labels file).

    ``synthetic/spikes.csv``: 600 rows, 5-minute step, 10-row bursts from rows 300 and 450,
    each inside a 20-row window. ``synthetic/quiet.csv``: no anomaly. ``other/repeat.csv``:
    a repeated timestamp and one that goes backwards, with a window at rows 200..219.
    """
    data = root / "nab"
    step = timedelta(minutes=5)
    files = {
        "synthetic/spikes.csv": (signal(600, 1, {300: 40.0, 450: -40.0}), [(290, 309), (440, 459)]),
        "synthetic/quiet.csv": (signal(400, 2), []),
        "other/repeat.csv": (signal(300, 3, {205: 30.0}), [(200, 219)]),
    }
    labels = {}
    for rel, (values, windows) in files.items():
        times = [START + i * step for i in range(len(values))]
        if quirks and rel == "other/repeat.csv":
            times[50] = times[49]                    # a repeated timestamp
            times[80] = times[78]                    # and one that goes backwards
        path = data / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["timestamp,value"] + [f"{nab_stamp(t)},{v:.4f}" for t, v in zip(times, values, strict=True)]
        path.write_text("\n".join(lines) + "\n")
        labels[rel] = [[nab_stamp(times[a]) + ".000000", nab_stamp(times[b]) + ".000000"]
                       for a, b in windows]
    label_path = root / "labels.json"
    label_path.write_text(json.dumps(labels, indent=1))
    return data, label_path


SKAB_COLUMNS = ["Accelerometer1RMS", "Current", "Pressure", "Volume Flow RateRMS"]


def write_skab(root: Path) -> Path:
    """``valve1/0.csv`` (an episode at rows 500..579 shifting two sensors) and
    ``anomaly-free/anomaly-free.csv`` (no label columns); 1-second rows."""
    data = root / "skab"
    rng = np.random.default_rng(5)
    for rel, rows, episode in (("valve1/0.csv", 700, (500, 579)),
                               ("anomaly-free/anomaly-free.csv", 450, None)):
        base = np.array([0.2, 2.0, 0.5, 120.0])
        values = base + rng.normal(0, 1, (rows, len(base))) * base * 0.01
        anomaly = np.zeros(rows)
        if episode:
            a, b = episode
            values[a:b + 1, 2] += 0.4
            values[a:b + 1, 3] -= 30
            anomaly[a:b + 1] = 1
        header = ["datetime", *SKAB_COLUMNS] + (["anomaly", "changepoint"] if episode else [])
        lines = [";".join(header)]
        for i in range(rows):
            cells = [nab_stamp(START + timedelta(seconds=i)), *(f"{v:.6f}" for v in values[i])]
            if episode:
                cells += [f"{anomaly[i]:.1f}", "1.0" if episode and i in episode else "0.0"]
            lines.append(";".join(cells))
        path = data / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
    return data


def write_iotwatch(root: Path) -> Path:
    """The publisher's recording: two interleaved streams of one device, one fault."""
    data = root / "recording"
    data.mkdir(parents=True)
    temperature = signal(500, 8, {350: 40.0})
    humidity = signal(500, 9)
    lines = ["ts,site,device,metric,value"]
    for i in range(500):
        ts = (START + timedelta(seconds=10 * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        lines.append(f"{ts},plant-1,boiler-1,temperature,{temperature[i]:.3f}")
        lines.append(f"{ts},plant-1,boiler-1,humidity,{humidity[i]:.3f}")
    (data / "readings.csv").write_text("\n".join(lines) + "\n")
    fault = {"site": "plant-1", "device": "boiler-1", "metric": "temperature", "kind": "spike",
             "start": (START + timedelta(seconds=3500)).strftime("%Y-%m-%dT%H:%M:%SZ"),
             "end": (START + timedelta(seconds=3590)).strftime("%Y-%m-%dT%H:%M:%SZ")}
    (data / "labels.jsonl").write_text(json.dumps(fault) + "\n")
    return data


@pytest.fixture
def nab_dir(tmp_path: Path) -> tuple[Path, Path]:
    return write_nab(tmp_path)


@pytest.fixture
def skab_dir(tmp_path: Path) -> Path:
    return write_skab(tmp_path)


@pytest.fixture
def iotwatch_dir(tmp_path: Path) -> Path:
    return write_iotwatch(tmp_path)
