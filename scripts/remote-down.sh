#!/usr/bin/env bash
# Stop the test servers that scripts/remote-up.sh started (nginx WebDAV, moto S3, and rclone
# WebDAV if it was started), by their pid files under the runtime dir. Idempotent: no pid file or
# a dead pid is fine. A pid is only signalled when its command line is still that server's
# (nothing is killed by name). Deletes the servers' stored data (nginx's and rclone's directories;
# moto keeps its state in memory), so the next `up` starts empty like moto does; keeps the logs
# and any venv under the runtime dir.
#
# Usage: scripts/remote-down.sh [--purge]   --purge: also remove the whole runtime dir
# Environment: SCAN_REMOTE_DIR (default /tmp/scan-remote)
set -euo pipefail
RUN="${SCAN_REMOTE_DIR:-/tmp/scan-remote}"
PURGE=0
case "${1:-}" in
  "") ;;
  --purge) PURGE=1 ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac

log() { echo "remote-down: $*" >&2; }
if [[ ! -d "$RUN" ]]; then
  log "nothing to stop ($RUN does not exist)"
  exit 0
fi
RUN="$(cd "$RUN" && pwd)"

pid_matches() {
  local pid="$1"; shift
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  local cmd; cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  local w env
  for w in "$@"; do
    if [[ "$w" == env:* ]]; then # an exact NAME=value entry of the process's environment
      env="$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null)" || return 1
      grep -qxF -- "${w#env:}" <<<"$env" || return 1
    else
      [[ "$cmd" == *"$w"* ]] || return 1
    fi
  done
}
# stop NAME PIDFILE WORD...: TERM, wait up to 10 s, then KILL; remove the pid file
stop() {
  local name="$1" pidfile="$2"; shift 2
  local pid
  pid="$(if [[ -s "$pidfile" ]]; then tr -dc '0-9' <"$pidfile"; fi)"
  if [[ -z "$pid" ]]; then
    log "$name: not running (no pid file)"
  elif ! pid_matches "$pid" "$@"; then
    log "$name: not running (stale pid file, pid $pid)"
  else
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true # a stopped (SIGSTOP) process acts on TERM only once resumed
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name: pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    if kill -0 "$pid" 2>/dev/null; then
      log "$name: pid $pid still alive"; return 1
    fi
    log "$name: stopped (pid $pid)"
  fi
  rm -f "$pidfile"
}

rc=0
# Nearly the words remote-up.sh checks (no ports needed: each pid comes from its own pid file):
# nginx's config path, rclone's data dir, moto's SCAN_REMOTE_OWNER environment entry.
stop nginx "$RUN/nginx/nginx.pid" nginx "$RUN/nginx/nginx.conf " || rc=1
stop moto "$RUN/moto/moto.pid" moto_server " -H 127.0.0.1 -p " "env:SCAN_REMOTE_OWNER=$RUN" || rc=1
stop rclone "$RUN/rclone/rclone.pid" rclone " serve webdav $RUN/rclone/data " || rc=1
((rc == 0)) || exit 1

rm -rf "$RUN/www" "$RUN/rclone/data" "$RUN/env.sh"
if ((PURGE)); then
  rm -rf "$RUN"
  log "removed $RUN"
fi
