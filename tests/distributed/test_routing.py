"""The server's subject mapping and this process agree on every device's partition, and
leases are exclusive (real nats-server, the project's configuration)."""

from __future__ import annotations

import asyncio
import time

import nats
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from detector.distributed.leases import Leases
from detector.distributed.partitions import assignment, partition_of, reading_topic

from .cluster import PARTITIONS


def test_mqtt_readings_land_on_the_partition_partition_of_computes(nats_server):
    devices = [(f"site-{i % 3}", f"dev-{i}") for i in range(300)]
    seen: list[str] = []

    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        async def on_message(msg) -> None:
            seen.append(msg.subject)

        await nc.subscribe("iotwatch.part.>", cb=on_message)
        await nc.flush()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="routing")
        client.connect("127.0.0.1", nats_server.mqtt_port)
        client.loop_start()
        infos = []
        for site, device in devices:
            infos.append(client.publish(f"iotwatch/readings/{site}/{device}/temp", b"{}", qos=1))
            infos.append(client.publish(f"iotwatch/readings/{site}/{device}", b"{}", qos=1))
        for info in infos:
            info.wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        deadline = time.monotonic() + 20
        while len(seen) < 2 * len(devices) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await nc.close()

    asyncio.run(main())
    assert len(seen) == 2 * len(devices)
    topics = set()
    for subject in seen:
        partition, topic = reading_topic(subject, "iotwatch")
        site, device = topic.split("/")[2:4]
        assert partition == partition_of(site, device, PARTITIONS), subject
        topics.add(topic)
    assert "iotwatch/readings/site-0/dev-0/temp" in topics
    # Every partition is used, and a device's two topic forms share one partition.
    assert {reading_topic(s, "iotwatch")[0] for s in seen} == set(range(PARTITIONS))


def test_a_lease_has_one_holder_and_passes_on_when_it_expires(nats_server):
    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        a = await Leases.open(js, "leases_test", 1.0, "a")
        b = await Leases.open(js, "leases_test", 1.0, "b")
        assert await a.acquire(3)
        assert not await b.acquire(3)  # held: create-if-absent fails
        assert await a.renew(3)
        assert not await b.renew(3)  # never held by b
        await a.heartbeat()
        await b.heartbeat()
        assert await a.members() == ["a", "b"]
        # a stops renewing (as if SIGKILLed): the bucket's TTL removes the lease.
        deadline = time.monotonic() + 10
        while not await b.acquire(3):
            assert time.monotonic() < deadline, "the lease never expired"
            await asyncio.sleep(0.1)
        assert not await a.renew(3)  # a's revision is gone: it knows it lost the lease
        await b.release(3)
        assert await a.acquire(3)  # released: free at once
        await nc.close()

    asyncio.run(main())


def test_members_are_listed_while_their_keys_and_the_leases_are_rewritten(nats_server):
    """The membership an instance reads must not lose a live member because its key (or
    any lease) was written again meanwhile; that made partitions flap during a join."""
    async def main() -> None:
        nc = await nats.connect(nats_server.url)
        js = nc.jetstream()
        a = await Leases.open(js, "members_test", 60.0, "a")
        b = await Leases.open(js, "members_test", 60.0, "b")
        gone = await Leases.open(js, "members_test", 60.0, "gone")
        for leases in (a, b, gone):
            await leases.heartbeat()
        await gone.leave()
        for partition in range(PARTITIONS):
            assert await a.acquire(partition)
        running = True

        async def heartbeats() -> None:  # what both instances do all the time
            while running:
                await asyncio.gather(a.heartbeat(), b.heartbeat(),
                                     *(a.renew(p) for p in range(PARTITIONS)))

        churn = asyncio.get_running_loop().create_task(heartbeats())
        seen = [await a.members() for _ in range(200)]
        owners = await a.owners()
        running = False
        await churn
        assert [m for m in seen if m != ["a", "b"]] == []
        assert owners == {p: "a" for p in range(PARTITIONS)}
        await nc.close()

    asyncio.run(main())


def test_rendezvous_moves_only_the_partitions_of_who_joins_or_leaves():
    two = assignment(["a", "b"], 64)
    three = assignment(["a", "b", "c"], 64)
    moved = [p for p in range(64) if two[p] != three[p]]
    assert moved and all(three[p] == "c" for p in moved)
    without_b = assignment(["a", "c"], 64)
    assert all(without_b[p] == three[p] for p in range(64) if three[p] != "b")
