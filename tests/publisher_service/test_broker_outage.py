"""Broker outages: a restart mid-run loses no QoS 1 reading while the buffer bound holds;
beyond the bound new readings are dropped, counted, and the rest still arrive in order."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import orjson
from harness import wait_until

from iotwatch.config import MqttSettings
from iotwatch.mqtt import connect, make_client
from publisher.sender import MqttSender

from .support import START, fleet, read_csv_rows, run_publisher, write_yaml


class PersistentCollector:
    """A monitor with a persistent session: the broker keeps (and saves across its own
    restart) what arrives for it while it is disconnected, so it misses nothing."""

    def __init__(self, broker, topic_filter: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = broker.connect("monitor", client_id=f"outage-{uuid.uuid4().hex[:8]}",
                                     clean=False, on_message=self._record)
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.subscribe(topic_filter, 1)
        assert subscribed.wait(30), "no SUBACK"

    def _record(self, _client, _userdata, message) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_broker_restart_mid_run_loses_no_qos1_reading(fresh_mosquitto, tmp_path: Path) -> None:
    broker = fresh_mosquitto
    data = fleet()
    data["templates"]["boiler"].update(interval_s=1, jitter_s=0)
    data["sites"] = {"plant-r": {"devices": [{"name": "boiler-1", "template": "boiler"}]}}
    write_yaml(tmp_path / "fleet.yaml", data)
    config = write_yaml(tmp_path / "publisher.yaml", {
        "mqtt": broker.mqtt_section("publisher", reconnect_max_s=2),
        "publisher": {"fleet_file": "fleet.yaml", "start": START, "count": 300,
                      "speed": 50, "truth": False, "progress_interval_s": 1}})
    files = run_publisher(["--config", str(config), "--out", "out"], cwd=tmp_path)
    assert files.returncode == 0, files.stderr
    expected = read_csv_rows(tmp_path / "out" / "readings.csv")
    assert len(expected) == 600

    collector = PersistentCollector(broker, "iotwatch/readings/plant-r/#")
    log_path = tmp_path / "publisher.log"
    try:
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "publisher", "--config", str(config)], cwd=tmp_path,
                env={**os.environ, **broker.env("publisher")},
                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: collector.count() >= 60, 60, what="the first readings")
            assert process.poll() is None, "the run ended before the outage"
            broker.restart()
            assert process.wait(180) == 0, log_path.read_text()[-3000:]
        finally:
            if process.poll() is None:
                process.kill()
        wait_until(lambda: collector.count() >= 600, 60, what="every reading")
    finally:
        collector.close()

    output = log_path.read_text()
    summary = re.search(r"summary: .*", output)
    assert summary, output[-3000:]
    assert re.search(r"\b0 dropped\b.*\b0 undelivered\b", summary.group()), summary.group()
    assert int(re.search(r"(\d+) reconnects", summary.group()).group(1)) >= 1
    # Resent messages whose PUBACK was lost may arrive twice: the seq tells.
    seen: set[tuple[str, int]] = set()
    arrived = []
    for topic, payload in collector.messages:
        body = orjson.loads(payload)
        key = (topic, body["seq"])
        if key in seen:
            continue
        seen.add(key)
        metric = topic.rsplit("/", 1)[1]
        arrived.append((topic, body["seq"], body["ts"], repr(body["value"]), metric))
    assert len(arrived) == 600
    for metric in ("supply_temp", "pressure"):
        mine = [a for a in arrived if a[4] == metric]
        assert [a[1] for a in mine] == list(range(300)), f"{metric} out of order or missing"
        assert [[a[2], a[3]] for a in mine] == [[r[0], r[4]] for r in expected
                                               if r[3] == metric]


def test_beyond_the_bound_new_messages_are_dropped_and_counted(fresh_mosquitto) -> None:
    broker = fresh_mosquitto
    settings = MqttSettings(**broker.mqtt_section("publisher", reconnect_max_s=1),
                            password=broker.password("publisher"))
    holder: list[MqttSender] = []
    client = make_client(settings, "publisher", persistent=False,
                         client_id=f"bound-{uuid.uuid4().hex[:8]}",
                         on_connected=lambda c: holder[0].on_connected(c))
    sender = MqttSender(client, qos=1, max_in_flight=10, buffer_size=5)
    holder.append(sender)
    collector = PersistentCollector(broker, "iotwatch/readings/plant-b/#")
    try:
        connect(client, settings)
        for seq in range(3):
            sender.send("iotwatch/readings/plant-b/d/m", orjson.dumps({"value": 1, "seq": seq}))
        assert sender.flush(60) == 0
        broker.stop()
        wait_until(lambda: not sender.connected, 30, what="the publisher to notice")
        for seq in range(3, 23):
            sender.send("iotwatch/readings/plant-b/d/m", orjson.dumps({"value": 1, "seq": seq}))
        assert (sender.stats.buffered, sender.stats.dropped) == (5, 15)
        broker.start()
        assert sender.flush(60) == 0
        wait_until(lambda: collector.count() >= 8, 60, what="the buffered messages")
    finally:
        client.disconnect()
        client.loop_stop()
        collector.close()
    # QoS 1 is at least once: the broker may redeliver to the collector after its restart.
    seqs = list(dict.fromkeys(orjson.loads(p)["seq"] for _t, p in collector.messages))
    assert seqs == [0, 1, 2, 3, 4, 5, 6, 7]  # the oldest five kept, in order
    assert sender.stats.sent == 8 and sender.stats.reconnects == 1



def test_messages_in_flight_when_the_broker_stops_are_resent_in_order(fresh_mosquitto) -> None:
    """As fast as possible, the in-flight window is full when the broker goes away: paho
    resends those first (clean session and all), then the FIFO drains behind them."""
    broker = fresh_mosquitto
    settings = MqttSettings(**broker.mqtt_section("publisher", reconnect_max_s=1),
                            password=broker.password("publisher"), max_inflight=500)
    holder: list[MqttSender] = []
    client = make_client(settings, "publisher", persistent=False,
                         client_id=f"inflight-{uuid.uuid4().hex[:8]}",
                         on_connected=lambda c: holder[0].on_connected(c))
    sender = MqttSender(client, qos=1, max_in_flight=500, buffer_size=1000, overflow="wait")
    holder.append(sender)
    collector = PersistentCollector(broker, "iotwatch/readings/plant-f/#")
    total = 6000
    in_flight_at_stop: list[int] = []

    def stop_broker_mid_run() -> None:
        wait_until(lambda: collector.count() >= 1000, 60, what="the first messages")
        in_flight_at_stop.append(sender.stats.in_flight)
        broker.stop()
        broker.start()

    outage = threading.Thread(target=stop_broker_mid_run, daemon=True)
    try:
        connect(client, settings)
        outage.start()
        for seq in range(total):
            sender.send("iotwatch/readings/plant-f/d/m", orjson.dumps({"value": 1, "seq": seq}))
        assert sender.flush(120) == 0
        outage.join(60)
        wait_until(lambda: len({orjson.loads(p)["seq"] for _t, p in collector.messages})
                   >= total, 60, what="every message")
    finally:
        client.disconnect()
        client.loop_stop()
        collector.close()
    assert sender.stats.reconnects == 1 and sender.stats.dropped == 0
    assert in_flight_at_stop and in_flight_at_stop[0] > 0
    seqs = list(dict.fromkeys(orjson.loads(p)["seq"] for _t, p in collector.messages))
    assert seqs == list(range(total))
