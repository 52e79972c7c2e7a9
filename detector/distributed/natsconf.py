"""The project's nats-server configuration (config/nats/nats-server.conf) on other ports.

Used by the test harness and ``iotwatch bench --nats``: only the listeners and the store
directory are rewritten; the subject mapping (the partitions) is what production runs.

>>> conf = 'listen: 127.0.0.1:4222\\nhttp: 127.0.0.1:8222\\n    store_dir: "/var/lib/nats"\\n'
>>> print(render_config(conf, client=1, monitor=2, mqtt=3, store="/t"), end="")
listen: 127.0.0.1:1
http: 127.0.0.1:2
    store_dir: "/t"
"""

from __future__ import annotations

import re
from pathlib import Path

PROJECT_CONF = Path(__file__).resolve().parents[2] / "config" / "nats" / "nats-server.conf"


def render_config(text: str, *, client: int, monitor: int, mqtt: int, store: str) -> str:
    """The project's file with loopback listeners on the given ports and the store dir."""
    text = re.sub(r"(?m)^listen: .*$", f"listen: 127.0.0.1:{client}", text)
    text = re.sub(r"(?m)^http: .*$", f"http: 127.0.0.1:{monitor}", text)
    text = re.sub(r"(?m)^(\s+)listen: 127\.0\.0\.1:1883$", rf"\g<1>listen: 127.0.0.1:{mqtt}",
                  text)
    return re.sub(r'(?m)^(\s+)store_dir: ".*"$', rf'\g<1>store_dir: "{store}"', text)
