#!/bin/sh
# Entry point of the trainer images (installed as /usr/local/bin/trainer): `trainer "$@"`.
#
# A worker whose coordinator comes from MASTER_ADDR/MASTER_PORT (or --coordinator) first waits
# until that address accepts connections: containers and pods start in any order (and all at once
# after `docker compose restart`), while a coordinator listens only once its job is prepared. It
# gives up after TRAINER_WAIT_TIMEOUT seconds (default 600) with an error naming the address.
set -eu
root=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
if [ "${1:-}" = worker ]; then
  shift
  node "$root/docker/wait-for-coordinator.mjs" "$@"
  set -- worker "$@"
fi
exec node "$root/packages/cli/bin/trainer.js" "$@"
