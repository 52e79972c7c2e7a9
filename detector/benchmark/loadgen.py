"""The benchmark's load generator: QoS 1 readings over N streams, written in batches.

A paho publisher spends ~30-40 us of Python per message and tops out near the rate it is
meant to measure (shared/MEASURED.md). This generator builds MQTT 3.1.1 PUBLISH packets
itself and writes hundreds of them with one ``sendall``, so one process offers several
times what a Python subscriber can take. It is a load tool, not a client: it speaks just
CONNECT/CONNACK, PUBLISH (QoS 1)/PUBACK and DISCONNECT, keeps at most ``window`` messages
unacknowledged (the broker's ``max_inflight_messages``), and counts a message as
published when its PUBACK arrives.

    python -m detector.benchmark.loadgen --port 1883 --user publisher --streams 1000 \
        --count 100000 [--rate 2000] [--first-seq 0]

The password comes from ``MQTT_PASSWORD``. Stream ``s`` publishes on
``iotwatch/readings/<site>/dev-<s>/<metric>``; ``--probes`` streams, spread evenly over the
numbering (``is_probe``), use the metric ``probe`` (the latency phase follows those in
the database). Payloads are the
contract's single-metric form with ``ts`` the send time in epoch seconds (microseconds,
strictly increasing, so no two readings of a stream share a timestamp) and ``seq`` the
stream's reading number. The last line printed is a JSON summary.

>>> encode_length(127), encode_length(128), encode_length(16_384)
(b'\\x7f', b'\\x80\\x01', b'\\x80\\x80\\x01')
>>> publish_packet(b"a/b", 1, b"{}")
b'2\\t\\x00\\x03a/b\\x00\\x01{}'
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import socket
import sys
import time

CONNACK, PUBACK = 0x20, 0x40
BATCH = 256  # packets per sendall: large enough to amortise the call, small for latency


def encode_length(n: int) -> bytes:
    """MQTT's variable-length 'remaining length' (7 bits a byte, high bit = more)."""
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def connect_packet(client_id: str, username: str, password: str) -> bytes:
    """CONNECT, MQTT 3.1.1, clean session, no keep-alive (the run is short and busy)."""
    variable = _string(b"MQTT") + bytes([4, 0x80 | 0x40 | 0x02]) + (0).to_bytes(2, "big")
    payload = _string(client_id.encode()) + _string(username.encode()) + \
        _string(password.encode())
    body = variable + payload
    return bytes([0x10]) + encode_length(len(body)) + body


def publish_packet(topic: bytes, packet_id: int, payload: bytes) -> bytes:
    """PUBLISH at QoS 1 (fixed header 0x32)."""
    body_length = 2 + len(topic) + 2 + len(payload)
    return b"".join((b"\x32", encode_length(body_length), len(topic).to_bytes(2, "big"), topic,
                     packet_id.to_bytes(2, "big"), payload))


def is_probe(stream: int, streams: int, probes: int) -> bool:
    """Whether stream number ``stream`` is one of the ``probes`` the latency phase follows:
    every ``streams // probes``-th, so probe readings are spread evenly over the cycle
    through the streams and the percentiles sample time evenly (the first ``probes``
    streams would put all of them within a few ms of each other, once per cycle).

    >>> [s for s in range(10) if is_probe(s, 10, 3)]
    [0, 3, 6]
    """
    return probes > 0 and stream % max(1, streams // probes) == 0 and stream // max(
        1, streams // probes) < probes


class LoadGenerator:
    """One connection that publishes ``count`` readings as fast as allowed, or at ``rate``."""

    def __init__(self, host: str, port: int, username: str, password: str, *, streams: int,
                 site: str = "bench", metric: str = "temperature", probes: int = 0,
                 window: int = 1000, seed: int = 7) -> None:
        self.streams = streams
        self.window = window
        rng = random.Random(seed)
        self._topics = [f"iotwatch/readings/{site}/dev-{s}/"
                        f"{'probe' if is_probe(s, streams, probes) else metric}".encode()
                       for s in range(streams)]
        self._bases = [20.0 + rng.uniform(-5, 5) for _ in range(streams)]
        self._noise = [rng.gauss(0.0, 0.2) for _ in range(4096)]
        self._sock = socket.create_connection((host, port), timeout=30)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(connect_packet(f"bench-load-{os.getpid()}", username, password))
        answer = self._recv_exactly(4)
        if answer[0] != CONNACK or answer[3] != 0:
            raise SystemExit(f"loadgen: broker refused the connection (CONNACK {answer.hex()})")
        self._sock.setblocking(False)
        self._pending = b""
        self.acked = 0
        self._last_us = 0

    def _recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self._sock.recv(n - len(data))
            if not chunk:
                raise SystemExit("loadgen: broker closed the connection")
            data += chunk
        return data

    def _message(self, i: int, now_us: int) -> bytes:
        stream, seq = i % self.streams, i // self.streams
        self._last_us = now_us = max(now_us, self._last_us + 1)
        value = self._bases[stream] + self._noise[i & 4095]
        payload = b'{"ts":%d.%06d,"value":%.3f,"seq":%d}' % (now_us // 1_000_000,
                                                            now_us % 1_000_000, value, seq)
        return publish_packet(self._topics[stream], i % 65_535 + 1, payload)

    def _read_acks(self, wait_s: float) -> None:
        readable, _, _ = select.select([self._sock], [], [], wait_s)
        if not readable:
            return
        data = self._pending + self._sock.recv(1 << 20)
        if len(data) == len(self._pending):
            raise SystemExit("loadgen: broker closed the connection")
        whole = len(data) - len(data) % 4
        for offset in range(0, whole, 4):  # PUBACK is the only packet the broker sends us
            if data[offset] != PUBACK:
                raise SystemExit(f"loadgen: unexpected packet type {data[offset]:#x}")
        self.acked += whole // 4
        self._pending = data[whole:]

    def run(self, count: int, rate: float = 0.0, first: int = 0) -> float:
        """Publish readings ``first .. first + count - 1``; return seconds until all acked."""
        started = time.monotonic()
        sent, self.acked = 0, 0
        while self.acked < count:
            room = min(self.window - (sent - self.acked), count - sent, BATCH)
            if rate:
                due = int((time.monotonic() - started) * rate) + 1
                room = min(room, due - sent)
            if room > 0:
                now_us = time.time_ns() // 1000
                batch = b"".join(self._message(first + sent + k, now_us) for k in range(room))
                self._sock.setblocking(True)
                self._sock.sendall(batch)
                self._sock.setblocking(False)
                sent += room
                self._read_acks(0.0)
            else:
                self._read_acks(0.0005 if rate else 0.05)
        return time.monotonic() - started

    def close(self) -> None:
        try:
            self._sock.setblocking(True)
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            self._sock.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", default="publisher")
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0,
                        help="number of the first reading (seq continues across runs)")
    parser.add_argument("--rate", type=float, default=0.0, help="messages/s; 0 = flat out")
    parser.add_argument("--site", default="bench")
    parser.add_argument("--window", type=int, default=1000)
    args = parser.parse_args(argv)
    generator = LoadGenerator(args.host, args.port, args.user, os.environ["MQTT_PASSWORD"],
                              streams=args.streams, site=args.site, probes=args.probes,
                              window=args.window)
    try:
        seconds = generator.run(args.count, args.rate, args.first)
    finally:
        generator.close()
    print(json.dumps({"published": args.count, "seconds": round(seconds, 3),
                      "msgs_per_s": round(args.count / seconds) if seconds else None}),
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
