#!/bin/sh
# One pod of the indexed Job in trainer.yaml: the pod of rank 0 also runs the coordinator, with
# this script's arguments as its training options; every pod runs one worker, which reads the
# torchrun environment the Job gives it (RANK from the completion index, WORLD_SIZE, LOCAL_RANK,
# MASTER_ADDR = rank 0's DNS name under the headless Service, MASTER_PORT, TRAINER_TOKEN).
#
# The pod ends when its worker ends; on rank 0 it waits for the coordinator too (which writes the
# run's summary) and fails if either failed. A coordinator that fails before its workers join
# (a bad option) stops rank 0's worker at once instead of leaving it waiting. SIGTERM (the pod
# being deleted) is passed on to both.
set -eu
: "${RANK:?RANK is not set (the Job sets it from the completion index)}"
: "${WORLD_SIZE:?WORLD_SIZE is not set}"
: "${MASTER_PORT:?MASTER_PORT is not set}"
trainer="$(dirname "$(readlink -f "$0")")/../entrypoint.sh"

coordinator=
worker=
stop() {
  # shellcheck disable=SC2086 # (word splitting wanted: one or two process ids)
  kill -TERM $coordinator $worker 2>/dev/null || true
}
trap stop TERM INT

if [ "$RANK" = 0 ]; then
  "$trainer" coordinator --nodes "$WORLD_SIZE" --port "$MASTER_PORT" "$@" &
  coordinator=$!
fi
"$trainer" worker &
worker=$!

# Watch both (polling: a trap would interrupt a `wait`).
coordinator_status=
while kill -0 "$worker" 2>/dev/null; do
  if [ -n "$coordinator" ] && [ -z "$coordinator_status" ] && ! kill -0 "$coordinator" 2>/dev/null; then
    coordinator_status=0
    wait "$coordinator" || coordinator_status=$?
    # A failed coordinator leaves rank 0's worker nothing to join; a finished one lets it finish.
    [ "$coordinator_status" = 0 ] || kill -TERM "$worker" 2>/dev/null || true
  fi
  sleep 1
done
status=0
wait "$worker" || status=$?
if [ -n "$coordinator" ]; then
  if [ -z "$coordinator_status" ]; then
    coordinator_status=0
    wait "$coordinator" || coordinator_status=$?
  fi
  # The coordinator's status is the run's outcome (the worker's may only say it was stopped).
  status=$coordinator_status
fi
exit "$status"
