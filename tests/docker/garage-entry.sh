#!/bin/sh
# A single-node Garage on :9000 (region us-east-1, as docker/coordinator.toml
# says) with the key from the environment, the default bucket, and the
# buckets in GARAGE_BUCKETS, all owned by that key. Its state lives in /data.
set -eu
mkdir -p /data/meta /data/data
cat >/etc/garage.toml <<CONF
metadata_dir = "/data/meta"
data_dir = "/data/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:3901"
rpc_public_addr = "127.0.0.1:3901"
rpc_secret = "$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"

[s3_api]
s3_region = "us-east-1"
api_bind_addr = "0.0.0.0:9000"
root_domain = ".s3.garage.localhost"
CONF
garage -c /etc/garage.toml server --single-node --default-bucket &
server=$!
trap 'kill -TERM $server' TERM INT
until garage -c /etc/garage.toml bucket info "$GARAGE_DEFAULT_BUCKET" >/dev/null 2>&1; do
  kill -0 $server
  sleep 0.5
done
for bucket in ${GARAGE_BUCKETS:-}; do
  garage -c /etc/garage.toml bucket create "$bucket" >/dev/null 2>&1 || true
  garage -c /etc/garage.toml bucket allow --read --write --owner "$bucket" --key "$GARAGE_DEFAULT_ACCESS_KEY" >/dev/null
done
echo "garage: ready"
wait $server
