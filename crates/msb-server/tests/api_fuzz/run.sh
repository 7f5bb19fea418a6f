#!/usr/bin/env bash
# Property-based test of `msb serve` from its own OpenAPI document, with schemathesis: every
# operation gets generated valid and invalid requests, and no answer may be a server error
# (5xx). The server runs over an empty MSB_HOME without a guest kernel, so nothing boots.
#
# usage: crates/msb-server/tests/api_fuzz/run.sh [extra schemathesis arguments]
# env:   MSB_BIN   the msb binary (default: target/debug/msb, built when missing)
#        ST        the schemathesis program (default: a venv in /tmp/stvenv, made once)
#        EXAMPLES  examples per operation (default 25); SEED (default 1)
#        MSB_FUZZ_VM=1  also boot one sandbox (needs MSB_KERNEL and MSB_INITRAMFS) and aim
#                  the requests that use a sandbox (exec, files, fs, logs …) mostly at it
#
# As root it runs in private network and mount namespaces: only loopback exists, and the
# whole file system is read-only except a tmpfs holding the server's home.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../../.." && pwd)

if [ -z "${MSB_FUZZ_INSIDE:-}" ]; then
    export MSB_BIN=${MSB_BIN:-$root/target/debug/msb}
    if [ ! -x "$MSB_BIN" ]; then
        (cd "$root" && cargo build -q -p msb-cli)
    fi
    if [ -z "${ST:-}" ]; then
        if [ ! -x /tmp/stvenv/bin/schemathesis ]; then
            python3 -m venv /tmp/stvenv
            /tmp/stvenv/bin/pip install -q schemathesis
        fi
        ST=/tmp/stvenv/bin/schemathesis
    fi
    export ST
    work=$(mktemp -d /tmp/msb-fuzz.XXXXXX)
    trap 'rm -rf "$work"' EXIT
    export MSB_FUZZ_INSIDE=1 MSB_FUZZ_WORK=$work
    if [ "$(id -u)" = 0 ] && unshare --net --mount true 2>/dev/null; then
        unshare --net --mount "$0" "$@"
    else
        echo "api_fuzz: not isolated in namespaces (needs root); the hooks still pin creates to a fixture" >&2
        MSB_FUZZ_SHARED=1 "$0" "$@"
    fi
    exit $?
fi

work=$MSB_FUZZ_WORK
if [ -z "${MSB_FUZZ_SHARED:-}" ]; then
    mount --make-rprivate /
    ip link set lo up
    mount -t tmpfs -o size=512m tmpfs "$work"
    mount -o remount,bind,ro /
fi
cd "$work"
export HOME=$work MSB_HOME=$work/home TMPDIR=$work
if [ -z "${MSB_FUZZ_VM:-}" ]; then unset MSB_KERNEL MSB_INITRAMFS; fi
mkdir -p "$MSB_HOME" "$work/rootfs"
# A root that passes the checks of a create, so one gets as far as booting (and fails there).
base=${MSB_TEST_ROOTFS:-/root/.cache/msb/rootfs/busybox}
if [ -d "$base" ]; then cp -a "$base/." "$work/rootfs/"; fi
export MSB_FUZZ_ROOTFS=$work/rootfs

"$MSB_BIN" serve --listen 127.0.0.1:0 >"$work/serve.out" 2>"$work/serve.err" &
server=$!
finish() {
    if [ -n "${MSB_FUZZ_LIVE:-}" ]; then
        curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $token" "$url/v1/sandboxes/$MSB_FUZZ_LIVE?force=true"
    fi
    kill $server 2>/dev/null
    wait $server 2>/dev/null
}
trap finish EXIT
for _ in $(seq 100); do
    [ -s "$work/serve.out" ] && break
    sleep 0.1
done
url=$(sed -n 's/^listening on //p' "$work/serve.out" | head -1)
[ -n "$url" ] || { cat "$work/serve.err" >&2; exit 1; }
token=$(cat "$MSB_HOME/server/token")
if [ -n "${MSB_FUZZ_VM:-}" ]; then
    export MSB_FUZZ_LIVE=fuzz-live
    curl -sf -o /dev/null -H "Authorization: Bearer $token" -H 'content-type: application/json' \
        -d "{\"name\": \"$MSB_FUZZ_LIVE\", \"rootfs\": \"$MSB_FUZZ_ROOTFS\"}" "$url/v1/sandboxes" ||
        { echo "api_fuzz: could not create the live sandbox" >&2; cat "$work/serve.err" >&2; exit 1; }
fi

status=0
PYTHONPATH=$here SCHEMATHESIS_HOOKS=hooks timeout 115 "$ST" run "$url/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error \
    --phases examples,coverage,fuzzing \
    --max-examples "${EXAMPLES:-25}" --seed "${SEED:-1}" \
    --request-timeout 20 --no-shrink \
    --exclude-path /v1/images/pull \
    "$@" || status=$?
if grep -q "request failed" "$work/serve.err"; then
    echo "--- internal errors the server logged (the expected ones are dropped from the run's failures):" >&2
    grep "request failed" "$work/serve.err" | sed 's/^.*request failed/request failed/' | sort | uniq -c | sort -rn | head -30 >&2
fi
exit $status
