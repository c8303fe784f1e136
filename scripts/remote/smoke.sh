#!/usr/bin/env bash
# Smoke test of the servers that scripts/remote-up.sh started: WebDAV on nginx with curl (PUT, GET
# byte-identical, Range, PROPFIND Depth 1, DELETE) and S3 on moto with boto3 (put, get, list,
# conditional put, delete). Reads the exports from $SCAN_REMOTE_DIR/env.sh. Writes only under a
# unique prefix and removes it again. Exit 0 when everything holds.
# Usage: scripts/remote/smoke.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
RUN="${SCAN_REMOTE_DIR:-/tmp/scan-remote}"
[[ -f "$RUN/env.sh" ]] || { echo "smoke: $RUN/env.sh missing: run scripts/remote-up.sh first" >&2; exit 1; }
# shellcheck disable=SC1091
. "$RUN/env.sh"
fail() { echo "smoke: FAIL: $*" >&2; exit 1; }
ok() { echo "smoke: ok: $*" >&2; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
prefix="smoke-$$-$RANDOM"
U="$SCAN_TEST_HTTP_URL/$prefix"
head -c 300000 /dev/urandom >"$tmp/blob"

code() { curl -sS -o "${OUTFILE:-/dev/null}" -w '%{http_code}' --max-time 20 "$@"; }
c="$(code -T "$tmp/blob" "$U/a/b/blob.bin")"; [[ "$c" == 201 ]] || fail "PUT (new, nested) answered $c"
c="$(code -T "$tmp/blob" "$U/a/b/blob.bin")"; [[ "$c" == 204 ]] || fail "PUT (overwrite) answered $c"
c="$(OUTFILE="$tmp/back" code "$U/a/b/blob.bin")"; [[ "$c" == 200 ]] || fail "GET answered $c"
cmp -s "$tmp/blob" "$tmp/back" || fail "GET returned different bytes"
ok "WebDAV PUT + GET byte-identical"
c="$(OUTFILE="$tmp/range" code -H 'Range: bytes=10-19' "$U/a/b/blob.bin")"; [[ "$c" == 206 ]] || fail "Range GET answered $c"
cmp -s <(tail -c +11 "$tmp/blob" | head -c 10) "$tmp/range" || fail "Range GET returned wrong bytes"
ok "WebDAV range GET"
c="$(OUTFILE="$tmp/pf" code -X PROPFIND -H 'Depth: 1' "$U/a/b")"; [[ "$c" == 207 ]] || fail "PROPFIND answered $c"
grep -q "<D:href>/remote/$prefix/a/b/blob.bin</D:href>" "$tmp/pf" || fail "PROPFIND does not list the file: $(cat "$tmp/pf")"
grep -q '<D:getcontentlength>300000</D:getcontentlength>' "$tmp/pf" || fail "PROPFIND lacks the size"
c="$(OUTFILE="$tmp/pf0" code -X PROPFIND -H 'Depth: 1' "$SCAN_TEST_HTTP_URL")"; [[ "$c" == 207 ]] || fail "PROPFIND on the base URL answered $c"
grep -q "<D:href>/remote/$prefix/</D:href>" "$tmp/pf0" || fail "PROPFIND on the base URL does not list $prefix/"
if [[ -n "${SCAN_TEST_HTTP_ROOT_URL:-}" ]]; then
  c="$(OUTFILE="$tmp/pfr" code -X PROPFIND -H 'Depth: 1' "$SCAN_TEST_HTTP_ROOT_URL")"; [[ "$c" == 207 ]] || fail "PROPFIND on the root URL answered $c"
  grep -q "<D:href>/remote/</D:href>" "$tmp/pfr" || fail "PROPFIND on the root URL does not list remote/"
fi
ok "WebDAV PROPFIND Depth 1 (dir, base URL, root URL)"
c="$(code -X PROPFIND -H 'Depth: 1' "$U/missing")"; [[ "$c" == 404 ]] || fail "PROPFIND on a missing path answered $c"
c="$(code -X PROPFIND -H 'Depth: infinity' "$U")"
ok "WebDAV PROPFIND Depth infinity answered $c (nginx dav-ext: 403, unsupported)"
c="$(code -H 'If-None-Match: *' -T "$tmp/blob" "$U/a/b/blob.bin")"
if [[ "${SCAN_TEST_HTTP_CONDITIONAL_PUT:-0}" == 1 ]]; then
  [[ "$c" == 412 ]] || fail "PUT If-None-Match: * on an existing path answered $c, expected 412"
fi
ok "WebDAV PUT If-None-Match: * on an existing path answered $c"
c="$(code -X DELETE "$U/a/b/blob.bin")"; [[ "$c" == 204 ]] || fail "DELETE answered $c"
c="$(code "$U/a/b/blob.bin")"; [[ "$c" == 404 ]] || fail "GET after DELETE answered $c"
c="$(code -X DELETE "$U/")"; [[ "$c" == 204 ]] || fail "DELETE of the prefix dir answered $c"
ok "WebDAV DELETE"

if [[ -n "${SCAN_TEST_WEBDAV_URL:-}" ]]; then
  c="$(OUTFILE="$tmp/rpf" code -X PROPFIND -H 'Depth: infinity' "$SCAN_TEST_WEBDAV_URL/")"
  [[ "$c" == 207 ]] || fail "rclone PROPFIND Depth infinity answered $c"
  ok "rclone WebDAV PROPFIND Depth infinity"
fi

if [[ -n "${SCAN_MOTO_VENV:-}" ]]; then PY="$SCAN_MOTO_VENV/bin/python"
elif [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"
else PY="$RUN/venv/bin/python"; fi
"$PY" - "$prefix" <<'PY'
import os, sys, boto3, botocore.exceptions as bx
prefix = sys.argv[1]
bucket = os.environ["SCAN_TEST_S3_BUCKET"]
s3 = boto3.client("s3", endpoint_url=os.environ["SCAN_TEST_S3_ENDPOINT"], region_name=os.environ["AWS_REGION"])
body = os.urandom(200_000)
keys = [f"{prefix}/x/{i}.bin" for i in range(3)]
for k in keys:
    s3.put_object(Bucket=bucket, Key=k, Body=body)
assert s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read() == body, "S3 GET differs"
listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")["Contents"])
assert listed == sorted(keys), listed
d = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/", Delimiter="/")
assert [p["Prefix"] for p in d.get("CommonPrefixes", [])] == [prefix + "/x/"], d
try:
    s3.put_object(Bucket=bucket, Key=keys[0], Body=b"other", IfNoneMatch="*")
    raise AssertionError("S3 PUT If-None-Match: * overwrote an existing object")
except bx.ClientError as e:
    assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 412, e.response
for k in keys:
    s3.delete_object(Bucket=bucket, Key=k)
assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
print("smoke: ok: S3 put/get/list/list-delimiter/If-None-Match 412/delete", file=sys.stderr)
PY
echo "smoke: all passed" >&2
