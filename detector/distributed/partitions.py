"""Which partition a stream is in, and which live instance owns a partition.

The key is the device (site and device): all of a device's streams, and its per-device
(multivariate) stream, are in one partition, whichever topic form it publishes. The
partition is the one the NATS server's subject mapping computes with
``{{partition(N,1,2)}}`` over the site and device tokens: FNV-1a (32 bit) of the tokens
concatenated, modulo N (checked against a real server in tests/distributed). So this
process knows a stream's partition without asking.

>>> partition_of("s0", "d0", 16)
2
>>> owner(3, ["detector-a", "detector-b"]) in {"detector-a", "detector-b"}
True

Ownership is rendezvous hashing (highest random weight): each partition goes to the live
instance with the highest hash of (instance, partition). An instance joining takes only
the partitions it now wins; one leaving gives up only its own.

>>> before = assignment(["a", "b"], 16)
>>> after = assignment(["a", "b", "c"], 16)
>>> all(after[p] == before[p] for p in range(16) if after[p] != "c")
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def partition_of(site: str, device: str, partitions: int) -> int:
    """The partition the server's ``partition(N,1,2)`` mapping puts this device in."""
    value = _FNV_OFFSET
    for byte in (site + device).encode():
        value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return value % partitions


def _weight(instance: str, partition: int) -> int:
    digest = hashlib.blake2b(f"{instance}\0{partition}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(partition: int, instances: Iterable[str]) -> str | None:
    """The live instance that should own ``partition`` (None when there is none)."""
    return max(instances, key=lambda name: (_weight(name, partition), name), default=None)


def assignment(instances: Iterable[str], partitions: int) -> dict[int, str | None]:
    """Every partition's owner among ``instances``."""
    live = sorted(set(instances))
    return {p: owner(p, live) for p in range(partitions)}


def partition_subject(prefix: str, partition: int) -> str:
    """The subject filter of one partition (the server maps readings there).

    >>> partition_subject("iotwatch", 5)
    'iotwatch.part.5.>'
    """
    return f"{prefix}.part.{partition}.>"


def reading_topic(subject: str, topic_prefix: str) -> tuple[int, str]:
    """The partition and MQTT topic of a partitioned reading subject.

    NATS's MQTT bridge turns MQTT topic levels into subject tokens (``/`` -> ``.``), so
    names with a ``.`` cannot be used in this mode (the NATS 2.9 bridge did not route
    such a topic in our test: docs/scale-out.md).

    >>> reading_topic("iotwatch.part.7.plant-1.boiler-1.temp", "iotwatch")
    (7, 'iotwatch/readings/plant-1/boiler-1/temp')
    >>> reading_topic("acme.eu.part.0.s.d", "acme/eu")
    (0, 'acme/eu/readings/s/d')
    """
    tokens = subject.split(".")[topic_prefix.count("/") + 1:]
    return int(tokens[1]), "/".join([topic_prefix, "readings", *tokens[2:]])


def subject_prefix(topic_prefix: str) -> str:
    """The NATS subject prefix of an MQTT topic prefix.

    >>> subject_prefix("acme/eu")
    'acme.eu'
    """
    return topic_prefix.replace("/", ".")
