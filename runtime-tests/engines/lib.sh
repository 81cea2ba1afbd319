# Shared by the engine tests (sourced): the checks before a run, a private
# containerd, a busybox image made from bundles/hello/rootfs without any
# registry, pass/fail bookkeeping. The sourcing script sets REPO, HULL and
# ENGINE first, and T (its temp dir) before starting anything.

PASSED=0 FAILED=0
ENGINE=${ENGINE:-engine}

# require_tools "PACKAGES" TOOL...: skip (exit 0, said so) unless every tool is
# there; fail unless hull is built.
require_tools() {
  local pkgs=$1 t; shift
  for t in "$@"; do
    if ! command -v "$t" >/dev/null && [ ! -x "$t" ]; then
      echo "skipped $ENGINE: $t not installed ($pkgs; make deps installs it)"
      echo "0 passed, 0 failed, 1 skipped"
      exit 0
    fi
  done
  [ -x "$HULL" ] || { echo "FAIL setup: $HULL not built"; echo "0 passed, 1 failed"; exit 1; }
}

# Our own cgroup (the memory line on v1/hybrid, the unified one on v2): engine
# containers go beneath it (HOST.md).
own_cgroup() {
  local cg; cg=$(awk -F: '$2=="memory"{print $3}' /proc/self/cgroup)
  [ -n "$cg" ] || cg=$(awk -F: '$1=="0"{print $3}' /proc/self/cgroup)
  echo "$cg"
}
pass() { PASSED=$((PASSED + 1)); echo "ok ${ENGINE}_$1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL ${ENGINE}_$1: $2"; }
finish() { echo "$PASSED passed, $FAILED failed"; [ "$FAILED" = 0 ]; }

# A containerd with its own root, state and sockets under $T (CRI off).
# Sets CTD_SOCK and CTD_PID.
start_containerd() {
  CTD_SOCK=$T/containerd.sock
  cat >"$T/containerd.toml" <<TOML
version = 2
root = "$T/ctd-root"
state = "$T/ctd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTD_SOCK"
[ttrpc]
  address = "$T/ctd-ttrpc.sock"
[debug]
  address = "$T/ctd-debug.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$T/ctd-opt"
TOML
  containerd --config "$T/containerd.toml" >"$T/containerd.log" 2>&1 &
  CTD_PID=$!
  local _
  for _ in $(seq 100); do
    [ -S "$CTD_SOCK" ] && ctr -a "$CTD_SOCK" version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "containerd did not start: $(tail -n 3 "$T/containerd.log")" >&2
  return 1
}

# tty_session LINE COMMAND: run COMMAND (a shell in a container, one string) on
# a fresh terminal through script(1), type LINE once the shell's prompt ("# ")
# is on the screen, and print everything the session printed. Waiting for the
# prompt is the point: what is typed before the shell reads its terminal can be
# lost on the way (engine pipes, the container's console), and then the shell
# only ever sees the end of input. Gives up after 60 s.
tty_session() {
  local line=$1 cmd=$2 fifo=$T/tty.in out=$T/tty.out w pid _
  rm -f "$fifo" && mkfifo "$fifo" && : >"$out" || return 1
  timeout 60 script -qec "$cmd" /dev/null <"$fifo" >"$out" 2>&1 &
  pid=$!
  exec {w}>"$fifo"
  for _ in $(seq 600); do
    grep -q '# ' "$out" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  printf '%s\n' "$line" >&$w
  exec {w}>&-
  wait "$pid"
  cat "$out"
}

stop_pid() { # stop a daemon we started, by its pid
  [ -n "${1:-}" ] || return 0
  kill "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}

# Lazily unmount whatever is still mounted under $T (snapshots, shm), deepest first.
umount_under_t() {
  grep -o " $T[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
}

# The busybox rootfs as one uncompressed layer: sets LAYER (path), LAYER_SHA.
make_layer() {
  local rootfs=$REPO/bundles/hello/rootfs
  [ -d "$rootfs" ] || make -s -C "$REPO" bundles >/dev/null
  LAYER=$T/layer.tar
  tar -C "$rootfs" --numeric-owner -cf "$LAYER" .
  LAYER_SHA=$(sha256sum "$LAYER" | cut -d' ' -f1)
}

# Image config JSON for that layer.
image_config() {
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$LAYER_SHA"
}
