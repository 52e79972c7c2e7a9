"""Memory of a flood of new stream names, with and without the detector's stream limits.

    python bench/stream_flood.py [--streams 50000] [--limits none,20000,1000]

Each case runs in a fresh process: the detector's own handler (parser, stream gate,
engine with the default detectors) takes one reading of each of ``--streams`` new
stream names (a gateway with a counter in its topic), 100 a second of arrival time, so
``max_new_streams_per_minute`` (default 10,000) lets them through and ``max_streams``
is what bounds them. Prints the resident memory before and after.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

BASE_TS = 1_768_905_000.0


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def one_case(streams: int, max_streams: int | None) -> None:
    import orjson

    from detector.engine import Engine, EngineSettings
    from detector.handler import MessageHandler
    from detector.streamlimit import StreamGate, StreamLimits
    from detector.streamstore import StreamStore
    from iotwatch.parse import ReadingParser
    from iotwatch.topics import Topics

    topics = Topics()
    gate = None
    if max_streams is not None:
        store = StreamStore(Path(tempfile.mkdtemp(prefix="flood-")) / "evicted")
        gate = StreamGate(StreamLimits(max_streams=max_streams), store)
    handler = MessageHandler(Engine(EngineSettings()), ReadingParser(topics), gate=gate)
    # Warm the code paths so the baseline holds the modules and their caches.
    handler.handle(topics.reading("warm", "dev", "m"), b'{"value": 1.0}', BASE_TS)
    before = rss_mb()
    refused = 0
    for n in range(streams):
        at = BASE_TS + n * 0.01
        payload = orjson.dumps({"ts": at, "value": float(n % 100)})
        done = handler.handle(topics.reading("flood", f"gw-{n}", "counter"), payload, at)
        refused += done.rejected is not None
        if n % 10_000 == 9_999:
            print(f"  ... {n + 1} messages, {rss_mb() - before:.0f} MB", file=sys.stderr,
                  flush=True)
    after = rss_mb()
    label = "no limit" if max_streams is None else f"max_streams {max_streams}"
    print(f"{label:>18}: {streams} new streams, {len(handler.engine)} held, {refused} "
          f"refused (stream_limit); RSS {before:.0f} -> {after:.0f} MB "
          f"(+{after - before:.0f} MB)", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=50_000)
    parser.add_argument("--limits", default="none,20000,1000",
                        help="comma-separated max_streams values; none: no limit")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:
        one_case(args.streams, None if args.case == "none" else int(args.case))
        return 0
    for case in args.limits.split(","):
        print(f"case {case}: {args.streams} new streams ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, __file__, "--streams", str(args.streams),
                        "--case", case], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
