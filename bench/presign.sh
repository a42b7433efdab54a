#!/usr/bin/env bash
# bench/presign.sh -- the proxy's 307 path: blob GETs on an ECR route answered with a cached presigned URL.
#
# A benchmark, not a test: it prints numbers. ECR's control plane is moto (from the test venv) behind
# bench/ecr-presign-stand-in.py (moto lacks GetDownloadUrlForLayer); ECR's data plane is Debian's docker-registry
# with the htpasswd user AWS and the token moto issues. regbridge serves the route `ecr/` as `team/` upstream.
# After one blob is pushed through the proxy, wrk -t2 -c16 GETs it: every answer is a 307 to the presigned URL,
# minted once and then served from regbridge's cache. For scale, the same wrk run against docker-registry's own
# manifest GET (Basic auth, as clients use it) is printed beside it.
#
# Environment: REGBRIDGE_BIN (default target/release/regbridge), BENCH_WRK_SECONDS (10), BENCH_DIR
# (/tmp/regbridge-bench-presign), REGBRIDGE_TEST_VENV (/tmp/regbridge-test-venv, holding moto_server).
set -euo pipefail
export LC_ALL=C
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SELF=presign.sh
# shellcheck source=bench/lib.sh
. "$HERE/lib.sh"

W=${BENCH_DIR:-/tmp/regbridge-bench-presign}
WRK_SECONDS=${BENCH_WRK_SECONDS:-10}
RB_BIN=${REGBRIDGE_BIN:-target/release/regbridge}
VENV=${REGBRIDGE_TEST_VENV:-/tmp/regbridge-test-venv}
ACCOUNT=123456789012
PRESIGNED="http://127.0.0.1:9/presigned/layer?X-Amz-Signature=bench"
SERVERS=(regbridge reference)
LABEL[regbridge]=regbridge
LABEL[reference]=docker-registry
CRED_OF[reference]="AWS:$ACCOUNT-auth-token"   # what moto's GetAuthorizationToken decodes to
CRED_OF[regbridge]="admin:$(random_hex 12)"
check_counts WRK_SECONDS
require_tools docker-registry htpasswd wrk curl python3
[ -x "$VENV/bin/moto_server" ] || die "moto_server not found in $VENV: run scripts/install-test-deps.sh"
find_regbridge ""
setup_scratch
EXTRA_PIDS=()
cleanup() { stop_servers; local p; for p in "${EXTRA_PIDS[@]}"; do stop_pid "$p"; done; }
trap cleanup EXIT

machine_info
MOTO_PORT=$(free_port)
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" > "$W/work/moto.log" 2>&1 &
EXTRA_PIDS+=($!)
ECR_PORT=$(free_port)
python3 "$HERE/ecr-presign-stand-in.py" "$ECR_PORT" "http://127.0.0.1:$MOTO_PORT" "$PRESIGNED" > "$W/work/stand-in.log" 2>&1 &
EXTRA_PIDS+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$ECR_PORT/moto-api/" && break; sleep 0.2; done
# The ECR repository, created with an unsigned request (moto reads the service from the credential scope).
curl -sf -o /dev/null -X POST "http://127.0.0.1:$ECR_PORT/" -H 'Content-Type: application/x-amz-json-1.1' \
  -H 'X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.CreateRepository' \
  -H "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=00" \
  -d '{"repositoryName":"team/app"}' || die "could not create the ECR repository in moto"

start_reference
cat > "$W/work/presign.toml" <<TOML
[[routes]]
provider = "local"
[[routes]]
prefix = "ecr"
provider = "ecr"
region = "us-east-1"
account = "$ACCOUNT"
endpoint = "http://127.0.0.1:$ECR_PORT"
registry = "$(base reference)"
username = "test"
password = "test"
upstream_prefix = "team"
TOML
start_regbridge --config "$W/work/presign.toml"

# One blob, pushed through the proxy into ECR's data plane.
BLOB=$W/work/blob
head -c 1048576 /dev/urandom > "$BLOB"
DG=sha256:$(sha256sum "$BLOB" | cut -c1-64)
blob_upload regbridge ecr/app "$BLOB" "$DG" > /dev/null
URL="$(base regbridge)/v2/ecr/app/blobs/$DG"
read -r code location < <(curl -s -o /dev/null -w '%{http_code} %{redirect_url}\n' -u "$(cred regbridge)" "$URL")
[ "$code" = 307 ] && [ "$location" = "$PRESIGNED" ] || fail regbridge "GET blob answered $code $location (want 307 $PRESIGNED)"

AUTH="Authorization: Basic $(printf '%s' "$(cred regbridge)" | base64 -w0)"
rps_307=$(run_wrk regbridge "$URL" "$W/work/wrk-307.txt" "$AUTH")
# docker-registry's own manifest GETs, for scale: push a manifest there directly.
printf '{}' > "$W/work/config"
blob_upload reference team/app "$W/work/config" "sha256:$(sha256sum "$W/work/config" | cut -c1-64)" > /dev/null
MANIFEST='{"schemaVersion":2,"mediaType":"'$MT'","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}'
curl -sf -o /dev/null -u "$(cred reference)" -X PUT -H "Content-Type: $MT" --data-binary "$MANIFEST" \
  "$(base reference)/v2/team/app/manifests/v1" || fail reference "manifest PUT failed"
REF_AUTH="Authorization: Basic $(printf '%s' "$(cred reference)" | base64 -w0)"
rps_ref=$(run_wrk reference "$(base reference)/v2/team/app/manifests/v1" "$W/work/wrk-ref.txt" "$REF_AUTH" "Accept: $MT")
read -r hwm _ _ _ < <(proc_stats "${PID[regbridge]}")

echo
printf '%-44s %12s\n' "metric" "value"
printf '%-44s %12.0f   (target > 20000)\n' "regbridge 307 path, wrk 16 conns (req/s)" "$rps_307"
printf '%-44s %12.0f\n' "docker-registry manifest GET, same wrk (req/s)" "$rps_ref"
printf '%-44s %12s\n' "ratio" "$(ratio "$rps_307" "$rps_ref" hi)"
printf '%-44s %12.1f\n' "regbridge peak RSS (MiB)" "$(calc "$hwm / 1024")"
