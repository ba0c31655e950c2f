#!/usr/bin/env bash
# Nightly compaction of temp/ into compressed/YYYY/MM/DD/{VIN}.parquet.
#
# Run it from cron shortly after midnight UTC (crontab, with CRON_TZ=UTC or a UTC machine):
#
#   15 0 * * *  BIBEV_ROOT=s3://fleet-data/bibev /opt/bibev/nightly-compact.sh >>/var/log/bibev-compact.log 2>&1
#
# Settings come from the usual places (BIBEV_* variables, ./bibev.toml or BIBEV_CONFIG);
# extra arguments are passed to `bibev compact` (e.g. --workers 8). Compaction is idempotent and
# crash-safe: a failed or missed night is repaired by the next run, which compacts every
# complete day still in temp/. The exit code is bibev's: 0 ok, 2 configuration, 4 storage,
# 5 some (VIN, day) partitions failed (listed on stderr; the others are done). Let cron mail it
# or let your monitoring alert on it.
set -euo pipefail

read -r -a bibev <<<"${BIBEV:-bibev}"  # the command: bibev on the PATH, or e.g. "uv run bibev"

log() {
    printf '%s nightly-compact: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

log "starting (root: ${BIBEV_ROOT:-from settings})"
status=0
# --no-progress: no bars in a log file; the summary table goes to stdout.
"${bibev[@]}" --no-progress compact "$@" || status=$?
if [[ $status -ne 0 ]]; then
    log "failed with exit code $status"
    exit "$status"
fi
log "done"
