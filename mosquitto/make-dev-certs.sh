#!/bin/sh
# Make DEVELOPMENT TLS certificates for the Mosquitto TLS listener (never for production).
#
# Usage: mosquitto/make-dev-certs.sh DIR
# Writes into DIR: ca.crt/ca.key (a throw-away CA), server.crt/server.key (valid for
# localhost and 127.0.0.1; add names with DEV_CERT_SANS="DNS:mqtt,IP:10.0.0.5"),
# client.crt/client.key (for clients that present a certificate).
#
# Idempotent: existing files are kept while they still verify against the CA;
# whatever is missing or no longer matches is (re)made. EC P-256 keys: fast to make
# and to handshake. Keys are mode 0600; run as root they are handed to the
# "mosquitto" user, which the broker drops privileges to before reading them.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
mkdir -p "$dir"
cd "$dir"

if ! command -v openssl >/dev/null 2>&1; then
    echo "make-dev-certs.sh: openssl not found; install it with: apt-get install openssl" >&2
    exit 1
fi

sans="DNS:localhost,IP:127.0.0.1${DEV_CERT_SANS:+,$DEV_CERT_SANS}"

new_key() {
    (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
}

if [ ! -s ca.key ] || [ ! -s ca.crt ]; then
    echo "make-dev-certs.sh: making development CA in $dir"
    new_key ca.key
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=iotwatch development CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.crt
    rm -f server.crt client.crt
fi

# issue NAME SUBJECT EXTENSIONS: sign NAME.crt with the CA unless a valid one exists.
issue() {
    name=$1
    if [ -s "$name.key" ] && [ -s "$name.crt" ] \
        && openssl verify -CAfile ca.crt "$name.crt" >/dev/null 2>&1 \
        && openssl x509 -in "$name.crt" -checkend 86400 -noout >/dev/null 2>&1; then
        return 0
    fi
    echo "make-dev-certs.sh: making $name certificate in $dir"
    [ -s "$name.key" ] || new_key "$name.key"
    ext=$(mktemp)
    printf '%s\n' "$3" > "$ext"
    openssl req -new -key "$name.key" -subj "$2" -out "$name.csr"
    openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
        -days 825 -extfile "$ext" -out "$name.crt" 2>/dev/null
    rm -f "$name.csr" "$ext"
}

issue server "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$sans"
issue client "/CN=iotwatch-dev-client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

chmod 600 ca.key server.key client.key
chmod 644 ca.crt server.crt client.crt
if [ "$(id -u)" = 0 ] && id mosquitto >/dev/null 2>&1; then
    chown mosquitto server.key server.crt ca.crt
fi
echo "make-dev-certs.sh: certificates ready in $dir"
