"""Adding an instance moves partitions with their final checkpoints, and SIGTERM drains
one: no reading is lost and no stream loses a single learned reading on the way."""

from __future__ import annotations

import contextlib
import subprocess
import sys

import pytest
from harness import wait_until

from .cluster import Instance, Publisher, instance_config, streams, value, wait_for_ownership

DEVICES, METRICS, READINGS = 100, 4, 20


@contextlib.contextmanager
def _busy_core():
    """A process spinning on one core (the joins that flapped ran on a loaded machine)."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait(10)


def _publish(publisher: Publisher, keys, first: int, count: int) -> None:
    for index in range(first, first + count):
        for k, (site, device, metric) in enumerate(keys):
            publisher.reading(site, device, metric, index, value(k, index))
    publisher.flush()


def _counts(instances: list[Instance]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for instance in instances:
        for key, summary in instance.streams().items():
            assert key not in counts, f"{key} on two instances"
            counts[key] = summary["count"]
    return counts


@pytest.mark.slow
def test_a_joining_instance_takes_partitions_and_a_drained_one_hands_them_back(
        nats_server, influxdb, tmp_path):
    db = influxdb.create_database()
    # A long TTL: anything taken over below was handed over, not waited out.
    a, b = (Instance(tmp_path / n, instance_config(
        tmp_path / n, nats_server, n, influx={"url": influxdb.url, "database": db},
        lease_ttl_s=60)) for n in ("a", "b"))
    keys = streams(DEVICES, METRICS)
    try:
        a.start()
        assert len(wait_for_ownership([a])["a"]) == 16
        publisher = Publisher(nats_server)
        _publish(publisher, keys, 0, READINGS)
        wait_until(lambda: influxdb.count("readings", db=db) >= len(keys) * READINGS, 60,
                   what="phase 1 stored")

        # Join, with a core kept busy: b takes its partitions from a, each with a's final
        # checkpoint, and each partition moves once (a listing of the members that missed
        # a live one used to make a take back what it had just given up: 20 releases for
        # 10 partitions).
        with _busy_core():
            b.start()
            owned = wait_for_ownership([a, b])
        assert owned["a"] and owned["b"]
        assert (a.health()["released"], a.health()["taken"]) == (len(owned["b"]), 16)
        assert (b.health()["taken"], b.health()["released"]) == (len(owned["b"]), 0)
        assert set(_counts([a, b]).values()) == {READINGS}  # not one reading relearned

        _publish(publisher, keys, READINGS, READINGS)
        wait_until(lambda: influxdb.count("readings", db=db) >= len(keys) * 2 * READINGS, 60,
                   what="phase 2 stored")
        wait_until(lambda: set(_counts([a, b]).values()) == {2 * READINGS}, 30,
                   what="both instances learned phase 2")

        # Drain a (SIGTERM): it stores, acknowledges, checkpoints, frees its leases; b takes
        # them at its next tick, far sooner than the 60 s TTL would allow.
        assert a.terminate() == 0, a.log_tail()
        assert len(wait_for_ownership([b], timeout=30)["b"]) == 16
        _publish(publisher, keys, 2 * READINGS, READINGS)
        publisher.close()
        total = len(keys) * 3 * READINGS
        wait_until(lambda: influxdb.count("readings", db=db) >= total, 60, what="all stored")
        wait_until(lambda: set(_counts([b]).values()) == {3 * READINGS}, 30,
                   what=f"every stream at {3 * READINGS} readings on b")
        assert influxdb.count("readings", db=db) == total
        assert b.terminate() == 0, b.log_tail()
    finally:
        a.close()
        b.close()
