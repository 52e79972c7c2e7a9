"""The on-disk spool: order, bounds, segments, and surviving a crash."""

from __future__ import annotations

from detector.spool import HEADER, Spool


def bodies(spool: Spool) -> list[bytes]:
    out = []
    while (record := spool.head()) is not None:
        out.append(record.body)
        spool.pop()
    return out


def test_batches_come_back_in_order_across_segments(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=100)
    written = [f"m v={i} {i}".encode() * 5 for i in range(20)]
    for i, body in enumerate(written):
        assert spool.append(body, points=5, created=float(i))
    assert len(list(tmp_path.glob("*.spool"))) > 1
    assert spool.points == 100 and spool.batches == 20
    assert spool.oldest_created == 0.0
    assert bodies(spool) == written
    assert not spool and spool.points == 0 and spool.oldest_created is None
    assert list(tmp_path.glob("*.spool")) == []  # read segments are deleted


def test_full_spool_refuses_without_writing(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 16, segment_bytes=1 << 14)
    body = b"x" * 1000
    accepted = 0
    while spool.append(body, 1, 0.0):
        accepted += 1
    assert accepted == (1 << 16) // (1000 + HEADER.size)
    before = spool.bytes
    assert not spool.append(body, 1, 0.0)
    assert spool.bytes == before
    spool.pop()
    assert spool.append(body, 1, 0.0)  # room again once a batch is replayed


def test_an_empty_spool_takes_any_batch(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 16, segment_bytes=1 << 14)
    assert spool.append(b"x" * (1 << 17), 1, 0.0)


def test_reopened_spool_continues_where_reading_stopped(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    for i in range(10):
        spool.append(f"b{i}".encode() * 10, 1, float(i))
    for _ in range(3):
        spool.pop()
    spool.close()  # as if killed: no other shutdown work
    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)
    assert again.batches == 7
    assert bodies(again) == [f"b{i}".encode() * 10 for i in range(3, 10)]
    again.append(b"new", 1, 99.0)
    again.close()
    assert bodies(Spool(tmp_path, max_bytes=1 << 20, segment_bytes=64)) == [b"new"]


def test_torn_record_at_the_end_is_cut_off(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append(b"first", 1, 1.0)
    spool.append(b"second", 1, 2.0)
    spool.close()
    segment = next(tmp_path.glob("*.spool"))
    data = segment.read_bytes()
    segment.write_bytes(data[:-3])  # a crash in the middle of the second append
    again = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    assert again.batches == 1
    again.append(b"third", 1, 3.0)
    assert bodies(again) == [b"first", b"third"]


def test_segment_numbers_keep_growing_after_the_spool_empties(tmp_path):
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    spool.append(b"a", 1, 1.0)
    spool.pop()
    spool.append(b"b", 1, 2.0)
    spool.close()
    # The cursor says segment 1 was read: the new batch must not be mistaken for it.
    assert bodies(Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)) == [b"b"]


def test_one_spool_directory_serves_one_process(tmp_path):
    import pytest

    from detector.spool import SpoolError

    first = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    with pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    first.close()
    Spool(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20).close()
