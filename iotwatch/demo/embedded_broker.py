"""An embedded MQTT broker (amqtt) for the demo when Mosquitto is not installed.

Run as its own process (``python -m iotwatch.demo.embedded_broker --port 1883``) so it
does not share a core with the services: about 5k QoS 1 msg/s that way, plenty for the
demo (MEASURED.md). It requires a username: amqtt treats anonymous sessions as clean and
would lose the services' persistent sessions. Passwords are not checked and there are no
ACLs: this broker listens on loopback only and is for the demo, never for production.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from typing import Any


def broker_config(host: str, port: int) -> dict[str, Any]:
    """amqtt configuration: one TCP listener, clients must present a username.

    >>> broker_config("127.0.0.1", 1883)["listeners"]["default"]["bind"]
    '127.0.0.1:1883'
    """
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False},
        },
    }


async def serve(host: str, port: int) -> None:
    """Run the broker until SIGTERM or SIGINT."""
    from amqtt.broker import Broker

    broker = Broker(broker_config(host, port))
    await broker.start()
    print(f"embedded MQTT broker listening on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    with contextlib.suppress(Exception):   # shutting down anyway: never hang on a bad session
        await asyncio.wait_for(broker.shutdown(), timeout=5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1883)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
