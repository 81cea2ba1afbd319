#!/usr/bin/env bash
# containerd drives hull exactly as it drives runc (hull-only engine test):
# a private containerd (its own root, state and sockets under a temp dir, CRI off),
# a busybox image made here from bundles/hello/rootfs (OCI layout, no registry),
# and `ctr run --runc-binary hull`: containerd-shim-runc-v2 then calls hull's
# create (stdio pipes, --pid-file, --log log.json), start, exec --process, kill,
# delete — and, with -t, --console-socket.
#
# Usage: HULL=/path/to/hull runtime-tests/engines/containerd.sh
# Prints one line per check and a final "N passed, N failed" line.
set -uo pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HULL=${HULL:-$REPO/target/release/hull}

ENGINE=containerd
. "$REPO/runtime-tests/engines/lib.sh"
require_tools containerd containerd ctr

T=$(mktemp -d /tmp/hull-ctd.XXXXXX)
NS=hulltest
CTD_PID=""
cleanup() {
  local id
  for id in $(ctr -a "$CTD_SOCK" -n $NS tasks ls -q 2>/dev/null); do
    ctr -a "$CTD_SOCK" -n $NS tasks kill -s SIGKILL "$id" >/dev/null 2>&1
    ctr -a "$CTD_SOCK" -n $NS tasks delete -f "$id" >/dev/null 2>&1
  done
  for id in $(ctr -a "$CTD_SOCK" -n $NS containers ls -q 2>/dev/null); do
    ctr -a "$CTD_SOCK" -n $NS containers delete "$id" >/dev/null 2>&1
  done
  stop_pid "$CTD_PID"
  umount_under_t
  rm -rf "$T"
  # the shim's runtime root for our namespace (hull --root), empty once all is deleted
  rmdir "/run/containerd/runc/$NS" 2>/dev/null
}
trap cleanup EXIT

start_containerd || { fail setup "containerd did not start"; finish; exit 1; }

# ---- an OCI image (layout tar) of the busybox rootfs ---------------------------------
IMG=docker.io/hull/busybox:test
L=$T/layout
mkdir -p "$L/blobs/sha256"
blob() { # file -> prints "digest size", stores the blob
  local d s; d=$(sha256sum "$1" | cut -d' ' -f1); s=$(stat -c %s "$1")
  cp "$1" "$L/blobs/sha256/$d"; echo "$d $s"
}
make_layer
read -r LD LS < <(blob "$LAYER")
image_config >"$T/config.json"
read -r CD CS < <(blob "$T/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' "$CD" "$CS" "$LD" "$LS" >"$T/manifest.json"
read -r MD MS < <(blob "$T/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"test"}}]}' "$MD" "$MS" "$IMG" >"$L/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$L/oci-layout"
tar -C "$L" -cf "$T/image.tar" .
if ! ctr -a "$CTD_SOCK" -n $NS images import "$T/image.tar" >"$T/import.log" 2>&1; then
  fail setup "image import: $(tail -n 2 "$T/import.log")"; finish; exit 1
fi

CTR=(ctr -a "$CTD_SOCK" -n $NS)
RUN=("${CTR[@]}" run --runc-binary "$HULL")
cg() { echo "hull-ctd/$1"; } # relative: beneath our own cgroup (HOST.md)

# ---- checks ---------------------------------------------------------------------------
out=$(timeout 60 "${RUN[@]}" --rm --cgroup "$(cg c1)" "$IMG" c1 echo hello-from-containerd 2>&1)
[[ $out == *hello-from-containerd* ]] && pass run_stdio || fail run_stdio "$out"

timeout 60 "${RUN[@]}" --rm --cgroup "$(cg c2)" "$IMG" c2 sh -c 'exit 3' >/dev/null 2>&1
rc=$?
[ $rc = 3 ] && pass exit_code || fail exit_code "ctr run exited $rc, want 3"

if timeout 60 "${RUN[@]}" -d --cgroup "$(cg c3)" "$IMG" c3 sleep 120 >"$T/c3.log" 2>&1; then
  out=$(timeout 30 "${CTR[@]}" tasks exec --exec-id e1 c3 sh -c 'echo exec-ok; hostname' 2>&1)
  [[ $out == *exec-ok* ]] && pass exec || fail exec "$out"
  pids=$(timeout 30 "${CTR[@]}" tasks ps c3 2>&1)
  [[ $pids == *PID* ]] && pass ps || fail ps "$pids"
  timeout 30 "${CTR[@]}" tasks kill -s SIGKILL c3 >/dev/null 2>&1
  for _ in $(seq 100); do
    st=$("${CTR[@]}" tasks ls 2>/dev/null | awk '$1=="c3"{print $3}')
    [ "$st" = STOPPED ] && break; sleep 0.1
  done
  [ "$st" = STOPPED ] && pass kill || fail kill "task status $st after SIGKILL"
  timeout 30 "${CTR[@]}" tasks delete c3 >/dev/null 2>&1 && timeout 30 "${CTR[@]}" containers delete c3 >/dev/null 2>&1 \
    && pass delete || fail delete "tasks/containers delete c3 failed"
else
  fail run_detached "$(tail -n 3 "$T/c3.log")"
fi

if command -v script >/dev/null; then
  out=$(tty_session 'tty; exit 4' "$(printf '%q ' "${RUN[@]}") -t --rm --cgroup $(cg c4) $IMG c4 sh")
  [[ $out == */dev/pts/* ]] && pass tty || fail tty "$out"
fi

left=$(ls "$T/ctd-state/io.containerd.runtime.v2.task/$NS" 2>/dev/null)
[ -z "$left" ] && pass nothing_left || fail nothing_left "task dirs left: $left"

finish
