"""Machine sound as sensor streams: WAV files -> per-frame features -> ordinary readings.

Each WAV file is one device (its name without ``.wav``, made topic-safe); every frame of
``frame_ms`` milliseconds gives one reading of each feature, as its own metric:

- ``sound_rms``, ``sound_peak`` (of samples scaled to [-1, 1]), ``sound_crest``
  (peak / rms: impacts, e.g. a damaged bearing, raise it),
- ``sound_centroid_hz`` (the spectrum's centre of mass: a whine or a new tone moves it),
  ``sound_flatness`` (geometric / arithmetic mean of the power spectrum: 1 for noise,
  near 0 for tones),
- ``sound_band_<low>_<high>_db``: energy in each band (Hz) in dB, 10 log10 of the mean
  power of its FFT bins (Hann window).

The WAV is read with the standard library's ``wave`` (PCM 8/16/24/32 bit, channels
averaged), the spectrum with numpy's FFT. Timestamps are ``start`` plus the frame's
offset in the file, so MIMII-style recordings replay through the same pipeline as any
sensor; several files play side by side like a fleet.

>>> import numpy as np
>>> rate = 8000
>>> t = np.arange(rate // 10) / rate
>>> features = frame_features(0.5 * np.sin(2 * np.pi * 1000 * t), rate, DEFAULT_BANDS)
>>> round(features["sound_rms"], 3), round(features["sound_centroid_hz"])
(0.354, 1000)
>>> features["sound_flatness"] < 0.01
True
"""

from __future__ import annotations

import heapq
import math
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from iotwatch import IotwatchError
from iotwatch.topics import safe_segment
from publisher.faults import FaultLabel
from publisher.samples import Sample

DEFAULT_FRAME_MS = 100.0
DEFAULT_BANDS: tuple[tuple[float, float], ...] = ((0, 250), (250, 1000), (1000, 4000),
                                                  (4000, 8000))
_EPS = 1e-20


@dataclass(frozen=True)
class AudioOptions:
    """What ``iotwatch publish --audio`` asked for."""

    path: Path
    frame_ms: float = DEFAULT_FRAME_MS
    bands: tuple[tuple[float, float], ...] = DEFAULT_BANDS


class AudioError(IotwatchError):
    """A sound file that cannot be read (missing, not a PCM WAV, empty)."""


def parse_bands(text: str) -> tuple[tuple[float, float], ...]:
    """``"0-250,250-1000"`` -> ((0, 250), (250, 1000)).

    >>> parse_bands("0-500, 500-2000")
    ((0.0, 500.0), (500.0, 2000.0))
    """
    bands = []
    for part in text.split(","):
        low, sep, high = part.strip().partition("-")
        try:
            band = (float(low), float(high))
        except ValueError:
            raise AudioError(f"--bands: expected LOW-HIGH in Hz, got {part.strip()!r}") \
                from None
        if not sep or not 0 <= band[0] < band[1]:
            raise AudioError(f"--bands: expected 0 <= LOW < HIGH, got {part.strip()!r}")
        bands.append(band)
    return tuple(bands)


def band_metric(low: float, high: float) -> str:
    return f"sound_band_{low:g}_{high:g}_db".replace(".", "p")


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono samples in [-1, 1] and the sample rate."""
    try:
        with wave.open(str(path), "rb") as handle:
            width, channels = handle.getsampwidth(), handle.getnchannels()
            rate, frames = handle.getframerate(), handle.readframes(handle.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"{path}: not a PCM WAV file ({exc})") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot read: {exc.strerror}") from None
    if width == 1:
        data = (np.frombuffer(frames, np.uint8).astype(np.float64) - 128) / 128
    elif width == 3:
        raw = np.frombuffer(frames, np.uint8).reshape(-1, 3)
        ints = (raw[:, 0].astype(np.int32) | (raw[:, 1].astype(np.int32) << 8)
                | (raw[:, 2].astype(np.int32) << 16))
        data = np.where(ints >= 1 << 23, ints - (1 << 24), ints) / float(1 << 23)
    elif width in (2, 4):
        dtype = np.int16 if width == 2 else np.int32
        data = np.frombuffer(frames, dtype).astype(np.float64) / float(1 << (8 * width - 1))
    else:
        raise AudioError(f"{path}: {8 * width}-bit samples are not supported "
                         "(expected PCM 8, 16, 24 or 32 bit)")
    if channels > 1:
        data = data[: len(data) // channels * channels].reshape(-1, channels).mean(axis=1)
    return data, rate


def frame_features(frame: np.ndarray, rate: int,
                   bands: Sequence[tuple[float, float]]) -> dict[str, float]:
    """The features of one frame (see the module docstring)."""
    rms = float(np.sqrt(np.mean(frame * frame)))
    peak = float(np.max(np.abs(frame)))
    power = np.abs(np.fft.rfft(frame * np.hanning(len(frame)))) ** 2
    freqs = np.fft.rfftfreq(len(frame), 1.0 / rate)
    total = float(power.sum())
    features = {
        "sound_rms": rms, "sound_peak": peak, "sound_crest": peak / rms if rms > 0 else 0.0,
        "sound_centroid_hz": float((freqs * power).sum() / total) if total > 0 else 0.0,
        "sound_flatness": float(np.exp(np.mean(np.log(power + _EPS))) / (power.mean() + _EPS)),
    }
    for low, high in bands:
        inside = power[(freqs >= low) & (freqs < high)]
        mean = float(inside.mean()) if inside.size else 0.0
        features[band_metric(low, high)] = 10 * math.log10(mean + 1e-12)
    return features


def wav_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".wav")
        if files:
            return files
        raise AudioError(f"{path}: no .wav files")
    raise AudioError(f"{path}: no such file or directory")


def _duration(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as handle:
            return handle.getnframes() / handle.getframerate()
    except (wave.Error, EOFError) as exc:
        raise AudioError(f"{path}: not a PCM WAV file ({exc})") from None
    except OSError as exc:
        raise AudioError(f"{path}: cannot read: {exc.strerror}") from None


class AudioSource:
    """Every frame of every WAV file as samples, files side by side from ``start``."""

    def __init__(self, path: str | Path, site: str, start: float, *,
                 frame_ms: float = DEFAULT_FRAME_MS,
                 bands: Sequence[tuple[float, float]] = DEFAULT_BANDS) -> None:
        if not 1 <= frame_ms <= 10_000:
            raise AudioError(f"--frame-ms must be between 1 and 10000, got {frame_ms:g}")
        self.site = safe_segment(site)
        self.files = wav_files(Path(path))
        self.start = start
        self.frame_ms = frame_ms
        self.bands = tuple(bands)
        self.frames = 0
        self._stopped = False
        # Fail before anything is sent: every file must be a readable WAV.
        self.span_s = max(_duration(file) for file in self.files)

    def __iter__(self) -> Iterator[Sample]:
        streams = [self._samples(f) for f in self.files]
        for sample in heapq.merge(*streams, key=lambda s: s.offset_s):
            if self._stopped:
                return
            yield sample

    def _samples(self, path: Path) -> Iterator[Sample]:
        data, rate = read_wav(path)
        size = max(16, round(rate * self.frame_ms / 1000))
        device = safe_segment(path.stem)
        for index in range(len(data) // size):
            features = frame_features(data[index * size:(index + 1) * size], rate, self.bands)
            offset = index * size / rate
            self.frames += 1
            for metric, value in features.items():
                yield Sample(self.site, device, metric, self.start + offset, offset, value,
                             index)

    def stop(self) -> None:
        self._stopped = True

    def take_labels(self) -> list[FaultLabel]:
        return []

    def finish(self) -> list[FaultLabel]:
        return []
