"""Checkpoints written a few streams at a time restore exactly what a whole snapshot does."""

from __future__ import annotations

import random

import paho.mqtt.client as mqtt

from detector.app import _restore
from detector.checkpoint import CheckpointFile
from detector.emit import Emitter
from detector.engine import Engine, EngineSettings, snapshot
from detector.handler import MessageHandler
from detector.metrics import Metrics
from detector.worker import Cadence, Worker
from iotwatch.parse import ReadingParser
from iotwatch.topics import Topics

BASE_TS = 1_768_905_000.0
SETTINGS = EngineSettings(calibration={"warmup": 30},
                          detectors={"hst": {"window_size": 40}})


def items(streams: range, first: int, count: int, rnd: random.Random):
    out = []
    for i in range(first, first + count):
        for s in streams:
            message = mqtt.MQTTMessage(mid=1, topic=f"iotwatch/readings/site/dev-{s}/t".encode())
            value = 20 + rnd.gauss(0, 1) + (40 if i % 97 == 0 else 0)
            message.payload = f'{{"ts": {BASE_TS + i}, "value": {value!r}}}'.encode()
            out.append((1, message, BASE_TS + i))
        device = mqtt.MQTTMessage(mid=1, topic=b"iotwatch/readings/site/multi")
        device.payload = f'{{"ts": {BASE_TS + i}, "a": {rnd.gauss(1, 1)!r}, ' \
                         f'"b": {rnd.gauss(2, 1)!r}}}'.encode()
        out.append((1, device, BASE_TS + i))
    return out


def worker_for(path) -> tuple[Worker, Engine]:
    engine = Engine(SETTINGS)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="checkpoint-test")
    worker = Worker(None, MessageHandler(engine, ReadingParser(Topics("iotwatch"))),
                    Emitter(client, Topics("iotwatch")), None, CheckpointFile(path), Metrics(),
                    Cadence())
    return worker, engine


def states(engine: Engine) -> dict[str, bytes]:
    return {key: snapshot.plain_bytes(engine.stream_state(key)) for key in engine.stream_keys()}


def test_rounds_in_slices_restore_what_a_whole_snapshot_restores(tmp_path):
    rnd = random.Random(3)
    path = tmp_path / "checkpoint.bin"
    worker, engine = worker_for(path)
    worker.process(items(range(12), 0, 120, rnd))
    worker._start_round(0.0)
    rounds = 0
    while worker._round:  # one stream per slice, readings of a few streams in between
        worker._checkpoint_slice(0.0)
        worker.process(items(range(3), 120 + rounds, 1, rnd))
        rounds += 1
    assert rounds > 10
    worker.process(items(range(2, 6), 200, 30, rnd))  # some streams change, others don't
    worker._final_checkpoint()

    restored = Engine.from_streams(SETTINGS, CheckpointFile(path).load_streams())
    whole = Engine.restore(SETTINGS, engine.snapshot())
    assert states(restored) == states(whole) == states(engine)
    assert len(states(engine)) == 12 + 3  # and multi/a, multi/b, multi/_device
    # ... and both continue exactly as the original does.
    handlers = [MessageHandler(e, ReadingParser(Topics("iotwatch")))
                for e in (engine, restored, whole)]
    for _generation, message, _at in items(range(12), 230, 40, random.Random(5)):
        original, *others = [h.handle(message.topic, message.payload, 0.0).lines
                             for h in handlers]
        assert others == [original, original]


def test_a_restart_writes_only_what_changed_and_the_file_stays_compact(tmp_path):
    rnd = random.Random(4)
    path = tmp_path / "checkpoint.bin"
    worker, engine = worker_for(path)
    worker.process(items(range(20), 0, 60, rnd))
    worker._final_checkpoint()
    size = path.stat().st_size

    engine = _restore(CheckpointFile(path), SETTINGS)
    worker, _ = worker_for(path)
    worker.handler.engine = engine
    worker.process(items(range(1), 60, 5, rnd))  # one stream (and the device) changes
    worker._final_checkpoint()
    grown = path.stat().st_size - size
    assert 0 < grown < size / 5
    for _ in range(30):  # the same streams again and again: compaction keeps it bounded
        store = CheckpointFile(path)
        store.append([(key, snapshot.encode(engine.stream_state(key)))
                      for key in engine.stream_keys()])
    assert path.stat().st_size < 3 * size + (1 << 20)
    assert states(Engine.from_streams(SETTINGS, CheckpointFile(path).load_streams())) \
        == states(engine)


def test_a_torn_record_is_cut_off_and_appending_goes_on(tmp_path):
    path = tmp_path / "checkpoint.bin"
    store = CheckpointFile(path)
    store.append([("s/d/a", snapshot.encode({"n": 1})), ("s/d/b", snapshot.encode({"n": 2}))])
    whole = path.read_bytes()
    path.write_bytes(whole + whole[:30])  # a crash in the middle of the next append
    store = CheckpointFile(path)
    assert store.load_streams() == [{"n": 1}, {"n": 2}]
    store.append([("s/d/a", snapshot.encode({"n": 3}))])
    assert CheckpointFile(path).load_streams() == [{"n": 2}, {"n": 3}]


def test_an_append_that_fails_midway_leaves_a_readable_file_and_appending_goes_on(tmp_path):
    path = tmp_path / "checkpoint.bin"
    store = CheckpointFile(path)
    store.append([("s/d/a", snapshot.encode({"n": 1})), ("s/d/b", snapshot.encode({"n": 2}))])

    def records():  # written one at a time: the first is in the file when the second fails
        yield "s/d/a", snapshot.encode({"n": 3})
        raise OSError("disk full")

    try:
        store.append(records())
    except OSError:
        pass
    else:
        raise AssertionError("the append should have failed")
    assert CheckpointFile(path).load_streams() in ([{"n": 1}, {"n": 2}], [{"n": 2}, {"n": 3}])
    store.append([("s/d/b", snapshot.encode({"n": 4}))])
    assert CheckpointFile(path).load_streams() == [{"n": 3}, {"n": 4}]


def test_the_writer_keeps_the_order_of_what_was_submitted(tmp_path):
    from detector.checkpoint import CheckpointWriter

    path = tmp_path / "checkpoint.bin"
    writer = CheckpointWriter(CheckpointFile(path))
    for n in range(50):  # groups of the same keys, in turn: the last group's state wins
        writer.submit([(f"s/d/{k}", snapshot.plain_bytes({"k": k, "n": n})) for k in range(5)])
    assert writer.close(30)
    assert sorted((s["k"], s["n"]) for s in CheckpointFile(path).load_streams()) \
        == [(k, 49) for k in range(5)]


def test_a_whole_snapshot_of_an_older_version_is_restored_and_rewritten_as_records(tmp_path):
    path = tmp_path / "checkpoint.bin"
    worker, engine = worker_for(tmp_path / "scratch.bin")
    worker.process(items(range(4), 0, 50, random.Random(6)))
    path.write_bytes(engine.snapshot())
    restored = _restore(CheckpointFile(path), SETTINGS)
    assert states(restored) == states(engine)
    assert not CheckpointFile(path).holds_whole_snapshot()
    assert states(Engine.from_streams(SETTINGS, CheckpointFile(path).load_streams())) \
        == states(engine)


def test_an_unreadable_checkpoint_is_set_aside(tmp_path):
    path = tmp_path / "checkpoint.bin"
    path.write_bytes(b"garbage")
    assert len(_restore(CheckpointFile(path), SETTINGS)) == 0
    assert not path.exists() and list(tmp_path.glob("checkpoint.bin.unreadable-*"))


def test_evicted_streams_leave_the_checkpoint_and_come_back_through_it(tmp_path):
    from detector.streamlimit import StreamGate, StreamLimits
    from detector.streamstore import StreamStore

    path = tmp_path / "checkpoint.bin"
    gate = StreamGate(StreamLimits(max_streams=20, evict_idle_s=10), StreamStore(tmp_path / "ev"))
    engine = Engine(SETTINGS)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="checkpoint-test")
    worker = Worker(None, MessageHandler(engine, ReadingParser(Topics("iotwatch")), gate=gate),
                    Emitter(client, Topics("iotwatch")), None, CheckpointFile(path), Metrics(),
                    Cadence())
    rnd = random.Random(8)

    def run_round() -> None:
        worker._start_round(0.0)
        while worker._round:
            worker._checkpoint_slice(0.0)
        assert worker.checkpoint_writer.wait_idle(30)

    worker.process(items(range(2), 0, 50, rnd))
    run_round()
    worker.process(items(range(1, 3), 100, 20, rnd))  # dev-2 is new: dev-0, idle, is evicted
    assert "site/dev-0/t" not in engine and "site/dev-0/t" in gate.store
    run_round()
    on_disk = {s["device"] for s in CheckpointFile(path).load_streams()}
    assert on_disk == {"dev-1", "dev-2", "multi"}
    worker.process(items(range(3), 200, 5, rnd))  # dev-0 comes back from the store
    assert "site/dev-0/t" in engine and "site/dev-0/t" in gate.store
    run_round()
    assert "site/dev-0/t" not in gate.store  # its record is on disk now
    restored = Engine.from_streams(SETTINGS, CheckpointFile(path).load_streams())
    assert states(restored) == states(engine)
