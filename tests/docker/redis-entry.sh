#!/bin/sh
# As the official image's entry point does: without a config file Redis 7
# refuses clients from other containers (protected mode), so turn it off.
if [ "${1:-}" = redis-server ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
