#!/bin/sh
# Runs once, when the influxdb:2 container initialises its data volume
# (/docker-entrypoint-initdb.d). Maps the InfluxQL database "iotwatch" (retention policy
# "autogen") onto the bucket, so Grafana's InfluxQL dashboard and InfluxDB 1.x clients
# work unchanged against InfluxDB 2.x.
set -eu

database=${IOTWATCH_INFLUXQL_DATABASE:-iotwatch}

influx v1 dbrp create \
    --org "$DOCKER_INFLUXDB_INIT_ORG" \
    --bucket-id "$DOCKER_INFLUXDB_INIT_BUCKET_ID" \
    --db "$database" \
    --rp autogen \
    --default
echo "init-dbrp.sh: InfluxQL database $database -> bucket $DOCKER_INFLUXDB_INIT_BUCKET"
