"""The ``--out DIR`` files: ``readings.csv`` and ``labels.jsonl``.

``readings.csv``: header ``ts,site,device,metric,value``; ``ts`` RFC 3339 UTC with
milliseconds; values in Python's shortest round-trip form; rows in send order. A reading
broken on purpose (``garbage`` fault, ``malformed`` mode) has no value and no row: the
detector would reject it; its label is still written. ``labels.jsonl``: one injected
fault per line (``site, device, metric, kind, start, end, params, source``).

>>> import io
>>> from publisher.samples import Sample
>>> out = io.StringIO()
>>> writer = ReadingsCsv(out)
>>> writer.write(Sample("lab", "mote-1", "temperature", 1768905000.0, 0.0, 21.5, 0))
True
>>> print(out.getvalue(), end="")
ts,site,device,metric,value
2026-01-20T10:30:00.000Z,lab,mote-1,temperature,21.5
"""

from __future__ import annotations

from typing import IO

from iotwatch.timeparse import format_rfc3339
from publisher.faults import FaultLabel
from publisher.samples import Sample

READINGS_FILE = "readings.csv"
LABELS_FILE = "labels.jsonl"
HEADER = "ts,site,device,metric,value\n"


class ReadingsCsv:
    """Writes samples as CSV rows (site, device and metric names need no quoting:
    they are topic segments of ``[A-Za-z0-9_.-]``)."""

    def __init__(self, handle: IO[str]) -> None:
        self._handle = handle
        handle.write(HEADER)

    def write(self, sample: Sample) -> bool:
        """Write one row; False (nothing written) for a malformed sample."""
        if sample.malformed is not None:
            return False
        self._handle.write(f"{format_rfc3339(sample.ts)},{sample.site},{sample.device},"
                           f"{sample.metric},{sample.value!r}\n")
        return True


class LabelsJsonl:
    """Writes one fault label per line, flushed so a reader can follow a live run."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle

    def write(self, label: FaultLabel) -> None:
        self._handle.write(label.to_json() + b"\n")
        self._handle.flush()
