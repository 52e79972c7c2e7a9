#!/bin/sh
# From a fresh clone to the running demo in one command:
#   sh scripts/demo.sh [--duration SECONDS] [other `iotwatch demo` options]
# Makes .venv (once), installs the project into it, and runs `iotwatch demo`. Uses
# Mosquitto and InfluxDB when installed (Debian: apt-get install mosquitto influxdb),
# an embedded broker and a local file otherwise.
set -eu
cd "$(dirname "$0")/.."

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "demo.sh: needs python3 >= 3.11 (found: $(python3 --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv || {
        echo "demo.sh: python3 -m venv failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
        exit 1
    }
fi
# pip's and setuptools' notices (the "Editable installation" box among them) go to a log,
# shown only when the install fails: the first screen belongs to the demo.
log=.venv/install.log
echo "demo.sh: installing iotwatch into .venv (log: $log)"
if ! { .venv/bin/python -m pip install --quiet --upgrade pip &&
       .venv/bin/python -m pip install --quiet -e .; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "demo.sh: installing iotwatch failed (above, and in $log)" >&2
    exit 1
fi
exec .venv/bin/iotwatch demo "$@"
