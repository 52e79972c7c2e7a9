"""``python -m detector``: the same as ``iotwatch detect``."""

from iotwatch.cli import run_service

if __name__ == "__main__":
    run_service("detect")
