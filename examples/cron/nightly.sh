#!/usr/bin/env bash
# The nightly job: compact every complete day still in temp/, then clean and segment what that
# changed (late data for earlier days included).
#
# Run it from cron shortly after midnight UTC (crontab, with CRON_TZ=UTC or a UTC machine):
#
#   15 0 * * *  BIBEV_ROOT=s3://fleet-data/bibev /opt/bibev/nightly.sh --workers 8 >>/var/log/bibev-nightly.log 2>&1
#
# Settings come from the usual places (BIBEV_* variables, ./bibev.toml or BIBEV_CONFIG). BIBEV is
# the command to run (default: bibev on the PATH; from a checkout, for example
# BIBEV="uv run --project /opt/bibev bibev"). Extra arguments go to both commands, so give only
# options both take (--workers, --dask, --lock-wait).
#
# Every step is idempotent and crash-safe: a failed or missed night is repaired by the next run
# (what compact changed stays noted under changes/ until `transform all --changed` has done it).
# When compact fails some partitions (exit 5), the rest is still cleaned and segmented. The exit
# code is bibev's: 0 ok, 1 unexpected error, 2 configuration, 4 storage or database, 5 some
# (VIN, day) partitions failed (listed on stderr; the others are done).
set -euo pipefail

read -r -a bibev <<<"${BIBEV:-bibev}"
partial=0

log() {
    printf '%s nightly: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

# step WHAT THEN ARGS…: run bibev ARGS; on exit 5 say THEN and go on, on any other failure stop.
step() {
    local what=$1 then=$2 status=0
    shift 2
    log "$what"
    # --no-progress: no bars in a log file; the summary tables go to stdout.
    "${bibev[@]}" --no-progress "$@" || status=$?
    if [[ $status -eq 5 ]]; then
        log "some partitions failed (exit code 5)${then:+; $then}"
        partial=5
    elif [[ $status -ne 0 ]]; then
        log "failed with exit code $status"
        exit "$status"
    fi
}

log "starting (root: ${BIBEV_ROOT:-from settings})"
step "compacting" "cleaning and segmenting the rest" compact "$@"
step "cleaning and segmenting what changed" "" transform all --changed "$@"
log "done"
exit "$partial"
