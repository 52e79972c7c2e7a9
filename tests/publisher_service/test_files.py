"""``iotwatch publish --out DIR``: the files, their format, and byte-identical repeats."""

from __future__ import annotations

import re
from pathlib import Path

from iotwatch.timeparse import format_rfc3339, parse_timestamp

from .support import PROJECT, faults, fleet, read_csv_rows, read_labels, run_publisher, write_yaml

HVAC = PROJECT / "config" / "fleets" / "hvac-plant.yaml"


def out(tmp_path: Path, name: str, *args: str) -> Path:
    result = run_publisher([*args, "--out", str(tmp_path / name)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / name


def test_same_fleet_and_seed_give_byte_identical_files(tmp_path: Path) -> None:
    args = ("--fleet", str(HVAC), "--duration", "10800", "--seed", "7")
    first, second = out(tmp_path, "a", *args), out(tmp_path, "b", *args)
    other = out(tmp_path, "c", "--fleet", str(HVAC), "--duration", "10800", "--seed", "8")
    for name in ("readings.csv", "labels.jsonl"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
        assert (first / name).read_bytes() != (other / name).read_bytes()
    labels = read_labels(first / "labels.jsonl")
    assert len(labels) >= 2  # a scheduled spike plus random faults


def test_readings_csv_format(tmp_path: Path) -> None:
    directory = out(tmp_path, "o", "--fleet", str(HVAC), "--count", "30",
                    "--start", "2026-03-01T12:00:00Z")
    text = (directory / "readings.csv").read_text()
    assert text.startswith("ts,site,device,metric,value\n") and text.endswith("\n")
    rows = read_csv_rows(directory / "readings.csv")
    assert len(rows) == 39 * 30  # streams x ticks, no faults in the first 30 ticks
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    for ts, site, device, metric, value in rows:
        assert stamp.match(ts) and format_rfc3339(parse_timestamp(ts)) == ts
        assert site in ("plant-1", "plant-2") and device and metric
        float(value)
    assert rows[0][0] == "2026-03-01T12:00:00.000Z"
    assert [parse_timestamp(r[0]) for r in rows] == sorted(parse_timestamp(r[0]) for r in rows)


def test_files_start_at_a_fixed_time_unless_told(tmp_path: Path) -> None:
    directory = out(tmp_path, "o", "--fleet", str(HVAC), "--count", "1")
    assert read_csv_rows(directory / "readings.csv")[0][0].startswith("2026-01-01T00:00:00")


def test_labels_match_what_changed_in_the_readings(tmp_path: Path) -> None:
    """Faults on, faults off, same seed: rows differ exactly inside the labelled windows."""
    base = fleet()
    with_faults = fleet(faults=faults(
        {"stream": "plant-1/boiler-1/supply_temp", "kind": "level_shift", "start_s": 600,
         "duration_s": 300, "params": {"delta": 10}},
        {"stream": "plant-1/pump-1/power", "kind": "dropout", "start_s": 1000,
         "duration_s": 200},
        {"stream": "plant-1/boiler-2/pressure", "kind": "garbage", "start_s": 1500,
         "params": {"mode": "malformed"}}))
    write_yaml(tmp_path / "clean.yaml", base)
    write_yaml(tmp_path / "faulty.yaml", with_faults)
    clean = read_csv_rows(out(tmp_path, "clean", "--fleet", "clean.yaml", "--count", "300")
                          / "readings.csv")
    faulty_dir = out(tmp_path, "faulty", "--fleet", "faulty.yaml", "--count", "300")
    faulty = read_csv_rows(faulty_dir / "readings.csv")
    labels = read_labels(faulty_dir / "labels.jsonl")
    assert [x["kind"] for x in labels] == ["level_shift", "dropout", "garbage"]

    def labelled(row: list[str]) -> dict | None:
        ts = parse_timestamp(row[0])
        return next((x for x in labels if "/".join(row[1:4]) == "/".join(
            (x["site"], x["device"], x["metric"])) and parse_timestamp(x["start"]) <= ts
            <= parse_timestamp(x["end"])), None)

    faulty_by_key = {tuple(r[:4]): r[4] for r in faulty}
    changed = {"level_shift": 0, "dropout": 0, "garbage": 0}
    for row in clean:
        label = labelled(row)
        if label is None:
            assert faulty_by_key[tuple(row[:4])] == row[4]
        elif label["kind"] == "level_shift":
            assert float(faulty_by_key[tuple(row[:4])]) == float(row[4]) + 10
            changed["level_shift"] += 1
        else:  # a dropped reading, or one broken on purpose: no row
            assert tuple(row[:4]) not in faulty_by_key
            changed[label["kind"]] += 1
    assert changed["level_shift"] >= 29 and changed["dropout"] >= 9 and changed["garbage"] == 1
    assert len(faulty) == len(clean) - changed["dropout"] - changed["garbage"]
