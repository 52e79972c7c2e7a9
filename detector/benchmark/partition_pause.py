"""How long a partition checkpoint holds up the processing thread, before and after the
checkpoints went through the worker's sliced rounds (docs/scale-out.md).

    python -m detector.benchmark.partition_pause --streams 10000 --readings 30

One instance's state in the distributed mode (``state.PartitionedHandler``, 16 partitions,
the default engine), fed ``readings`` per stream. Then, on this thread:

- **whole** (what the worker did before): every owned partition's ``Engine.snapshot``
  under the engine lock, in one go: the pause is all of it;
- **sliced** (now): one checkpoint round of the real ``worker.Worker`` (every stream
  changed), its slices run as ``Worker.run`` runs them between batches; the longest
  slice is the longest pause. The sealed records go to the real checkpoint thread.

Also the final encode of one partition when it is given up (``partition_records``,
off the worker: the lock is held one stream at a time; its longest hold is printed).
"""

from __future__ import annotations

import argparse
import time

from detector.checkpoint import Record
from detector.distributed.state import PartitionedHandler
from detector.engine import Engine, EngineSettings
from detector.metrics import Metrics
from detector.worker import CHECKPOINT_SLICE_S, Cadence, Worker
from iotwatch.parse import ReadingParser
from iotwatch.topics import Topics

PARTITIONS = 16


class _Records:
    """A record store that keeps nothing (the object store's writes are not measured)."""

    path = "memory"

    def __init__(self) -> None:
        self.records = 0

    def append(self, records: list[Record]) -> None:
        self.records += sum(1 for _record in records)

    def keys(self) -> set[str]:
        return set()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--readings", type=int, default=30)
    args = parser.parse_args()
    settings = EngineSettings()
    state = PartitionedHandler(ReadingParser(Topics("iotwatch")), PARTITIONS,
                               lambda: Engine(settings))
    for partition in range(PARTITIONS):
        state.add(partition, Engine(settings))
    started = time.monotonic()
    for index in range(args.readings):
        for stream in range(args.streams):
            state.handle(f"iotwatch/readings/s/d{stream}/m",
                         b'{"ts": %d, "value": %.2f}' % (1768905000 + index * 10,
                                                        20 + (stream * 7 + index) % 13 / 10),
                         received_at=1768905000.0 + index * 10)
    print(f"{args.streams} streams x {args.readings} readings fed in "
          f"{time.monotonic() - started:.1f} s")

    started = time.monotonic()
    with state.lock:
        whole = {p: h.engine.snapshot() for p, h in state._handlers.items()}  # noqa: SLF001
    before = time.monotonic() - started
    print(f"whole snapshot of {PARTITIONS} partitions on the worker thread: one pause of "
          f"{before * 1000:.0f} ms ({sum(map(len, whole.values())):,} bytes)")

    store = _Records()
    worker = Worker(None, state, None, None, store, Metrics(), Cadence())  # type: ignore[arg-type]
    slices = []
    worker._start_round(time.monotonic())  # noqa: SLF001
    round_started = time.monotonic()
    while worker._round:  # noqa: SLF001
        started = time.monotonic()
        worker._checkpoint_slice(CHECKPOINT_SLICE_S)  # noqa: SLF001
        slices.append(time.monotonic() - started)
    worker.checkpoint_writer.close(120)
    print(f"sliced round: {len(slices)} slices over {time.monotonic() - round_started:.1f} s, "
          f"longest {max(slices) * 1000:.1f} ms, median "
          f"{sorted(slices)[len(slices) // 2] * 1000:.1f} ms; {store.records:,} records")

    holds = []
    lock = state.lock

    class _Timed:
        def __enter__(self):
            lock.acquire()
            self.started = time.monotonic()

        def __exit__(self, *_exc):
            holds.append(time.monotonic() - self.started)
            lock.release()

    state.lock = _Timed()  # type: ignore[assignment]
    started = time.monotonic()
    records = state.partition_records(0)
    print(f"partition 0 given up: {len(records)} streams encoded in "
          f"{time.monotonic() - started:.2f} s off the worker, longest lock hold "
          f"{max(holds) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
