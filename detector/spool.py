"""A bounded on-disk FIFO of write batches: what InfluxDB could not take yet.

Batches are appended to segment files (``<12 digits>.spool``) as records of a 24-byte
header (magic, body length, CRC-32 of the body, number of points, creation time in ms)
and the line-protocol body; the magic tells the precision of the body's timestamps
(``IWSP``: ms, as every record before precisions were configurable; ``IWSU``: us;
``IWSN``: ns), so a batch is stored at its own times whatever a later run writes; every append is fsync'd before it returns, so a batch in the
spool survives ``kill -9`` and may be acknowledged to the broker. Records are read back
oldest first; a segment is deleted once fully read. How far the oldest segment has been
read is noted in ``cursor`` (not fsync'd: after a crash a few batches may be replayed
twice, which InfluxDB stores as the same points). A torn record at the end of a segment
(a crash in mid-append) is cut off when the spool is opened.

>>> import tempfile
>>> spool = Spool(Path(tempfile.mkdtemp()), max_bytes=1 << 20, segment_bytes=4096)
>>> spool.append(b"m v=1 1\\nm v=2 2", points=2, created=100.0)
True
>>> spool.points, spool.batches
(2, 1)
>>> record = spool.head()
>>> record.body, record.points, record.created
(b'm v=1 1\\nm v=2 2', 2, 100.0)
>>> record.precision
'us'
>>> spool.pop(); spool.head() is None, spool.points
(True, 0)
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"IWSP"  # the first format: ms timestamps
MAGICS = {MAGIC: "ms", b"IWSU": "us", b"IWSN": "ns"}
MAGIC_OF = {precision: magic for magic, precision in MAGICS.items()}
HEADER = struct.Struct("<4sIIIQ")  # magic, length, crc32, points, created_ms
SUFFIX = ".spool"
CURSOR = "cursor"
LOCK = "lock"


class SpoolError(OSError):
    """The spool directory cannot be used."""


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    body: bytes
    points: int
    created: float
    size: int
    precision: str = "us"  # of the body's timestamps


@dataclass(slots=True)
class _Segment:
    number: int
    size: int = 0      # bytes on disk
    batches: int = 0   # records not yet read
    points: int = 0    # points in records not yet read


class Spool:
    """Append-only segments on disk, read back in order; bounded by ``max_bytes``."""

    def __init__(self, directory: Path, max_bytes: int, segment_bytes: int) -> None:
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SpoolError(exc.errno, f"cannot create spool directory {self.directory}: "
                             f"{exc.strerror}") from exc
        self._lock = _lock_directory(self.directory)
        self._segments: deque[_Segment] = deque()
        self._read_offset = 0          # into the oldest segment
        self._reader = None            # open file of the oldest segment
        self._head: SpoolRecord | None = None
        self._writer = None
        self._next_number = 1
        self.oldest_created: float | None = None
        self._open()

    # -- state ------------------------------------------------------------------------------

    @property
    def points(self) -> int:
        return sum(segment.points for segment in self._segments)

    @property
    def batches(self) -> int:
        return sum(segment.batches for segment in self._segments)

    @property
    def bytes(self) -> int:
        return sum(segment.size for segment in self._segments) - self._read_offset

    def __bool__(self) -> bool:
        return any(segment.batches for segment in self._segments)

    def has_room(self, size: int) -> bool:
        """True when a body of ``size`` bytes fits (an empty spool takes any batch)."""
        return not self or self.bytes + HEADER.size + size <= self.max_bytes

    # -- writing ----------------------------------------------------------------------------

    def append(self, body: bytes, points: int, created: float, precision: str = "us") -> bool:
        """Store one batch durably; False (nothing written) when the spool is full."""
        if not self.has_room(len(body)):
            return False
        segment = self._segments[-1] if self._segments else None
        if segment is None or segment.size >= self.segment_bytes:
            segment = self._new_segment()
        writer = self._writer_for(segment)
        header = HEADER.pack(MAGIC_OF[precision], len(body), zlib.crc32(body), points, round(created * 1000))
        writer.write(header + body)
        writer.flush()
        os.fsync(writer.fileno())
        segment.size += HEADER.size + len(body)
        segment.batches += 1
        segment.points += points
        if self.oldest_created is None:
            self.oldest_created = created
        return True

    # -- reading ----------------------------------------------------------------------------

    def head(self) -> SpoolRecord | None:
        """The oldest batch not yet popped, or None when the spool is empty."""
        if self._head is None:
            self._head = self._read_head()
        return self._head

    def pop(self) -> None:
        """Forget the oldest batch (it has been written)."""
        record = self.head()
        if record is None:
            return
        segment = self._segments[0]
        self._read_offset += record.size
        segment.batches -= 1
        segment.points -= record.points
        self._head = None
        if segment.batches == 0:
            self._drop_oldest()
        else:
            self._save_cursor()
        following = self.head()
        self.oldest_created = None if following is None else following.created

    def close(self) -> None:
        for handle in (self._reader, self._writer, self._lock):
            if handle is not None:
                handle.close()
        self._reader = self._writer = self._lock = None

    # -- internals --------------------------------------------------------------------------

    def _open(self) -> None:
        numbers = sorted(int(p.stem) for p in self.directory.glob(f"*{SUFFIX}")
                         if p.stem.isdigit())
        cursor = self._load_cursor()
        self._next_number = max([1, *(n + 1 for n in numbers),
                                 *([cursor[0]] if cursor else [])])
        for number in numbers:
            start = cursor[1] if cursor and cursor[0] == number else 0
            if cursor and number < cursor[0]:
                self._path(number).unlink()  # fully read before the restart
                continue
            segment = self._scan(number, start)
            if segment.batches == 0:
                self._path(number).unlink()
                continue
            if not self._segments:
                self._read_offset = start
            self._segments.append(segment)
        head = self.head()
        self.oldest_created = None if head is None else head.created
        if self:
            log.info("spool %s holds %d points in %d batches", self.directory, self.points,
                     self.batches)

    def _scan(self, number: int, start: int) -> _Segment:
        path = self._path(number)
        segment = _Segment(number)
        with open(path, "r+b") as handle:
            data = handle.read()
            offset = 0
            while offset + HEADER.size <= len(data):
                magic, length, crc, points, _created = HEADER.unpack_from(data, offset)
                end = offset + HEADER.size + length
                if magic not in MAGICS or end > len(data) or zlib.crc32(
                        data[offset + HEADER.size:end]) != crc:
                    break
                if offset >= start:
                    segment.batches += 1
                    segment.points += points
                offset = end
            if offset < len(data):
                log.warning("spool segment %s: cutting %d bytes of a torn record at %d", path,
                            len(data) - offset, offset)
                handle.truncate(offset)
                os.fsync(handle.fileno())
        segment.size = offset
        return segment

    def _read_head(self) -> SpoolRecord | None:
        while self._segments:
            segment = self._segments[0]
            if segment.batches == 0:
                if len(self._segments) == 1:
                    return None
                self._drop_oldest()
                continue
            if self._reader is None:
                self._reader = open(self._path(segment.number), "rb")  # noqa: SIM115
            self._reader.seek(self._read_offset)
            header = self._reader.read(HEADER.size)
            magic, length, crc, points, created_ms = HEADER.unpack(header)
            body = self._reader.read(length)
            if magic not in MAGICS or len(body) != length or zlib.crc32(body) != crc:
                raise SpoolError(f"spool segment {self._path(segment.number)} is corrupt at "
                                 f"offset {self._read_offset}")
            return SpoolRecord(body, points, created_ms / 1000.0, HEADER.size + length,
                               MAGICS[magic])
        return None

    def _drop_oldest(self) -> None:
        segment = self._segments.popleft()
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if not self._segments and self._writer is not None:
            self._writer.close()
            self._writer = None
        with contextlib.suppress(FileNotFoundError):
            self._path(segment.number).unlink()
        self._read_offset = 0
        self._save_cursor()

    def _new_segment(self) -> _Segment:
        number = self._next_number
        self._next_number += 1
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        segment = _Segment(number)
        self._segments.append(segment)
        return segment

    def _writer_for(self, segment: _Segment):
        if self._writer is None:
            path = self._path(segment.number)
            is_new = not path.exists()
            self._writer = open(path, "ab")  # noqa: SIM115
            if is_new:
                self._fsync_directory()
        return self._writer

    def _path(self, number: int) -> Path:
        return self.directory / f"{number:012d}{SUFFIX}"

    def _save_cursor(self) -> None:
        # Segments numbered below the cursor's are read; of its own, the bytes before offset.
        number = self._segments[0].number if self._segments else self._next_number
        tmp = self.directory / (CURSOR + ".tmp")
        tmp.write_text(f"{number} {self._read_offset}\n")
        tmp.replace(self.directory / CURSOR)

    def _load_cursor(self) -> tuple[int, int] | None:
        try:
            number, offset = (self.directory / CURSOR).read_text().split()
            return int(number), int(offset)
        except (OSError, ValueError):
            return None

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _lock_directory(directory: Path):
    """Hold an exclusive lock on the spool for this process's lifetime (released on exit)."""
    handle = open(directory / LOCK, "a+b")  # noqa: SIM115
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise SpoolError(f"spool directory {directory} is in use by another process; give each "
                         "detector its own detector.spool.dir") from None
    return handle
