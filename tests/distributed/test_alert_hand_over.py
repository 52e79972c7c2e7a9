"""An alert fired after the owner's last checkpoint is closed by the partition's next
owner (same fingerprint), instead of staying open for ever."""

from __future__ import annotations

import orjson
import paho.mqtt.client as mqtt
import pytest
from harness import wait_until
from paho.mqtt.enums import CallbackAPIVersion

from .cluster import Instance, Publisher, instance_config, wait_for_ownership

DECISION = {"calibration": {"warmup": 20},
            "decision": {"threshold": 0.5, "pending_readings": 1, "resolve_readings": 5},
            # No checkpoint after the alert: the next owner restores none.
            "checkpoint": {"interval_s": 3600, "after_alert_s": 3600}}


def _config(tmp_path, nats_server, influxdb, name):
    config = instance_config(tmp_path / name, nats_server, name,
                             influx={"url": influxdb.url,
                                     "database": influxdb.create_database()})
    for key, value in DECISION.items():
        config["detector"][key] = value
    return config


@pytest.mark.slow
def test_the_next_owner_closes_an_alert_fired_after_the_last_checkpoint(nats_server, influxdb,
                                                                        tmp_path):
    alerts: list[dict] = []
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="alert-listener")
    listener.on_message = lambda _c, _u, message: alerts.append(orjson.loads(message.payload))
    listener.connect("127.0.0.1", nats_server.mqtt_port)
    listener.subscribe("iotwatch/alerts/#", qos=1)
    listener.loop_start()
    a = Instance(tmp_path / "a", _config(tmp_path, nats_server, influxdb, "a"))
    b = Instance(tmp_path / "b", _config(tmp_path, nats_server, influxdb, "b"))
    try:
        a.start()
        wait_for_ownership([a])
        publisher = Publisher(nats_server)
        for index in range(80):
            publisher.reading("site-0", "boiler", "temp", index, 20.0 + (index % 5) * 0.1)
        publisher.reading("site-0", "boiler", "temp", 80, 500.0)
        publisher.flush()
        wait_until(lambda: any(x["state"] == "firing" for x in alerts), 60,
                   what=f"a firing alert\n{a.log_tail()}")
        fired = next(x for x in alerts if x["state"] == "firing")
        # Every reading acknowledged (so none is redelivered to b, which would learn the
        # stream again and fire the same alert itself), but no checkpoint since.
        wait_until(lambda: a.metric("iotwatch_detector_acks_total") >= 81, 30,
                   what="a acknowledging every reading")
        assert a.metric("iotwatch_detector_partition_checkpoints_stored_total") == 0
        a.kill()

        b.start()
        wait_for_ownership([b], timeout=60)
        wait_until(lambda: any(x["state"] == "resolved" for x in alerts), 60,
                   what=f"the stale alert resolved by b\n{b.log_tail()}")
        resolved = next(x for x in alerts if x["state"] == "resolved")
        assert resolved["fingerprint"] == fired["fingerprint"]
        assert "closed" in resolved["annotations"]["summary"]
        publisher.close()
        assert b.terminate() == 0, b.log_tail()
    finally:
        listener.disconnect()
        listener.loop_stop()
        a.close()
        b.close()
