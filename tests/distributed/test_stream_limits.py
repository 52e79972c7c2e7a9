"""``limits.max_streams`` holds per instance in the distributed mode, across the partitions
it owns: messages of new streams beyond it are dead-lettered as ``stream_limit``."""

from __future__ import annotations

from harness import wait_until

from .cluster import DeadLetters, Instance, Publisher, instance_config, wait_for_ownership

STREAMS, LIMIT, READINGS = 40, 30, 3


def test_an_instance_holds_at_most_max_streams_over_all_its_partitions(nats_server, influxdb,
                                                                        tmp_path):
    db = influxdb.create_database()
    dead_letters = DeadLetters(nats_server)
    letters = dead_letters.letters
    config = instance_config(tmp_path, nats_server, "a",
                             influx={"url": influxdb.url, "database": db})
    config["detector"]["limits"] = {"max_streams": LIMIT}
    instance = Instance(tmp_path, config)
    try:
        instance.start()
        wait_for_ownership([instance])
        publisher = Publisher(nats_server)
        for index in range(READINGS):
            for device in range(STREAMS):  # one stream per device: all 16 partitions
                publisher.reading("site-0", f"dev-{device}", "temp", index, 20.0 + index)
        publisher.close()
        refused = (STREAMS - LIMIT) * READINGS
        wait_until(lambda: influxdb.count("readings", db=db) >= LIMIT * READINGS
                   and len(letters) >= refused, 60,
                   what=f"{LIMIT * READINGS} points stored, {refused} dead letters\n"
                        f"{instance.log_tail()}")
        held = instance.streams()
        assert len(held) == LIMIT
        assert len({summary["partition"] for summary in held.values()}) > 1
        assert all(summary["count"] == READINGS for summary in held.values())
        assert {x["reason"] for x in letters} == {"stream_limit"}
        assert len(letters) == refused
        assert not {x["topic"].split("/")[3] for x in letters} & {k.split("/")[1] for k in held}
        assert "limits.max_streams" in letters[0]["detail"]
        assert any("stream limit" in w for w in instance.health()["warnings"])
        assert instance.metric("iotwatch_detector_stream_limit") == LIMIT
        assert influxdb.count("readings", db=db) == LIMIT * READINGS
        assert instance.terminate() == 0, instance.log_tail()
    finally:
        dead_letters.close()
        instance.close()
