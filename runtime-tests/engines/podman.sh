#!/usr/bin/env bash
# podman drives hull through conmon (hull-only engine test): conmon calls hull's
# create with --pid-file and (for -t) --console-socket, then start, exec, kill, delete.
# Private storage and run roots under a temp dir; cgroupfs beneath our own cgroup;
# --network none (HOST.md: no traffic outside our namespaces).
# Usage: HULL=/path/to/hull runtime-tests/engines/podman.sh
set -uo pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HULL=${HULL:-$REPO/target/release/hull}

ENGINE=podman
. "$REPO/runtime-tests/engines/lib.sh"
require_tools podman podman

T=$(mktemp -d /tmp/hull-pdm.XXXXXX)
OWN_CG=$(own_cgroup)
P=(podman --root "$T/storage" --runroot "$T/run" --tmpdir "$T/tmp" --storage-driver overlay
   --cgroup-manager cgroupfs --events-backend file --runtime "$HULL")
# podman's default ulimits exceed this machine's hard limits (HOST.md)
RUN=("${P[@]}" run --pull never --network none --cgroup-parent "${OWN_CG%/}/hull-podman"
     --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
# podman (cgroupfs) puts conmon in <parent>/conmon, and caches blob info in
# /var/lib/containers: ours to remove, since this test started them.
HAD_VARLIB=0; [ -d /var/lib/containers ] && HAD_VARLIB=1
cleanup() {
  "${P[@]}" rm -af -t 0 >/dev/null 2>&1
  umount_under_t
  rm -rf "$T"
  local d
  for d in $(find /sys/fs/cgroup -depth -type d -path "*${OWN_CG%/}/hull-podman*" 2>/dev/null); do rmdir "$d" 2>/dev/null; done
  [ $HAD_VARLIB = 1 ] || rm -rf /var/lib/containers
}
trap cleanup EXIT

# ---- a docker-archive image of the busybox rootfs ------------------------------------
make_layer
mkdir -p "$T/img" "$T/tmp"
cp "$LAYER" "$T/img/layer.tar"
image_config >"$T/img/config.json"
echo '[{"Config":"config.json","RepoTags":["docker.io/hull/busybox:test"],"Layers":["layer.tar"]}]' >"$T/img/manifest.json"
tar -C "$T/img" -cf "$T/image.tar" .
"${P[@]}" load -i "$T/image.tar" >"$T/load.log" 2>&1 || { fail setup "podman load: $(tail -n 2 "$T/load.log")"; finish; exit 1; }
IMG=docker.io/hull/busybox:test

# ---- checks ---------------------------------------------------------------------------
out=$(timeout 60 "${RUN[@]}" --rm $IMG echo hello-from-podman 2>&1)
[[ $out == *hello-from-podman* ]] && pass run_stdio || fail run_stdio "$out"

timeout 60 "${RUN[@]}" --rm $IMG sh -c 'exit 3' >/dev/null 2>&1
rc=$?
[ $rc = 3 ] && pass exit_code || fail exit_code "podman run exited $rc, want 3"

if timeout 60 "${RUN[@]}" -d --name p1 $IMG sleep 300 >"$T/p1.log" 2>&1; then
  out=$(timeout 30 "${P[@]}" exec p1 sh -c 'echo exec-ok' 2>&1)
  [[ $out == *exec-ok* ]] && pass exec || fail exec "$out"
  timeout 60 "${P[@]}" stop -t 1 p1 >/dev/null 2>&1 && pass stop || fail stop "podman stop p1 failed"
  timeout 30 "${P[@]}" rm p1 >/dev/null 2>&1 && pass rm || fail rm "podman rm p1 failed"
else
  fail run_detached "$(tail -n 3 "$T/p1.log")"
fi

# --preserve-fds: podman hands fd 3 on through conmon to `create --preserve-fds 1`
echo preserved-fd-content >"$T/fd3"
out=$(timeout 60 "${RUN[@]}" --rm --preserve-fds 1 $IMG cat /proc/self/fd/3 2>&1 3<"$T/fd3")
[[ $out == *preserved-fd-content* ]] && pass preserve_fds || fail preserve_fds "$out"

if command -v script >/dev/null; then
  out=$(tty_session 'tty; exit 4' "$(printf '%q ' "${RUN[@]}") -it --rm $IMG sh")
  [[ $out == */dev/pts/* ]] && pass tty || fail tty "$out"
fi

finish
