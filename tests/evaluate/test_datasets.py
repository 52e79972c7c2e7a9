"""Loading NAB, SKAB and publisher recordings: row order, labels, windows and clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detector.evaluate.datasets import (
    DatasetError,
    Span,
    default_labels,
    detect_format,
    load,
    merge_spans,
    spans_from_windows,
)


def by_key(series):
    return {s.key: s for s in series}


def test_nab_keeps_file_order_with_repeated_and_backward_timestamps(nab_dir):
    data, labels = nab_dir
    series = by_key(load(data, "nab", labels))
    assert set(series) == {"synthetic/spikes", "synthetic/quiet", "other/repeat"}
    repeat = series["other/repeat"]
    assert repeat.rows == 300
    assert repeat.timestamps[50] == repeat.timestamps[49]
    assert repeat.timestamps[80] < repeat.timestamps[79]
    assert repeat.stamps[0] == "2024-01-01 00:00:00"
    raw = (data / "other/repeat.csv").read_text().splitlines()[1:]
    assert [float(line.split(",")[1]) for line in raw] == pytest.approx(repeat.values[:, 0])


def test_nab_windows_become_row_spans_and_labels(nab_dir):
    data, labels = nab_dir
    series = by_key(load(data, "nab", labels))
    spikes = series["synthetic/spikes"]
    assert spikes.spans == (Span(290, 309), Span(440, 459))
    assert spikes.labels().sum() == 40
    assert spikes.labels()[289] == 0 and spikes.labels()[290] == 1 and spikes.labels()[309] == 1
    assert series["synthetic/quiet"].spans == ()
    # NAB's probation: 15% of the rows
    assert spikes.warmup_rows == 90 and spikes.metrics == ("value",)


def test_nab_evaluates_only_labelled_files(nab_dir):
    data, labels = nab_dir
    raw = json.loads(labels.read_text())
    del raw["synthetic/quiet.csv"]
    labels.write_text(json.dumps(raw))
    assert {s.key for s in load(data, "nab", labels)} == {"synthetic/spikes", "other/repeat"}


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda raw: raw.update({"synthetic/missing.csv": []}),
     "1 labelled file(s) not found under"),
    (lambda raw: raw.update({"synthetic/spikes.csv": [["2024-01-01 01:00:00"]]}),
     "expected [start, end]"),
    (lambda raw: raw.update({"synthetic/spikes.csv": [["yesterday", "2024-01-01"]]}),
     "expected RFC 3339"),
    (lambda raw: raw.update({"synthetic/spikes.csv": [["2024-01-02", "2024-01-01"]]}),
     "ends before it starts"),
])
def test_bad_nab_labels_name_the_problem(nab_dir, mutate, message):
    data, labels = nab_dir
    raw = json.loads(labels.read_text())
    mutate(raw)
    labels.write_text(json.dumps(raw))
    with pytest.raises(DatasetError, match="labels.json") as error:
        load(data, "nab", labels)
    assert message in str(error.value)


def test_bad_nab_row_names_file_and_line(nab_dir):
    data, labels = nab_dir
    path = data / "synthetic/quiet.csv"
    lines = path.read_text().splitlines()
    lines[3] = "2024-01-01 00:10:00,n/a"
    path.write_text("\n".join(lines))
    with pytest.raises(DatasetError, match=r"quiet.csv:4: expected a number, got 'n/a'"):
        load(data, "nab", labels)


def test_nab_without_labels_says_how_to_pass_them(nab_dir):
    data, _ = nab_dir
    assert default_labels(data, "nab") is None
    with pytest.raises(DatasetError, match="needs a labels file; pass --labels FILE"):
        load(data, "nab", None)


def test_nab_labels_next_to_data_are_found(nab_dir):
    data, labels = nab_dir
    (data / "combined_windows.json").write_text(labels.read_text())
    assert default_labels(data, "nab") == data / "combined_windows.json"


def test_skab_columns_are_metrics_of_one_device_and_anomaly_runs_are_windows(skab_dir):
    series = by_key(load(skab_dir, "skab", None))
    valve = series["valve1/0"]
    assert valve.metrics == ("Accelerometer1RMS", "Current", "Pressure", "Volume_Flow_RateRMS")
    assert valve.columns[-1] == "Volume Flow RateRMS"
    assert valve.values.shape == (700, 4)
    assert valve.spans == (Span(500, 579),)
    assert valve.warmup_rows == 400                      # SKAB's training part
    assert (valve.site, valve.device) == ("valve1", "0")
    free = series["anomaly-free/anomaly-free"]
    assert free.spans == () and free.values.shape == (450, 4)


def test_skab_rejects_a_labels_file(skab_dir, tmp_path):
    with pytest.raises(DatasetError, match="'anomaly' column"):
        load(skab_dir, "skab", tmp_path / "labels.json")


def test_iotwatch_recording_splits_streams_in_file_order(iotwatch_dir):
    series = by_key(load(iotwatch_dir, "iotwatch", None))
    assert set(series) == {"plant-1/boiler-1.temperature", "plant-1/boiler-1.humidity"}
    temperature = series["plant-1/boiler-1.temperature"]
    assert temperature.rows == 500 and temperature.metrics == ("temperature",)
    assert (temperature.site, temperature.device) == ("plant-1", "boiler-1")
    # fault 3500 s..3590 s at 10 s a reading: rows 350..359
    assert temperature.spans == (Span(350, 359, "spike"),)
    assert series["plant-1/boiler-1.humidity"].spans == ()
    assert np.all(np.diff(temperature.timestamps) == 10.0)


def test_iotwatch_fault_for_an_unknown_stream_is_an_error(iotwatch_dir):
    with (iotwatch_dir / "labels.jsonl").open("a") as handle:
        handle.write(json.dumps({"site": "plant-9", "device": "x", "metric": "y",
                                 "kind": "spike", "start": 0, "end": 1}) + "\n")
    with pytest.raises(DatasetError, match="plant-9/x/y"):
        load(iotwatch_dir, "iotwatch", None)


def test_iotwatch_missing_labels_file_is_an_error(iotwatch_dir):
    (iotwatch_dir / "labels.jsonl").unlink()
    with pytest.raises(DatasetError, match="labels file not found"):
        load(iotwatch_dir, "iotwatch", None)


def test_iotwatch_label_line_missing_keys(iotwatch_dir):
    (iotwatch_dir / "labels.jsonl").write_text('{"site": "plant-1"}\n')
    with pytest.raises(DatasetError, match=r"labels.jsonl:1: missing key\(s\) device, metric"):
        load(iotwatch_dir, "iotwatch", None)


def test_format_is_detected(nab_dir, skab_dir, iotwatch_dir, tmp_path):
    assert detect_format(nab_dir[0]) == "nab"
    assert detect_format(skab_dir) == "skab"
    assert detect_format(iotwatch_dir) == "iotwatch"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the format"):
        detect_format(tmp_path / "empty")


def test_windows_without_rows_are_dropped_and_overlaps_merge():
    ts = np.arange(10) * 60.0
    spans = spans_from_windows(ts, [(600.0, 700.0, "dropout"), (60.0, 180.0, "a"),
                                    (120.0, 240.0, "b")])
    assert spans == (Span(1, 4, "a+b"),)
    assert merge_spans([Span(1, 2), Span(3, 4)]) == (Span(1, 4),)
