#!/usr/bin/env bash
# Start the real test servers for the remote-store tests, on 127.0.0.1 only:
#   - nginx (Debian's package) with WebDAV (PUT/DELETE/MKCOL/COPY/MOVE + PROPFIND/OPTIONS from
#     libnginx-mod-http-dav-ext), its own config and prefix under the runtime dir;
#   - moto's standalone S3 server (PyPI), with the test bucket created;
#   - optionally (SCAN_REMOTE_RCLONE=1) `rclone serve webdav` (Debian's package), a second WebDAV
#     server that, unlike nginx, answers PROPFIND with `Depth: infinity`.
# Idempotent: servers that already run and answer are kept; stale pid files, dead servers and
# leftovers of ours on the ports (after a kill -9) are cleaned up and the servers started again.
# Installs what is missing (apt-get, pip) on first use.
#
# Usage:  eval "$(scripts/remote-up.sh)"      # or: scripts/remote-up.sh && . "$SCAN_REMOTE_DIR/env.sh"
# stdout: only `export NAME=value` lines (also written to $SCAN_REMOTE_DIR/env.sh); progress -> stderr.
# Stop:   scripts/remote-down.sh
#
# Environment (all optional):
#   SCAN_REMOTE_DIR     runtime dir (config, pid files, logs, data)     default /tmp/scan-remote
#   SCAN_NGINX_PORT     nginx WebDAV port                                default 18080
#   SCAN_S3_PORT        moto S3 port                                     default 19000
#   SCAN_S3_BUCKET      bucket created in moto                           default scan-test
#   SCAN_NGINX_COND_PUT 1: nginx answers 412 to PUT with `If-None-Match: *` on an existing path
#                       (emulated; stock nginx ignores the header and overwrites)  default 0
#   SCAN_REMOTE_RCLONE  1: also start rclone's WebDAV server             default 0
#   SCAN_RCLONE_PORT    its port                                         default 18081
#   SCAN_MOTO_VENV      venv for moto  default: <repo>/.venv if it exists, else $SCAN_REMOTE_DIR/venv
set -euo pipefail
shopt -u patsub_replacement 2>/dev/null || true # bash 5.2: keep '&' literal in ${x//p/r}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN="${SCAN_REMOTE_DIR:-/tmp/scan-remote}"
NGINX_PORT="${SCAN_NGINX_PORT:-18080}"
S3_PORT="${SCAN_S3_PORT:-19000}"
BUCKET="${SCAN_S3_BUCKET:-scan-test}"
COND_PUT="${SCAN_NGINX_COND_PUT:-0}"
WITH_RCLONE="${SCAN_REMOTE_RCLONE:-0}"
RCLONE_PORT="${SCAN_RCLONE_PORT:-18081}"
HOST=127.0.0.1

# Pinned Python packages for the S3 server. moto[s3] + flask + flask-cors is what `moto_server`
# needs for S3 (about 12 s, 140 MB into an empty venv); the `moto[server]` extra would add docker,
# cfn-lint, aws-xray-sdk, graphql and more for other AWS services (about 31 s, 320 MB).
MOTO_VERSION="5.2.5"
MOTO_PKGS=("moto[s3]==$MOTO_VERSION" "flask==3.1.3" "flask-cors==6.0.5" "boto3==1.44.8" "botocore==1.44.8")
# Debian bookworm: `nginx` is the binary (nginx-light/-core are now thin wrappers around it) with
# the dav module built in; the PROPFIND/OPTIONS module is a separate package.
APT_PKGS_NGINX=(nginx libnginx-mod-http-dav-ext)
DAV_EXT_SO=/usr/lib/nginx/modules/ngx_http_dav_ext_module.so

log() { echo "remote-up: $*" >&2; }
die() { echo "remote-up: error: $*" >&2; exit 1; }

for p in "$NGINX_PORT" "$S3_PORT" "$RCLONE_PORT"; do
  [[ "$p" =~ ^[0-9]+$ && "$p" -ge 1024 && "$p" -le 65535 ]] || die "port '$p' is not an unprivileged port number"
done
[[ "$NGINX_PORT" != "$S3_PORT" ]] || die "SCAN_NGINX_PORT and SCAN_S3_PORT are both $S3_PORT"
[[ "$BUCKET" =~ ^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$ ]] || die "bucket name '$BUCKET' is not a valid S3 bucket name"
case "$RUN" in /*) ;; *) RUN="$PWD/$RUN" ;; esac
mkdir -p "$RUN"
RUN="$(cd "$RUN" && pwd)"

# One `up` at a time per runtime dir (parallel test binaries may all call it).
exec 9>"$RUN/.lock"
command -v flock >/dev/null && { flock -w 900 9 || die "timed out waiting for another remote-up.sh ($RUN/.lock)"; }

# A proxy in the caller's environment must not see requests to the local servers (curl here;
# reqwest in object_store honours HTTP_PROXY too, hence NO_PROXY in the exports).
case ",${no_proxy:-}," in *",$HOST,"*) ;; *) export no_proxy="$HOST,localhost${no_proxy:+,$no_proxy}" ;; esac
case ",${NO_PROXY:-}," in *",$HOST,"*) ;; *) export NO_PROXY="$HOST,localhost${NO_PROXY:+,$NO_PROXY}" ;; esac

SUDO=() # only needed (and checked) when something must be installed with apt-get
if [[ "$(id -u)" != 0 ]]; then SUDO=(sudo); fi

# ---------------------------------------------------------------- helpers
# pid_matches PID WORD...: the process lives and its command line contains every WORD, or for a
# WORD env:NAME=value, its environment has that entry (guards against pid reuse, and against
# taking another runtime dir's server for ours).
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
pidfile_pid() { if [[ -s "$1" ]]; then tr -dc '0-9' <"$1"; fi; }
port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
# pids listening on 127.0.0.1:PORT or *:PORT (needs ss from iproute2, which nginx depends on)
port_pids() {
  command -v ss >/dev/null || return 0
  ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}
stop_pid() { # stop_pid PID: TERM, wait up to 10 s, then KILL
  local pid="$1"
  kill -TERM "$pid" 2>/dev/null || return 0
  kill -CONT "$pid" 2>/dev/null || true # a stopped (SIGSTOP) process acts on TERM only once resumed
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  log "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}
# free_port PORT NAME WORD...: if PORT is taken, stop the taker when it is a leftover of ours (its
# command line contains every WORD), else fail naming the taker.
free_port() {
  local port="$1" name="$2"; shift 2
  port_busy "$port" || return 0
  local pid others=()
  for pid in $(port_pids "$port"); do
    if pid_matches "$pid" "$@"; then
      log "stopping leftover $name (pid $pid) on port $port"; stop_pid "$pid"
    else
      others+=("$pid:$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)")
    fi
  done
  for _ in $(seq 50); do port_busy "$port" || return 0; sleep 0.1; done
  die "port $port (for $name) is in use by something else${others:+: ${others[*]}}; pick another with the SCAN_*_PORT variables"
}
wait_http() { # wait_http URL SECONDS PID NAME LOG: until URL answers (any HTTP status)
  local url="$1" secs="$2" pid="$3" name="$4" logf="$5" deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    if curl -s -o /dev/null --max-time 2 "$url"; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$logf" >&2 || true; die "$name exited while starting (log: $logf)"; }
    sleep 0.2
  done
  tail -n 20 "$logf" >&2 || true
  die "$name did not answer at $url within ${secs}s (log: $logf)"
}
apt_install() { # apt_install PKG...: without starting any service the packages ship
  local t0=$SECONDS created_policy=0
  if ((${#SUDO[@]})) && ! command -v sudo >/dev/null; then
    die "not root and no sudo: install $* with apt-get as root first"
  fi
  # Debian's postinst would start the *system* nginx on port 80 unless policy-rc.d says no
  # (Docker images ship one that does; a plain system does not): add one for this install only.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\n# temporary, from scan scripts/remote-up.sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  local rc=0
  for _ in 1 2 3; do # apt-get update has no lock timeout of its own: retry while another apt runs
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300 update >&2 && rc=0 && break || rc=$?
    sleep 10
  done
  ((rc == 0)) && "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 \
      install --no-install-recommends "$@" >&2 || rc=$?
  ((created_policy)) && "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d
  ((rc == 0)) || die "apt-get install $* failed (rc $rc)"
  log "installed $* in $((SECONDS - t0))s"
}

EXPORTS=()
add_export() { # plain when safe, else single-quoted, so the lines can be eval'd or sourced
  if [[ "$2" =~ ^[A-Za-z0-9_./:,@%+=-]*$ ]]; then EXPORTS+=("export $1=$2")
  else EXPORTS+=("export $1='${2//\'/\'\\\'\'}'"); fi
}

# ---------------------------------------------------------------- nginx (WebDAV)
NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
if [[ ! -x "$NGINX_BIN" || ! -f "$DAV_EXT_SO" ]]; then
  log "installing ${APT_PKGS_NGINX[*]} from Debian's packages"
  apt_install "${APT_PKGS_NGINX[@]}"
  NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"
fi
[[ -x "$NGINX_BIN" ]] || die "nginx not found after install"
[[ -f "$DAV_EXT_SO" ]] || die "$DAV_EXT_SO missing (package libnginx-mod-http-dav-ext)"

NG="$RUN/nginx"
NGINX_CONF="$NG/nginx.conf"
NGINX_PID="$NG/nginx.pid"
NGINX_LOG="$NG/logs/error.log"
mkdir -p "$NG/logs" "$NG/tmp" "$RUN/www/remote"
tmpl="$(<"$ROOT/scripts/remote/nginx.conf.in")"
cond=""
[[ "$COND_PUT" == 1 ]] && cond="$(<"$ROOT/scripts/remote/nginx-cond-put.conf.in")"
conf="${tmpl//@COND_PUT@/$cond}"
conf="${conf//@RUN@/$RUN}"
conf="${conf//@PORT@/$NGINX_PORT}"
conf="${conf//@DAV_EXT_SO@/$DAV_EXT_SO}"
printf '%s\n' "$conf" >"$NGINX_CONF.new"
nginx_args=(-c "$NGINX_CONF" -p "$NG/" -e "$NGINX_LOG")
pid="$(pidfile_pid "$NGINX_PID")"
if pid_matches "$pid" nginx "$NGINX_CONF " && cmp -s "$NGINX_CONF.new" "$NGINX_CONF" \
    && curl -fs -o /dev/null --max-time 2 "http://$HOST:$NGINX_PORT/.scan-healthz"; then
  rm -f "$NGINX_CONF.new"
  log "nginx already running (pid $pid) on $HOST:$NGINX_PORT"
else
  if pid_matches "$pid" nginx "$NGINX_CONF "; then
    log "restarting nginx (pid $pid): config changed or not answering"
    stop_pid "$pid" # no `-s reload`: it breaks nginx with master_process off
  fi
  mv -f "$NGINX_CONF.new" "$NGINX_CONF"
  rm -f "$NGINX_PID"
  free_port "$NGINX_PORT" nginx nginx "$NGINX_CONF "
  out="$("$NGINX_BIN" -t -q "${nginx_args[@]}" 2>&1)" || die "nginx config test failed: $out"
  "$NGINX_BIN" "${nginx_args[@]}" </dev/null >>"$NG/logs/stdout.log" 2>&1 9>&- \
    || { tail -n 20 "$NGINX_LOG" >&2 || true; die "nginx failed to start (log: $NGINX_LOG)"; }
  for _ in $(seq 50); do [[ -s "$NGINX_PID" ]] && break; sleep 0.1; done
  pid="$(pidfile_pid "$NGINX_PID")"
  [[ -n "$pid" ]] || die "nginx wrote no pid file $NGINX_PID (log: $NGINX_LOG)"
  wait_http "http://$HOST:$NGINX_PORT/.scan-healthz" 15 "$pid" nginx "$NGINX_LOG"
  log "nginx started (pid $pid) on $HOST:$NGINX_PORT, data in $RUN/www/remote"
fi
# The DAV methods the tests rely on must be there (module loaded, location right).
allow="$(curl -fsS --max-time 5 -X OPTIONS -o /dev/null -w '%header{allow}' "http://$HOST:$NGINX_PORT/remote")" \
  || die "nginx OPTIONS /remote failed"
[[ "$allow" == *PROPFIND* && "$allow" == *PUT* ]] || die "nginx /remote does not offer PUT and PROPFIND (Allow: $allow)"
add_export SCAN_TEST_HTTP_URL "http://$HOST:$NGINX_PORT/remote"
# The same WebDAV tree from the server root: object_store's HttpStore lists locations as the
# href's whole URL path, so under a base URL with a path they come back prefixed ("remote/...").
add_export SCAN_TEST_HTTP_ROOT_URL "http://$HOST:$NGINX_PORT"
add_export SCAN_TEST_HTTP_CONDITIONAL_PUT "$([[ "$COND_PUT" == 1 ]] && echo 1 || echo 0)"

# ---------------------------------------------------------------- rclone (optional WebDAV)
if [[ "$WITH_RCLONE" == 1 ]]; then
  [[ "$RCLONE_PORT" != "$NGINX_PORT" && "$RCLONE_PORT" != "$S3_PORT" ]] || die "SCAN_RCLONE_PORT clashes with another port"
  if ! command -v rclone >/dev/null; then
    log "installing rclone from Debian's packages"
    apt_install rclone
  fi
  RC="$RUN/rclone"
  mkdir -p "$RC/data"
  RCLONE_MATCH=(rclone " serve webdav $RC/data " " $HOST:$RCLONE_PORT ")
  pid="$(pidfile_pid "$RC/rclone.pid")"
  if pid_matches "$pid" "${RCLONE_MATCH[@]}" && curl -s -o /dev/null --max-time 2 "http://$HOST:$RCLONE_PORT/"; then
    log "rclone already running (pid $pid) on $HOST:$RCLONE_PORT"
  else
    [[ -n "$pid" ]] && pid_matches "$pid" "${RCLONE_MATCH[@]}" && stop_pid "$pid"
    rm -f "$RC/rclone.pid"
    free_port "$RCLONE_PORT" rclone "${RCLONE_MATCH[@]}"
    # --config /dev/null: no rclone.conf is read or created
    # shellcheck disable=SC2016 # expanded by the inner sh
    setsid sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$RC/rclone.pid" \
      rclone --config /dev/null serve webdav "$RC/data" --addr "$HOST:$RCLONE_PORT" \
      </dev/null >>"$RC/rclone.log" 2>&1 9>&- &
    for _ in $(seq 50); do [[ -s "$RC/rclone.pid" ]] && break; sleep 0.1; done
    pid="$(pidfile_pid "$RC/rclone.pid")"
    wait_http "http://$HOST:$RCLONE_PORT/" 15 "$pid" rclone "$RC/rclone.log"
    log "rclone webdav started (pid $pid) on $HOST:$RCLONE_PORT, data in $RC/data"
  fi
  add_export SCAN_TEST_WEBDAV_URL "http://$HOST:$RCLONE_PORT"
fi

# ---------------------------------------------------------------- moto (S3)
if [[ -n "${SCAN_MOTO_VENV:-}" ]]; then VENV="$SCAN_MOTO_VENV"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then VENV="$ROOT/.venv"
else VENV="$RUN/venv"; fi
moto_ok() {
  "$VENV/bin/python" - "$MOTO_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as md
import flask, flask_cors, boto3, moto.server  # noqa: F401
sys.exit(0 if md.version("moto") == sys.argv[1] else 1)
PY
}
if [[ ! -x "$VENV/bin/moto_server" ]] || ! moto_ok; then
  t0=$SECONDS
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian's python: apt-get install python3-venv)"
  fi
  log "installing ${MOTO_PKGS[*]} into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${MOTO_PKGS[@]}" >&2 \
    || die "pip install of the S3 server failed"
  moto_ok || die "moto $MOTO_VERSION not importable from $VENV after install"
  log "installed moto $MOTO_VERSION in $((SECONDS - t0))s"
fi

MO="$RUN/moto"
MOTO_PID="$MO/moto.pid"
MOTO_LOG="$MO/moto.log"
mkdir -p "$MO"
# moto's command line names no path of ours: it is told apart by an environment entry.
MOTO_MATCH=(moto_server " -H $HOST -p $S3_PORT " "env:SCAN_REMOTE_OWNER=$RUN")
pid="$(pidfile_pid "$MOTO_PID")"
if pid_matches "$pid" "${MOTO_MATCH[@]}" && curl -s -o /dev/null --max-time 2 "http://$HOST:$S3_PORT/"; then
  log "moto already running (pid $pid) on $HOST:$S3_PORT"
else
  [[ -n "$pid" ]] && pid_matches "$pid" "${MOTO_MATCH[@]}" && stop_pid "$pid"
  rm -f "$MOTO_PID"
  free_port "$S3_PORT" moto "${MOTO_MATCH[@]}"
  # setsid: its own session, so it outlives the caller's process group like nginx's daemon does;
  # sh writes its own pid and execs, so the pid file holds moto's pid.
  # shellcheck disable=SC2016 # expanded by the inner sh
  SCAN_REMOTE_OWNER="$RUN" setsid sh -c 'echo $$ >"$1"; shift; exec "$@"' sh "$MOTO_PID" \
    "$VENV/bin/moto_server" -H "$HOST" -p "$S3_PORT" </dev/null >>"$MOTO_LOG" 2>&1 9>&- &
  for _ in $(seq 50); do [[ -s "$MOTO_PID" ]] && break; sleep 0.1; done
  pid="$(pidfile_pid "$MOTO_PID")"
  [[ -n "$pid" ]] || die "moto wrote no pid file (log: $MOTO_LOG)"
  wait_http "http://$HOST:$S3_PORT/" 60 "$pid" moto "$MOTO_LOG"
  log "moto started (pid $pid) on $HOST:$S3_PORT (state is in memory: lost on restart)"
fi

# Bucket (idempotent) and a probe of conditional PUT, which object_store's put-if-absent
# (PutMode::Create -> `If-None-Match: *`) and PutMode::Update (`If-Match`) rely on.
s3_cond="$(env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL AWS_ACCESS_KEY_ID=testing \
  AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 "$VENV/bin/python" - "http://$HOST:$S3_PORT" "$BUCKET" <<'PY'
import sys, uuid, boto3, botocore.exceptions as bx
from botocore.config import Config
endpoint, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  config=Config(retries={"max_attempts": 2}, connect_timeout=5, read_timeout=10))
try:
    s3.create_bucket(Bucket=bucket)
except bx.ClientError as e:
    if e.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
        raise
key = f".remote-up-probe-{uuid.uuid4().hex}"
s3.put_object(Bucket=bucket, Key=key, Body=b"1", IfNoneMatch="*")
try:
    s3.put_object(Bucket=bucket, Key=key, Body=b"2", IfNoneMatch="*")
    ok = False
except bx.ClientError as e:
    ok = e.response["ResponseMetadata"]["HTTPStatusCode"] == 412
s3.delete_object(Bucket=bucket, Key=key)
print(1 if ok else 0)
PY
)" || die "could not create bucket $BUCKET on moto (log: $MOTO_LOG)"
[[ "$s3_cond" == 1 ]] || log "warning: moto did not answer 412 to a second PUT with If-None-Match: *"
log "bucket $BUCKET ready; conditional PUT (If-None-Match: *) supported: $([[ "$s3_cond" == 1 ]] && echo yes || echo no)"

add_export SCAN_TEST_S3_ENDPOINT "http://$HOST:$S3_PORT"
add_export SCAN_TEST_S3_BUCKET "$BUCKET"
add_export SCAN_TEST_S3_CONDITIONAL_PUT "$s3_cond"
# object_store's AmazonS3Builder::from_env reads AWS_* (AWS_ENDPOINT, AWS_BUCKET, AWS_ALLOW_HTTP, ...)
add_export AWS_ACCESS_KEY_ID testing
add_export AWS_SECRET_ACCESS_KEY testing
add_export AWS_REGION us-east-1
add_export AWS_DEFAULT_REGION us-east-1
add_export AWS_ENDPOINT "http://$HOST:$S3_PORT"
add_export AWS_BUCKET "$BUCKET"
add_export AWS_ALLOW_HTTP true
add_export AWS_EC2_METADATA_DISABLED true
add_export NO_PROXY "$NO_PROXY"
add_export no_proxy "$no_proxy"
add_export SCAN_REMOTE_DIR "$RUN"

printf '%s\n' "${EXPORTS[@]}" >"$RUN/env.sh.tmp" && mv -f "$RUN/env.sh.tmp" "$RUN/env.sh"
printf '%s\n' "${EXPORTS[@]}"
