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
  # In the background, so that a stop signal while waiting ends the wait too (a shell waiting
  # for a foreground child would die alone and leave it behind).
  node "$root/docker/wait-for-coordinator.mjs" "$@" &
  waiter=$!
  trap 'kill -TERM "$waiter" 2>/dev/null; exit 143' TERM INT
  wait "$waiter" || exit $?
  trap - TERM INT
  set -- worker "$@"
fi
exec node "$root/packages/cli/bin/trainer.js" "$@"
