"""Do the server's subject mapping and ``nats.partitions`` agree on the partition count?

The count is set twice: in the server's mapping (``{{partition(16,1,2)}}`` in
config/nats/nats-server.conf) and in each instance's ``nats.partitions``. If they differ,
readings of the partitions no instance has a stream for are dropped by the server, and the
others land in a stream whose owner is not the one ``partition_of`` names. Two checks:

- **At start** (``probe``), after the partition streams exist: a request to the reading
  subject of a few probe devices, with a ``Nats-Expected-Stream`` header no stream has.
  The server maps the subject, the stream that captures it refuses the message (nothing
  is stored) and answers with its name; no stream captures it: "no responders". Every
  probe must land in the stream of ``partition_of(site, device, nats.partitions)``;
  otherwise the instance refuses to start (``PartitionMismatch``), naming the server's
  count as far as the answers tell it.
- **At run time** (``state.PartitionedHandler.note_subject``): every fetched message's
  subject partition must equal ``partition_of``; one that does not (the mapping was
  changed and reloaded, or a message published straight to a partition subject) is
  dead-lettered as ``wrong_partition`` and ``/health`` says degraded.
"""

from __future__ import annotations

import json
import logging

import nats.errors
from nats.aio.client import Client

from detector.distributed.partitions import partition_of
from iotwatch.config import ConfigError

log = logging.getLogger(__name__)

PROBE_SITE = "iotwatch-probe"
PROBES = 32
MAX_PARTITIONS = 4096  # NatsSettings.partitions' bound
_NO_SUCH_STREAM = "iotwatch-probe-refused"  # the header no stream matches: nothing stored

WHERE = ("the server's subject mapping {{partition(N,1,2)}} in config/nats/nats-server.conf"
         " and nats.partitions in the detector's configuration")


class PartitionMismatch(ConfigError):
    """The server's mapping and ``nats.partitions`` disagree (one line)."""

    def __init__(self, message: str) -> None:
        super().__init__([message])


async def probe(nc: Client, subject_prefix: str, stream: str, partitions: int,
                probes: int = PROBES, timeout_s: float = 5.0) -> None:
    """Raise ``PartitionMismatch`` unless every probe lands in ``partition_of``'s stream."""
    observed: dict[str, int | None] = {}  # probe device -> partition of the stream, None: none
    for index in range(probes):
        device = f"d{index}"
        try:
            reply = await nc.request(f"{subject_prefix}.readings.{PROBE_SITE}.{device}", b"",
                                     timeout=timeout_s,
                                     headers={"Nats-Expected-Stream": _NO_SUCH_STREAM})
        except nats.errors.NoRespondersError:
            observed[device] = None
            continue
        except (TimeoutError, nats.errors.TimeoutError):
            log.warning("partition mapping not checked: no answer to a probe within %g s",
                        timeout_s)
            return
        answer = json.loads(reply.data)
        if "stream" not in answer:  # a server that does not name the stream: cannot tell
            log.warning("partition mapping not checked: the server's answer to a probe "
                        "names no stream: %s", reply.data[:200])
            return
        captured = str(answer["stream"])
        if not captured.startswith(f"{stream}_") or not captured[len(stream) + 1:].isdigit():
            raise PartitionMismatch(
                f"reading subject {subject_prefix}.readings.{PROBE_SITE}.{device} is stored "
                f"by stream {captured!r}, not one of {stream}_<p>: is another stream "
                f"capturing {subject_prefix}.readings.> or {subject_prefix}.part.>?")
        observed[device] = int(captured[len(stream) + 1:])
    wrong = {d: p for d, p in observed.items() if p != partition_of(PROBE_SITE, d, partitions)}
    if not wrong:
        log.info("partition mapping checked: the server puts devices in the same %d "
                 "partitions as nats.partitions", partitions)
        return
    if all(p is None for p in observed.values()):
        raise PartitionMismatch(
            f"no reading subject reached a partition stream: the server has no "
            f"{subject_prefix}.readings mapping to {subject_prefix}.part.<p> "
            f"(config/nats/nats-server.conf), and nats.partitions is {partitions}")
    server = server_count(observed, partitions)
    said = f"{server} partitions" if server else "a different number of partitions"
    raise PartitionMismatch(
        f"partition count mismatch: the NATS server's subject mapping puts devices into "
        f"{said} ({{{{partition({server or 'N'},1,2)}}}} in config/nats/nats-server.conf) but "
        f"nats.partitions is {partitions} (detector configuration, "
        f"IOTWATCH__NATS__PARTITIONS): set both to the same number")


def server_count(observed: dict[str, int | None], partitions: int) -> int | None:
    """The smallest count the server's mapping can use, given where the probes landed
    (None: no partition of ours captured the probe, so it is >= ``partitions``).

    >>> landed = {f"d{i}": partition_of(PROBE_SITE, f"d{i}", 16) for i in range(32)}
    >>> server_count({d: (p if p < 8 else None) for d, p in landed.items()}, 8)
    16
    """
    for count in range(1, MAX_PARTITIONS + 1):
        if all((partition_of(PROBE_SITE, device, count) >= partitions) if p is None
               else partition_of(PROBE_SITE, device, count) == p
               for device, p in observed.items()):
            return count
    return None


def wrong_partition_detail(topic: str, subject_partition: int, expected: int,
                           partitions: int) -> str:
    """The dead letter's detail for a message found in the wrong partition."""
    return (f"{topic} came through partition {subject_partition} but partition_of gives "
            f"{expected} with nats.partitions {partitions}: the server's subject mapping "
            f"and nats.partitions disagree ({WHERE})")
