"""The ceiling: a bare paho subscriber that only counts, in a process of its own.

It subscribes at QoS 1 (paho acknowledges automatically), prints ``ready`` once the
broker confirmed the subscription, counts ``--count`` messages and prints a JSON summary
with the rate from its first to its last message. Nothing a real consumer of paho does
can be cheaper, so the detector's rate divided by this one is the share of the Python
ceiling it reaches.

    python -m detector.benchmark.baresub --port 1883 --user monitor \
        --filter 'iotwatch/readings/bench/#' --count 100000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default="monitor")
    parser.add_argument("--filter", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)

    first: list[float] = []
    last = [0.0]
    received = [0]
    done = threading.Event()

    def on_message(_client, _userdata, _message) -> None:
        now = time.monotonic()
        if not first:
            first.append(now)
        last[0] = now
        received[0] += 1
        if received[0] >= args.count:
            done.set()

    subscribed = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-bare-{os.getpid()}",
                         protocol=mqtt.MQTTv311)
    client.username_pw_set(args.user, os.environ["MQTT_PASSWORD"])
    client.max_inflight_messages_set(1000)
    client.on_connect = lambda c, *_: c.subscribe(args.filter, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = on_message
    client.connect(args.host, args.port, keepalive=60)
    client.loop_start()
    if not subscribed.wait(30):
        print(json.dumps({"error": "no SUBACK within 30 s"}), flush=True)
        return 1
    print("ready", flush=True)
    complete = done.wait(args.timeout)
    client.disconnect()
    client.loop_stop()
    span = last[0] - first[0] if first else 0.0
    print(json.dumps({"received": received[0], "complete": complete,
                      "seconds": round(span, 3),
                      "msgs_per_s": round((received[0] - 1) / span) if span > 0 else None}),
          flush=True)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
