#!/usr/bin/env bash
# The nightly job: compact every complete day still in temp/, then clean and segment what that
# changed (late data for earlier days included).
#
# Run it from cron shortly after midnight UTC (crontab, with CRON_TZ=UTC or a UTC machine):
#
#   15 0 * * *  BIBEV_ROOT=s3://fleet-data/bibev /opt/bibev/nightly.sh --workers 8 >>/var/log/bibev-nightly.log 2>&1
#
# Extra arguments go to both commands, so give only options both take (--workers, --dask,
# --lock-wait). Every step is idempotent and crash-safe: a failed or missed night is repaired
# by the next run (compact's notes of what it changed stay until `transform all --changed` has
# done them). When some partitions fail (exit 5) the next step still runs on the rest; any other
# failure stops the job. The exit code is bibev's: 0 ok, 2 configuration, 4 storage or
# database, 5 some (VIN, day) partitions failed (listed on stderr; the others are done).
set -euo pipefail

BIBEV="${BIBEV:-bibev}"
partial=0

log() {
    printf '%s nightly: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

step() {
    log "$1"
    local status=0
    shift
    # --no-progress: no bars in a log file; the summary tables go to stdout.
    "$BIBEV" --no-progress "$@" || status=$?
    if [[ $status -eq 5 ]]; then
        log "some partitions failed (exit code 5); going on with the rest"
        partial=5
    elif [[ $status -ne 0 ]]; then
        log "failed with exit code $status"
        exit "$status"
    fi
}

log "starting (root: ${BIBEV_ROOT:-from settings})"
step "compacting" compact "$@"
step "cleaning and segmenting what changed" transform all --changed "$@"
log "done"
exit "$partial"
