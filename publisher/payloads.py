"""Samples to MQTT messages, in either payload form of the contract.

- ``single``: one message per reading on ``<prefix>/readings/<site>/<device>/<metric>``.
- ``device``: one message per device and instant on ``<prefix>/readings/<site>/<device>``
  carrying every metric sampled then.

A malformed sample (a ``garbage`` fault) always travels alone on its metric topic, so
that breaking it does not take the device's other readings down with it.

>>> from publisher.samples import Sample
>>> samples = [Sample("lab", "mote-1", "temperature", 1768905000.0, 0.0, 21.5, 0, "C"),
...            Sample("lab", "mote-1", "humidity", 1768905000.0, 0.0, 45.0, 0, "%")]
>>> builder = MessageBuilder(Topics("iotwatch"), "device")
>>> [builder.messages(batch) for batch in batches(samples, "device")]
[[('iotwatch/readings/lab/mote-1', b'{"ts":"2026-01-20T10:30:00.000Z","seq":0,"units":{"temperature":"C","humidity":"%"},"temperature":21.5,"humidity":45.0}')]]
>>> MessageBuilder(Topics("iotwatch"), "single").messages(samples[:1])
[('iotwatch/readings/lab/mote-1/temperature', b'{"ts":"2026-01-20T10:30:00.000Z","value":21.5,"unit":"C","seq":0}')]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

import orjson

from iotwatch.contracts import Reading, device_payload
from iotwatch.timeparse import format_rfc3339
from iotwatch.topics import Topics
from publisher.samples import Sample

PayloadForm = Literal["single", "device"]
Message = tuple[str, bytes]


def batches(samples: Iterable[Sample], form: PayloadForm) -> Iterator[list[Sample]]:
    """Group samples into what one message (device form) or one step carries.

    Device form: consecutive samples of one device with the same timestamp form a batch
    (the fleet is ordered by time, then stream, so they are consecutive).
    """
    if form == "single":
        for sample in samples:
            yield [sample]
        return
    batch: list[Sample] = []
    for sample in samples:
        if batch and (sample.malformed is not None or batch[0].malformed is not None
                      or sample.ts != batch[0].ts or sample.device != batch[0].device
                      or sample.site != batch[0].site):
            yield batch
            batch = []
        batch.append(sample)
    if batch:
        yield batch


class MessageBuilder:
    """Turns one batch into its message(s)."""

    def __init__(self, topics: Topics, form: PayloadForm) -> None:
        self.topics = topics
        self.form = form

    def messages(self, batch: list[Sample]) -> list[Message]:
        first = batch[0]
        if self.form == "single" or first.malformed is not None:
            return [(self.topics.reading(s.site, s.device, s.metric), single_payload(s))
                    for s in batch]
        seqs = {s.seq for s in batch}
        units = {s.metric: s.unit for s in batch if s.unit is not None}
        payload = device_payload(first.ts, {s.metric: s.value for s in batch},
                                 seq=first.seq if len(seqs) == 1 else None, units=units or None)
        return [(self.topics.reading(first.site, first.device), payload)]


def single_payload(sample: Sample) -> bytes:
    """The one-metric payload of a sample, broken as its ``malformed`` says.

    >>> broken = Sample("s", "d", "temp", 1768905000.0, 0.0, 21.5, 4, "C", "non_numeric")
    >>> single_payload(broken)
    b'{"ts":"2026-01-20T10:30:00.000Z","value":"ERR","unit":"C","seq":4}'
    """
    reading = Reading(sample.site, sample.device, sample.metric, sample.ts, sample.value,
                      sample.unit, sample.seq)
    if sample.malformed is None:
        return reading.to_payload()
    if sample.malformed == "truncated_json":
        good = reading.to_payload()
        return good[:len(good) // 2]
    body: dict[str, object] = {"ts": format_rfc3339(sample.ts)}
    if sample.malformed == "non_numeric":
        body["value"] = "ERR"
    elif sample.malformed != "missing_value":
        raise ValueError(f"unknown malformed payload {sample.malformed!r}")
    if sample.unit is not None:
        body["unit"] = sample.unit
    body["seq"] = sample.seq
    return orjson.dumps(body)
