"""``iotwatch publish --audio``: WAV files the tests synthesise -> sound features -> alerts."""

from __future__ import annotations

import csv
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml
from detector_service.service import Detector, detector_config
from harness import wait_until
from publisher_service.support import run_publisher

from iotwatch.cli import main
from publisher.audio import DEFAULT_BANDS, frame_features, read_wav

RATE = 16_000


def hum(seconds: float, seed: int = 0) -> np.ndarray:
    """A machine's normal sound: 50 Hz mains hum with harmonics and broadband noise."""
    t = np.arange(int(RATE * seconds)) / RATE
    noise = np.random.default_rng(seed).normal(0, 0.02, t.size)
    return 0.3 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t) + noise


def with_tone(x: np.ndarray, hz: float = 3000.0, level: float = 0.1) -> np.ndarray:
    return x + level * np.sin(2 * np.pi * hz * np.arange(x.size) / RATE)


def with_impulses(x: np.ndarray, every_s: float = 0.013) -> np.ndarray:
    """A bearing-like fault: short decaying clicks at a fixed rate."""
    y = x.copy()
    click = 0.6 * np.exp(-np.arange(40) / 6.0) * np.sin(np.arange(40) * 2.1)
    for start in range(0, x.size - 40, int(RATE * every_s)):
        y[start:start + 40] += click
    return y


def write_wav(path: Path, x: np.ndarray, *, width: int = 2, channels: int = 1) -> Path:
    scaled = np.clip(x, -1, 1)
    if width == 2:
        data = (scaled * 32767).astype("<i2")
    else:  # 24-bit little-endian
        ints = (scaled * 8388607).astype("<i4")
        data = np.frombuffer(ints.tobytes(), np.uint8).reshape(-1, 4)[:, :3].copy()
    if channels == 2:
        data = np.repeat(data, 2, axis=0)  # the same signal on both channels
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(width)
        handle.setframerate(RATE)
        handle.writeframes(data.tobytes())
    return path


def features(x: np.ndarray) -> dict[str, float]:
    return frame_features(x[: RATE // 10], RATE, DEFAULT_BANDS)


def test_each_fault_moves_the_features_that_describe_it():
    normal = features(hum(0.1))
    tone = features(with_tone(hum(0.1)))
    clicks = features(with_impulses(hum(0.1)))
    quiet = features(0.3 * hum(0.1))
    assert tone["sound_centroid_hz"] > 3 * normal["sound_centroid_hz"]
    assert tone["sound_band_1000_4000_db"] > normal["sound_band_1000_4000_db"] + 10
    assert clicks["sound_crest"] > 1.5 * normal["sound_crest"]
    assert clicks["sound_band_4000_8000_db"] > normal["sound_band_4000_8000_db"] + 10
    assert quiet["sound_rms"] == pytest.approx(0.3 * normal["sound_rms"], rel=0.05)


@pytest.mark.parametrize(("width", "channels"), [(2, 1), (3, 2)])
def test_pcm_widths_and_channels_read_alike(tmp_path, width, channels):
    x = hum(0.5)
    data, rate = read_wav(write_wav(tmp_path / "m.wav", x, width=width, channels=channels))
    assert rate == RATE and data.size == x.size
    assert np.max(np.abs(data - x)) < 1e-3


def test_publish_audio_out_writes_one_reading_per_feature_and_frame(tmp_path, capsys):
    (tmp_path / "sounds").mkdir()
    write_wav(tmp_path / "sounds" / "pump-1.wav", hum(2.0))
    write_wav(tmp_path / "sounds" / "fan 2.wav", hum(1.0, seed=1))
    assert main(["publish", "--audio", str(tmp_path / "sounds"), "--frame-ms", "50",
                 "--site", "hall", "--out", str(tmp_path / "out")]) == 0
    with (tmp_path / "out" / "readings.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    per_device = {d: {r["metric"] for r in rows if r["device"] == d} for d in ("pump-1", "fan_2")}
    assert per_device["pump-1"] == per_device["fan_2"] == {
        "sound_rms", "sound_peak", "sound_crest", "sound_centroid_hz", "sound_flatness",
        "sound_band_0_250_db", "sound_band_250_1000_db", "sound_band_1000_4000_db",
        "sound_band_4000_8000_db"}
    assert sum(r["device"] == "pump-1" and r["metric"] == "sound_rms" for r in rows) == 40
    assert {r["site"] for r in rows} == {"hall"}
    stamps = [r["ts"] for r in rows if r["device"] == "pump-1" and r["metric"] == "sound_rms"]
    assert stamps[:2] == ["2026-01-01T00:00:00.000Z", "2026-01-01T00:00:00.050Z"]


@pytest.mark.parametrize(("name", "content", "extra", "message"), [
    ("tone.wav", b"not a wav at all", [], "not a PCM WAV file"),
    ("missing.wav", None, [], "no such file or directory"),
    ("ok.wav", "hum", ["--bands", "100-50"], "--bands: expected 0 <= LOW < HIGH"),
])
def test_bad_audio_input_gives_one_line(tmp_path, capsys, name, content, extra, message):
    path = tmp_path / name
    if content == "hum":
        write_wav(path, hum(0.2))
    elif content is not None:
        path.write_bytes(content)
    code = main(["publish", "--audio", str(path), "--out", str(tmp_path / "out"), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) >= 1 and message in err[-1], err




@pytest.mark.slow
def test_a_machine_sound_fault_is_alerted_end_to_end(tmp_path, mosquitto):
    """40 s of normal hum, then 5 s with a whine: the detector alerts on that device."""
    site = f"snd-{uuid.uuid4().hex[:6]}"
    sound = np.concatenate([hum(40.0), with_tone(hum(5.0, seed=2))])
    write_wav(tmp_path / "press-1.wav", sound)
    config = detector_config(tmp_path, mosquitto, sites=(site,), detector={
        "output": {"sink": "file", "file": str(tmp_path / "points.lp"), "stats_interval_s": 1}})
    detector = Detector(tmp_path, config, mosquitto)
    publisher = tmp_path / "publisher.yaml"
    publisher.write_text(yaml.safe_dump({
        "mqtt": mosquitto.mqtt_section("publisher", reconnect_max_s=2),
        "publisher": {"speed": 0, "progress_interval_s": 0}}))
    try:
        detector.start()  # inside try: a failed start is cleaned up too
        result = run_publisher(["--config", str(publisher), "--audio", str(tmp_path / "press-1.wav"),
                                "--site", site], cwd=tmp_path, env=mosquitto.env("publisher"))
        assert result.returncode == 0, result.stderr
        frames, metrics = 450, 9
        wait_until(lambda: detector.metric("iotwatch_detector_readings_total") >= frames * metrics,
                   60, what="every frame's features scored")
        wait_until(lambda: detector.metric("iotwatch_detector_alerts_total", 'state="firing"')
                   >= 1, 30, what="an alert")
        _, streams = detector.get("/streams")
        firing = {key for key, s in _stream_items(streams) if s["alert_state"] == "firing"}
        assert firing and all(key.startswith(f"{site}/press-1/sound_") for key in firing), firing
        # The whine shows in the spectrum: the centroid or the band holding 3 kHz fired.
        assert firing & {f"{site}/press-1/sound_centroid_hz",
                         f"{site}/press-1/sound_band_1000_4000_db"}, firing
    finally:
        detector.close()


def _stream_items(streams):
    if isinstance(streams, dict) and "streams" in streams:
        streams = streams["streams"]
    if isinstance(streams, dict):
        return list(streams.items())
    return [(f"{s['site']}/{s['device']}/{s['metric']}", s) for s in streams]
