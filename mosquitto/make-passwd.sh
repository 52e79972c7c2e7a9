#!/bin/sh
# Create the Mosquitto password file for the iotwatch roles from environment variables.
#
# Usage: mosquitto/make-passwd.sh [OUTPUT]      (default: mosquitto/passwd)
#   MQTT_PUBLISHER_PASSWORD, MQTT_DETECTOR_PASSWORD, MQTT_ALERTING_PASSWORD,
#   MQTT_MONITOR_PASSWORD   required, one per service role
#   MQTT_SENSORS            optional, "device1:password1 device2:password2"
#                           (username = device id; passwords without spaces)
#
# Idempotent: the file is rebuilt from the environment each run and replaced
# atomically, so it holds exactly the users named. Mode 0600 because Mosquitto 2.0
# warns about (and later versions refuse) password files others can read; run as
# root it is handed to the "mosquitto" user, which the broker drops privileges to
# before reading it.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
output=${1:-"$here/passwd"}

if ! command -v mosquitto_passwd >/dev/null 2>&1; then
    echo "make-passwd.sh: mosquitto_passwd not found; install it with: apt-get install mosquitto" >&2
    exit 1
fi

missing=""
for role in PUBLISHER DETECTOR ALERTING MONITOR; do
    eval "value=\${MQTT_${role}_PASSWORD:-}"
    if [ -z "$value" ]; then
        missing="$missing MQTT_${role}_PASSWORD"
    fi
done
if [ -n "$missing" ]; then
    echo "make-passwd.sh: missing environment variable(s):$missing" >&2
    echo "  set one password per role, e.g. MQTT_DETECTOR_PASSWORD=\$(openssl rand -hex 16)" >&2
    exit 1
fi

tmp=$(mktemp "$output.XXXXXX")
trap 'rm -f "$tmp"' EXIT
: > "$tmp"
chmod 600 "$tmp"

mosquitto_passwd -b "$tmp" publisher "$MQTT_PUBLISHER_PASSWORD"
mosquitto_passwd -b "$tmp" detector "$MQTT_DETECTOR_PASSWORD"
mosquitto_passwd -b "$tmp" alerting "$MQTT_ALERTING_PASSWORD"
mosquitto_passwd -b "$tmp" monitor "$MQTT_MONITOR_PASSWORD"

for entry in ${MQTT_SENSORS:-}; do
    device=${entry%%:*}
    password=${entry#*:}
    if [ "$device" = "$entry" ] || [ -z "$device" ] || [ -z "$password" ]; then
        echo "make-passwd.sh: MQTT_SENSORS entry '$device...' must be DEVICE:PASSWORD" >&2
        exit 1
    fi
    if ! printf '%s' "$device" | grep -Eq '^[A-Za-z0-9_.-]{1,64}$'; then
        echo "make-passwd.sh: device id '$device' must match [A-Za-z0-9_.-]{1,64} (it is a topic level)" >&2
        exit 1
    fi
    case "$device" in
        publisher|detector|alerting|monitor)
            echo "make-passwd.sh: device id '$device' is a service role name; pick another" >&2
            exit 1 ;;
    esac
    mosquitto_passwd -b "$tmp" "$device" "$password"
done

if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chown mosquitto "$tmp"
fi
mv -f "$tmp" "$output"
trap - EXIT
echo "make-passwd.sh: wrote $output"
