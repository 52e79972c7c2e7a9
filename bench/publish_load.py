"""Load generator for bench/throughput.py: QoS 1 readings over N streams, as fast as
possible or at a fixed rate. Runs as its own process so it does not share a GIL with the
subscriber being measured.

    python bench/publish_load.py --host 127.0.0.1 --port 1883 --user publisher \
        --streams 1000 --count 100000 [--rate 2000] [--site bench]

The password comes from ``MQTT_PASSWORD``. Each payload is the contract's single-metric
form with ``ts`` = the publish time in epoch milliseconds, so a receiver can compute
publish-to-receive latency from the message alone. Prints "published N in S s" at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import threading
import time

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default="publisher")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0 = flat out")
    parser.add_argument("--site", default="bench")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}",
                         protocol=mqtt.MQTTv311)
    client.username_pw_set(args.user, os.environ["MQTT_PASSWORD"])
    client.max_inflight_messages_set(1000)
    connected = threading.Event()
    client.on_connect = lambda *_a: connected.set()
    client.connect(args.host, args.port, keepalive=60)
    client.loop_start()
    if not connected.wait(30):
        raise SystemExit("publisher: no CONNACK")

    rng = random.Random(args.seed)
    phases = [rng.uniform(0, 2 * math.pi) for _ in range(args.streams)]
    topics = [f"iotwatch/readings/{args.site}/dev-{s}/temperature" for s in range(args.streams)]
    started = time.monotonic()
    pending: list[mqtt.MQTTMessageInfo] = []
    for i in range(args.count):
        if args.rate:
            due = started + i / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        stream = i % args.streams
        step = i // args.streams
        value = 20.0 + 2.0 * math.sin(step / 50.0 + phases[stream]) + rng.gauss(0, 0.1)
        payload = orjson.dumps({"ts": int(time.time() * 1000), "value": round(value, 4),
                                "seq": step})
        pending.append(client.publish(topics[stream], payload, qos=1))
        if len(pending) >= 20_000:  # paho caps outstanding QoS 1 messages at 65,535
            for info in pending:
                info.wait_for_publish(120)
            pending.clear()
    for info in pending:
        info.wait_for_publish(120)
    elapsed = time.monotonic() - started
    client.disconnect()
    client.loop_stop()
    print(f"published {args.count} in {elapsed:.3f} s", flush=True)


if __name__ == "__main__":
    main()
