"""The docker-compose stack and the Dockerfile, checked without a Docker engine.

`docker compose config` validates the file where Compose v2 is installed (the last test);
everywhere the structural checks below run: every service is health-checked and waits
for what it needs, every secret comes from the environment and is documented in
.env.example, nothing secret is written in the compose file, every mounted project file
exists.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = PROJECT / "docker-compose.yml"
ENV_EXAMPLE = PROJECT / ".env.example"
ONE_SHOT = {"mosquitto-init"}
IOTWATCH_SERVICES = {"publisher", "detector", "alerting"}
SECRET_WORDS = re.compile(r"PASSWORD|TOKEN|SECRET", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_stack_has_every_component(compose):
    assert {"mosquitto-init", "mosquitto", "influxdb", "grafana", "mailpit", "webhook",
            "publisher", "detector", "alerting"} <= set(compose["services"])


def test_every_long_running_service_is_health_checked(compose):
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no", name
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


def test_dependencies_wait_for_health_or_completion(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            expected = ("service_completed_successfully" if dependency in ONE_SHOT
                        else "service_healthy")
            assert rule["condition"] == expected, f"{name} -> {dependency}"
    assert "mosquitto" in services["detector"]["depends_on"]
    assert "influxdb" in services["detector"]["depends_on"]
    assert "mosquitto-init" in services["mosquitto"]["depends_on"]


def test_iotwatch_services_share_one_image_built_from_the_dockerfile(compose):
    for name in IOTWATCH_SERVICES:
        service = compose["services"][name]
        assert service["build"] == "." and service["image"] == "iotwatch:local", name
        assert service["command"][0] in ("publish", "detect", "alert"), name
        config = service["command"][service["command"].index("--config") + 1]
        assert config.startswith("/etc/iotwatch/"), name


def test_secrets_come_from_the_environment_and_are_documented(compose, env_example):
    declared = compose["secrets"]
    for name, secret in declared.items():
        assert set(secret) == {"environment"}, f"secret {name} must come from the environment"
        assert secret["environment"] in env_example, f"{secret['environment']} not in .env.example"
    for name, service in compose["services"].items():
        for secret in service.get("secrets", []):
            assert secret in declared, f"{name} uses undeclared secret {secret}"


def test_no_secret_is_written_in_the_compose_file(compose, env_example):
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for key, value in env_example.items():
        if SECRET_WORDS.search(key):
            assert value not in text, f"the value of {key} appears in docker-compose.yml"
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_WORDS.search(key):
                assert key.endswith("_FILE") or key.endswith("__FILE"), f"{name}: {key}"
                assert str(value).startswith("/run/secrets/"), f"{name}: {key}={value}"


def test_interpolated_variables_have_defaults_or_are_documented(env_example):
    text = COMPOSE_FILE.read_text(encoding="utf-8").replace("$$", "")
    for name, default in re.findall(r"\$\{([A-Z0-9_]+)(:-[^}]*)?\}", text):
        assert default or name in env_example, f"${{{name}}} has no default and is not in .env.example"


def test_named_volumes_are_declared_and_project_files_exist(compose):
    volumes = set(compose["volumes"])
    for name, service in compose["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (PROJECT / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"


def test_persistent_state_is_on_volumes(compose):
    mounts = {name: [m.split(":")[1] for m in s.get("volumes", [])]
              for name, s in compose["services"].items()}
    assert "/mosquitto/data" in mounts["mosquitto"]
    assert "/var/lib/influxdb2" in mounts["influxdb"]
    assert "/var/lib/iotwatch" in mounts["detector"]
    assert "/var/lib/iotwatch" in mounts["alerting"]


def test_mosquitto_runs_the_project_config_with_generated_passwords(compose):
    init = compose["services"]["mosquitto-init"]
    script = "\n".join(init["command"])
    assert "./mosquitto:/project:ro" in init["volumes"]
    assert "make-passwd.sh" in script and "make-dev-certs.sh" in script
    for role in ("PUBLISHER", "DETECTOR", "ALERTING", "MONITOR"):
        assert f"MQTT_{role}_PASSWORD=$$(cat /run/secrets/mqtt_{role.lower()}_password)" in script


def test_influxdb_maps_an_influxql_database_onto_the_bucket(compose):
    influx = compose["services"]["influxdb"]
    env = influx["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    assert {"DOCKER_INFLUXDB_INIT_ORG", "DOCKER_INFLUXDB_INIT_BUCKET",
            "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN_FILE"} <= set(env)
    init_mounts = [m for m in influx["volumes"] if "/docker-entrypoint-initdb.d/" in m]
    script = (PROJECT / init_mounts[0].split(":")[0]).read_text(encoding="utf-8")
    assert "influx v1 dbrp create" in script and "--bucket-id" in script
    datasource = (PROJECT / "grafana/provisioning/datasources/influxdb.yaml").read_text()
    assert env["IOTWATCH_INFLUXQL_DATABASE"] == compose["services"]["grafana"]["environment"][
        "IOTWATCH_INFLUXDB_DATABASE"]
    assert "${IOTWATCH_INFLUXDB_DATABASE}" in datasource


def test_dockerfile_runs_iotwatch_as_non_root_with_a_health_check():
    text = (PROJECT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.MULTILINE)
    users = re.findall(r"^USER (\S+)", text, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*", text, re.MULTILINE)
    assert "/health" in text
    assert re.search(r'^ENTRYPOINT \["iotwatch"\]', text, re.MULTILINE)


def test_service_configs_in_the_image_exist():
    for name in ("publisher", "detector", "alerting"):
        if not (PROJECT / "config" / f"{name}.yaml").exists():
            pytest.fail(f"config/{name}.yaml is missing: the image copies config/ to /etc/iotwatch")



@pytest.mark.parametrize("service", sorted(IOTWATCH_SERVICES))
def test_service_config_with_the_compose_environment_is_valid(compose, env_example, service,
                                                             tmp_path):
    """config/<service>.yaml plus the compose overrides: every overridden key exists."""
    from iotwatch.config import load_config

    spec = compose["services"][service]
    environ = {}
    for key, value in {**spec.get("environment", {})}.items():
        value = interpolate(str(value), env_example)
        if value.startswith("/run/secrets/"):
            secret = tmp_path / value.rsplit("/", 1)[1]
            secret.write_text("not-a-real-secret")
            value = str(secret)
        environ[key] = value
    config_path = spec["command"][spec["command"].index("--config") + 1]
    load_config(PROJECT / "config" / Path(config_path).name, environ=environ)


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${NAME} and ${NAME:-default}, with the values of .env.example.

    >>> interpolate("${A:-1}/${B}", {"B": "2"})
    '1/2'
    """
    def value(match: re.Match[str]) -> str:
        return env.get(match[1], match[2] or "")
    return re.sub(r"\$\{([A-Z0-9_]+)(?::-([^}]*))?\}", value, text)


def test_docker_compose_config_is_valid():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"],
                                        capture_output=True).returncode != 0:
        pytest.skip("Docker Compose v2 is not installed; the structural tests above stand in")
    result = subprocess.run([docker, "compose", "--env-file", str(ENV_EXAMPLE), "-f",
                             str(COMPOSE_FILE), "config", "--quiet"],
                            capture_output=True, text=True, cwd=PROJECT)
    assert result.returncode == 0, result.stderr
