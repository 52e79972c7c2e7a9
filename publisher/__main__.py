"""``python -m publisher``: the same as ``iotwatch publish``."""

from iotwatch.cli import run_service

if __name__ == "__main__":
    run_service("publish")
