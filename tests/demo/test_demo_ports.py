"""The demo starts a service again when the free port it chose was taken before the
service bound it (seen in CI: the detector exited with 'Address already in use')."""

from __future__ import annotations

import socket
import threading

from iotwatch.demo import app as demo_app
from iotwatch.demo import configs
from iotwatch.demo.brokers import ROLES, DemoBroker
from iotwatch.demo.processes import ProcessGroup
from iotwatch.ports import free_port


def test_a_service_whose_port_was_taken_starts_again_on_another(mosquitto, tmp_path,
                                                                 monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offered = iter([taken])
        monkeypatch.setattr(demo_app, "free_port", lambda: next(offered, None) or free_port())
        broker = DemoBroker("harness Mosquitto", mosquitto.host, mosquitto.port,
                            {role: mosquitto.password(role) for role in ROLES})
        with ProcessGroup(tmp_path) as group:
            url = demo_app._start_service(
                group, tmp_path, broker, "detector", "detect", threading.Event(),
                lambda port: configs.detector_config(tmp_path, http_port=port, sink="file"))
            starts = [child.name for child in group.children]
    assert not url.endswith(f":{taken}")
    assert starts == ["detector", "detector"]
    assert "Address already in use" in (tmp_path / "detector.log").read_text()
