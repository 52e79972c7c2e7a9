"""Engine checkpoints on disk: one record per stream, appended, merged on restore.

A checkpoint is written a few streams at a time (``Engine.stream_state``), so no pause of
the processing thread grows with the number of streams: the file is a sequence of
records ``magic | length | crc32 | key length | key | body``, where the body is the
stream's state as ``detector.engine.snapshot`` bytes (empty: the stream is gone). The
latest record of a key wins. Appends are fsync'd; a torn record at the end (a crash mid
append) is cut off when the file is opened. When the file holds more than twice what its
latest records need, it is rewritten with only those (temporary file, fsync, rename,
directory fsync), so a crash at any point leaves a readable file.

Each stream's record is complete on its own; records of different streams may be from
different moments (seconds apart), which is all restoring needs: streams do not depend
on each other. A file an older version wrote (one whole ``Engine.snapshot``) is still
read.

>>> import tempfile
>>> from detector.engine import snapshot
>>> store = CheckpointFile(Path(tempfile.mkdtemp()) / "state" / "checkpoint.bin")
>>> store.load_streams() is None
True
>>> store.append([("s/d/a", snapshot.encode({"n": 1})), ("s/d/b", snapshot.encode({"n": 2}))])
>>> store.append([("s/d/a", snapshot.encode({"n": 3})), ("s/d/b", None)])
>>> store.load_streams()
[{'n': 3}]
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from detector.engine import snapshot

log = logging.getLogger(__name__)

RECORD_MAGIC = b"IOCK"
_HEADER = struct.Struct("<4sIIH")  # magic, length of key + body, crc32 of key + body, key length
COMPACT_MIN_BYTES = 1 << 20

Record = tuple[str, bytes | None]  # stream key, sealed state (None: the stream is gone)


@runtime_checkable
class RecordStore(Protocol):
    """Where ``CheckpointWriter`` appends records: ``CheckpointFile``, or the distributed
    mode's object store of partition checkpoints (``detector.distributed.checkpoints_kv``)."""

    path: Any  # named in error messages

    def append(self, records: Iterable[Record]) -> None: ...

    def keys(self) -> set[str]: ...


def pack_record(key: str, body: bytes | None) -> bytes:
    """One record: a stream's sealed state (None or empty: the stream is gone)."""
    raw_key, body = key.encode(), body or b""
    return record_header(raw_key, body) + raw_key + body


def record_header(raw_key: bytes, body: bytes) -> bytes:
    """The header that goes before ``raw_key`` and ``body`` in a record (written apart,
    they need not be joined first)."""
    return _HEADER.pack(RECORD_MAGIC, len(raw_key) + len(body),
                        zlib.crc32(body, zlib.crc32(raw_key)), len(raw_key))


def scan_records(data: bytes) -> tuple[dict[str, tuple[int, int]], int]:
    """The latest record of each key as (offset, length), and where the valid records end
    (a torn record after them is not read)."""
    latest: dict[str, tuple[int, int]] = {}
    offset = 0
    while offset + _HEADER.size <= len(data):
        magic, length, crc, key_length = _HEADER.unpack_from(data, offset)
        end = offset + _HEADER.size + length
        payload = data[offset + _HEADER.size:end]
        if magic != RECORD_MAGIC or end > len(data) or zlib.crc32(payload) != crc:
            break
        key = payload[:key_length].decode()
        latest.pop(key, None)
        latest[key] = (offset, end - offset)
        offset = end
    if offset == 0 and data and not data.startswith(RECORD_MAGIC):
        raise snapshot.SnapshotError("not a checkpoint (bad magic)")
    return latest, offset


def sealed_records(data: bytes) -> dict[str, bytes]:
    """key -> sealed state of every live stream in records ``data`` (the latest of each)."""
    latest, _end = scan_records(data)
    found = {}
    for key, (offset, length) in latest.items():
        start = offset + _HEADER.size + len(key.encode())
        if offset + length > start:
            found[key] = data[start:offset + length]
    return found


def decode_streams(data: bytes) -> list[Any]:
    """Every stream's latest state in checkpoint bytes: records, or one whole snapshot as
    older versions wrote. Raises ``snapshot.SnapshotError`` (or ValueError) when unreadable.
    """
    if data.startswith(snapshot.MAGIC):
        return snapshot.decode(data)["streams"]
    return [snapshot.decode(body) for body in sealed_records(data).values()]


class CheckpointFile:
    """The checkpoint file: per-stream records appended, the latest of each kept."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._index: dict[str, tuple[int, int]] = {}  # key -> (offset, record length)
        self._live_bytes = 0
        self._size = 0
        self._torn = 0  # bytes of a torn record after the valid ones, cut off before appending
        self._scanned = False

    # -- reading -------------------------------------------------------------------------------

    def load(self) -> bytes | None:
        """The file's bytes as they are (None when there is none)."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None

    def load_streams(self) -> list[Any] | None:
        """Every stream's latest state, decoded (None when there is no file).

        Raises ``snapshot.SnapshotError`` (or ValueError) when the file cannot be read.
        """
        data = self.load()
        return None if data is None else decode_streams(data)

    def _scan(self, data: bytes) -> dict[str, tuple[int, int]]:
        """Latest (offset, length) per key; remembers where the valid records end."""
        latest, offset = scan_records(data)
        self._index = {k: v for k, v in latest.items() if v[1] > _HEADER.size + len(k.encode())}
        self._live_bytes = sum(length for _offset, length in self._index.values())
        self._size = offset
        self._torn = len(data) - offset
        self._scanned = True
        return latest

    # -- writing -------------------------------------------------------------------------------

    def append(self, records: Iterable[Record]) -> None:
        """Append ``records`` (sealed state, or None for a stream that is gone) and fsync.

        Records are written one at a time as ``records`` yields them (no copy of the
        whole append in memory: a round of 10,000 streams is tens of MB, and memory
        the allocator once held for such a peak stays in the process).
        """
        if not self._scanned:
            self._open_existing()
        if self._torn:
            self._cut_torn()
        created = not self.path.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        offset = start = self._size
        try:
            with open(self.path, "ab") as handle:
                for key, body in records:
                    raw_key = key.encode()
                    body = body or b""
                    length = _HEADER.size + len(raw_key) + len(body)
                    handle.write(record_header(raw_key, body))
                    handle.write(raw_key)
                    handle.write(body)
                    previous = self._index.pop(key, None)
                    if previous is not None:
                        self._live_bytes -= previous[1]
                    if body:
                        self._index[key] = (offset, length)
                        self._live_bytes += length
                    offset += length
                if offset == start:
                    return
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            # The index may name records that did not reach the disk: read it again
            # from the file (a torn end is cut off then) before the next append.
            self._scanned = False
            raise
        finally:
            if offset == start and created:
                self.path.unlink(missing_ok=True)  # nothing to append: no empty file
        if created:
            _fsync_directory(self.path.parent)
        self._size = offset
        if self._size > max(COMPACT_MIN_BYTES, 2 * self._live_bytes):
            self.compact()

    def compact(self) -> None:
        """Rewrite the file with only the latest record of each live stream."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        index: dict[str, tuple[int, int]] = {}
        offset = 0
        with open(self.path, "rb") as source, open(tmp, "wb") as target:
            for key, (start, length) in self._index.items():
                source.seek(start)
                target.write(source.read(length))
                index[key] = (offset, length)
                offset += length
            target.flush()
            os.fsync(target.fileno())
        os.replace(tmp, self.path)
        _fsync_directory(self.path.parent)
        self._index, self._size, self._live_bytes = index, offset, offset

    def rewrite(self, records: Iterable[Record]) -> None:
        """Replace whatever the file holds with ``records`` (atomically)."""
        tmp = self.path.with_name(self.path.name + ".new")
        tmp.unlink(missing_ok=True)
        scratch = CheckpointFile(tmp)
        scratch._scanned = True
        scratch.append(records)
        if not tmp.exists():
            tmp.write_bytes(b"")
        os.replace(tmp, self.path)
        _fsync_directory(self.path.parent)
        self._index, self._size = scratch._index, scratch._size
        self._live_bytes, self._scanned, self._torn = scratch._live_bytes, True, 0

    def holds_whole_snapshot(self) -> bool:
        """Whether the file is one whole ``Engine.snapshot`` (as older versions wrote)."""
        try:
            with open(self.path, "rb") as handle:
                return handle.read(len(snapshot.MAGIC)) == snapshot.MAGIC
        except FileNotFoundError:
            return False

    def keys(self) -> set[str]:
        """The streams the file holds state for."""
        if not self._scanned:
            self._open_existing()
        return set(self._index)

    def _open_existing(self) -> None:
        data = self.load() or b""
        if data.startswith(snapshot.MAGIC):
            # A whole snapshot from an older version: its streams are rewritten as records
            # by the caller (``rewrite``); appending to it would make it unreadable.
            raise snapshot.SnapshotError("the file holds a whole snapshot: rewrite it first")
        self._scan(data)

    def _cut_torn(self) -> None:
        log.warning("checkpoint %s: cutting off %d bytes of a torn record (a crash mid-write)",
                    self.path, self._torn)
        with open(self.path, "r+b") as handle:
            handle.truncate(self._size)
            os.fsync(handle.fileno())
        self._torn = 0

    def save(self, data: bytes) -> None:
        """Replace the file with ``data`` as it is (write, fsync, rename, fsync directory):
        for files of one whole snapshot, e.g. an evicted stream (``detector.streamstore``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        _fsync_directory(self.path.parent)
        self._scanned = False

    def set_aside(self, clock=time.time) -> Path:
        """Move an unreadable checkpoint out of the way (kept for inspection)."""
        target = self.path.with_name(f"{self.path.name}.unreadable-{int(clock())}")
        os.replace(self.path, target)
        self._index, self._size, self._live_bytes, self._scanned = {}, 0, 0, True
        self._torn = 0
        return target


class CheckpointWriter:
    """Seals (compresses) and appends records on a thread of its own.

    The processing thread hands over each stream's uncompressed state
    (``snapshot.plain_bytes``); compression (zlib releases the GIL), the write and the
    fsync happen here. ``backlog_bytes`` lets the producer hold back while the disk is slow.
    """

    def __init__(self, store: RecordStore) -> None:
        self.store = store
        self._pending: list[Any] = []  # groups of records, or actions to run after them
        self._cond = threading.Condition()
        self.backlog_bytes = 0
        self._busy = False
        self._closing = False
        self.error: str | None = None
        self.written = 0  # groups appended
        self._thread = threading.Thread(target=self._run, name="checkpoint", daemon=True)
        self._thread.start()

    def submit(self, plain: list[tuple[str, bytes | None]]) -> None:
        """Queue streams' ``plain_bytes`` (None: the stream is gone) for one append."""
        if not plain:
            return
        size = sum(len(body or b"") for _key, body in plain)
        with self._cond:
            self._pending.append(plain)
            self.backlog_bytes += size
            self._cond.notify_all()

    def then(self, action: Callable[[], object]) -> None:
        """Run ``action`` (on this thread) once everything submitted so far is on disk."""
        with self._cond:
            self._pending.append(action)
            self._cond.notify_all()

    def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until everything submitted is on disk; False on timeout."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while self._pending or self._busy:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self, timeout_s: float | None = None) -> bool:
        done = self.wait_idle(timeout_s)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(5.0)
        return done

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                groups, self._pending = self._pending, []
                self._busy = True
            records = [group for group in groups if not callable(group)]
            size = sum(len(body or b"") for group in records for _key, body in group)
            try:
                self.store.append(_sealed(records))
            except Exception as exc:  # keep running on the last good records
                self.error = f"{type(exc).__name__}: {exc}"
                log.error("cannot write checkpoint %s: %s", self.store.path, self.error)
            else:
                self.error = None
                self.written += len(records)
                for action in groups:
                    if callable(action):
                        try:
                            action()
                        except Exception:
                            log.exception("after a checkpoint")
            with self._cond:
                self._busy = False
                self.backlog_bytes -= size
                self._cond.notify_all()


def _sealed(groups: list[list[tuple[str, bytes | None]]]) -> Iterator[Record]:
    """The groups' records sealed one at a time; each plain body is let go once sealed,
    so the writer never holds a whole round twice."""
    for group in groups:
        for index, (key, body) in enumerate(group):
            group[index] = (key, None)
            yield key, None if body is None else snapshot.seal(body)


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
