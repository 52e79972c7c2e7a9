"""``python -m alerting --config FILE``: the same as ``iotwatch alert --config FILE``."""

from iotwatch.cli import run_service

if __name__ == "__main__":
    run_service("alert")
