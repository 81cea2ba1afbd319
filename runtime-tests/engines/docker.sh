#!/usr/bin/env bash
# Docker drives hull as it drives runc (hull-only engine test). dockerd is the most
# demanding caller: a prestart hook that reads the state on stdin (libnetwork), its
# default seccomp profile, rbind mounts of resolv.conf/hostname/hosts, `update
# --resources -`, and `docker stop` = kill TERM, then KILL.
#
# dockerd runs in a network namespace made here (HOST.md: the VM's own namespace
# stays untouched), with --bridge none and no iptables, on a private containerd.
# Usage: HULL=/path/to/hull runtime-tests/engines/docker.sh
set -uo pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HULL=${HULL:-$REPO/target/release/hull}
DOCKER=/usr/bin/docker # /usr/local/bin/docker is a newer client that shadows it (HOST.md)

ENGINE=docker
. "$REPO/runtime-tests/engines/lib.sh"
require_tools "docker.io, containerd" dockerd $DOCKER containerd

T=$(mktemp -d /tmp/hull-dkr.XXXXXX)
NETNS=hull-dkr-$$
CTD_PID="" DKR_PID=""
D=($DOCKER -H "unix://$T/docker.sock")
cleanup() {
  "${D[@]}" rm -f $("${D[@]}" ps -aq 2>/dev/null) >/dev/null 2>&1
  stop_pid "$DKR_PID"
  stop_pid "$CTD_PID"
  umount_under_t
  ip netns delete "$NETNS" 2>/dev/null
  rm -rf "$T"
  rmdir /run/containerd/runc/moby 2>/dev/null
}
trap cleanup EXIT

start_containerd || { fail setup "containerd did not start"; finish; exit 1; }
ip netns add "$NETNS" || { fail setup "ip netns add"; finish; exit 1; }

OWN_CG=$(own_cgroup)
nsenter --net=/run/netns/$NETNS dockerd \
  --data-root "$T/data" --exec-root "$T/exec" --pidfile "$T/dockerd.pid" \
  -H "unix://$T/docker.sock" --containerd "$CTD_SOCK" \
  --cgroup-parent "${OWN_CG%/}/hull-docker" --exec-opt native.cgroupdriver=cgroupfs \
  --add-runtime "hull=$HULL" --default-runtime hull \
  --bridge none --iptables=false --ip6tables=false --ip-masq=false --userland-proxy=false \
  --storage-driver overlay2 >"$T/dockerd.log" 2>&1 &
DKR_PID=$!
for _ in $(seq 150); do "${D[@]}" version >/dev/null 2>&1 && break; sleep 0.2; done
"${D[@]}" version >/dev/null 2>&1 || { fail setup "dockerd did not start: $(tail -n 3 "$T/dockerd.log")"; finish; exit 1; }

# ---- a docker-archive image of the busybox rootfs ------------------------------------
make_layer
mkdir -p "$T/img"
cp "$LAYER" "$T/img/layer.tar"
image_config >"$T/img/config.json"
echo '[{"Config":"config.json","RepoTags":["hull/busybox:test"],"Layers":["layer.tar"]}]' >"$T/img/manifest.json"
tar -C "$T/img" -cf "$T/image.tar" .
"${D[@]}" load -i "$T/image.tar" >"$T/load.log" 2>&1 || { fail setup "docker load: $(tail -n 2 "$T/load.log")"; finish; exit 1; }
IMG=hull/busybox:test
RUN=("${D[@]}" run --runtime hull --network none)

# ---- checks ---------------------------------------------------------------------------
out=$(timeout 60 "${RUN[@]}" --rm $IMG echo hello-from-docker 2>&1)
[[ $out == *hello-from-docker* ]] && pass run_stdio || fail run_stdio "$out"

timeout 60 "${RUN[@]}" --rm $IMG sh -c 'exit 3' >/dev/null 2>&1
rc=$?
[ $rc = 3 ] && pass exit_code || fail exit_code "docker run exited $rc, want 3"

# Docker's default seccomp profile is in force (mode 2 = filter) and no_new_privs is not forced.
out=$(timeout 60 "${RUN[@]}" --rm $IMG sh -c 'grep -E "^(Seccomp|CapEff):" /proc/self/status' 2>&1)
[[ $out == *"Seccomp:"*2* ]] && pass seccomp_profile || fail seccomp_profile "$out"

# The hostname file Docker rbind-mounts, and its --hostname.
out=$(timeout 60 "${RUN[@]}" --rm --hostname dockhull $IMG sh -c 'hostname; cat /etc/hostname' 2>&1)
[[ $out == "dockhull"*"dockhull"* ]] && pass hostname_mount || fail hostname_mount "$out"

if timeout 60 "${RUN[@]}" -d --name d1 $IMG sleep 300 >"$T/d1.log" 2>&1; then
  out=$(timeout 30 "${D[@]}" exec d1 sh -c 'echo exec-ok' 2>&1)
  [[ $out == *exec-ok* ]] && pass exec || fail exec "$out"
  out=$(timeout 30 "${D[@]}" top d1 2>&1)
  [[ $out == *sleep* ]] && pass top || fail top "$out"
  if timeout 30 "${D[@]}" update --memory 64m --memory-swap 64m d1 >"$T/upd.log" 2>&1; then
    lim=$(timeout 30 "${D[@]}" exec d1 sh -c 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max' 2>&1)
    [ "$lim" = 67108864 ] && pass update || fail update "limit in the container: $lim"
  else
    fail update "$(tail -n 2 "$T/upd.log")"
  fi
  timeout 60 "${D[@]}" stop -t 1 d1 >/dev/null 2>&1 && pass stop || fail stop "docker stop d1 failed"
  timeout 30 "${D[@]}" rm d1 >/dev/null 2>&1 && pass rm || fail rm "docker rm d1 failed"
else
  fail run_detached "$(tail -n 3 "$T/d1.log")"
fi

finish
