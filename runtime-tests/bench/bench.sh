#!/usr/bin/env bash
# Container start-up benchmark: hull vs runc vs crun.  Run as root: `make bench`.
#
# Scenarios, each with a busybox bundle whose process is /bin/true:
#   run        `RT run ID` (foreground; the runtime deletes the container itself)
#   lifecycle  `RT create --pid-file F ID` -> `RT start ID` -> wait until the init
#              has exited (polls /proc/PID/stat, no extra runtime calls) -> `RT delete ID`
#   exec       `RT exec ID /bin/true` into a running container (one per runtime)
#   parallel   PARALLEL (20) foreground `run`s at once: wall time of the batch,
#              also reported as containers per second
#   detached   `RT run -d ID` of a shell that exits on TERM, then stop and remove
#              it: hull `stop` + `rm` (its monitor records the exit), runc and crun
#              `kill TERM` + wait for the init + `delete`; `run -d` alone is
#              reported too (row run-d)
# After the rounds: the RSS and PSS of 100 hull monitors (100 `run -d` at once alive).
# Runtimes are interleaved (hull runc crun hull runc crun ...), WARMUP rounds are
# discarded, then ITER timed rounds.  Times are wall clock (bash $EPOCHREALTIME).
#
# Environment: ITER (50), WARMUP (5), RUNTIMES ("hull runc crun"),
#              HULL (path of hull; default target/release/hull, built here),
#              NO_BUILD=1 (do not run cargo build), HYPERFINE=1 (also run hyperfine
#              on the `run` scenario, one runtime after the other; JSON next to latest.json).
# Output: a markdown table on stdout; raw samples in target/bench/latest.json.
# A runtime that fails is reported as "<name>: failed (...)"; the others go on.
set -uo pipefail
export LC_ALL=C

ITER=${ITER:-50}
WARMUP=${WARMUP:-5}
RUNTIMES=${RUNTIMES:-hull runc crun}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT_DIR=$REPO/target/bench
HULL=${HULL:-$REPO/target/release/hull}

log() { printf '%s\n' "$*" >&2; }
die() { log "bench: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root"

# ---- packages ---------------------------------------------------------------
need=()
for rt in $RUNTIMES; do
  case $rt in runc|crun) command -v "$rt" >/dev/null || need+=("$rt") ;; esac
done
[ -x /bin/busybox ] || need+=(busybox-static)
[ -x /usr/bin/time ] || need+=(time)
if [ "${HYPERFINE:-0}" = 1 ] && ! command -v hyperfine >/dev/null; then need+=(hyperfine); fi
if [ ${#need[@]} -gt 0 ]; then
  log "bench: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 && apt-get install -y -q --no-install-recommends "${need[@]}" >&2 \
    || die "apt-get install ${need[*]} failed"
fi

# ---- hull -------------------------------------------------------------------
declare -A FAILED=()
if [[ " $RUNTIMES " == *" hull "* ]]; then
  if [ "${NO_BUILD:-0}" != 1 ]; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
    log "bench: cargo build --release"
    if ! (cd "$REPO" && cargo build --release -q) >&2; then
      FAILED[hull]="cargo build --release failed"
    fi
  fi
  if [ -z "${FAILED[hull]:-}" ] && [ ! -x "$HULL" ]; then FAILED[hull]="$HULL not found"; fi
fi

# ---- bundles ----------------------------------------------------------------
# Under /run, where runtimes keep their state (/run/runc, /run/hull): a --root on a
# busy disk would time the disk, not the runtime.
WORK=$(mktemp -d /run/hull-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
if [ ! -d "$REPO/bundles/hello/rootfs" ]; then
  make -s -C "$REPO" bundles >&2 || die "make bundles failed"
fi
cp -a "$REPO/bundles/hello/rootfs" "$WORK/rootfs"

# Our own cgroup (memory line on v1/hybrid, the 0:: line on pure v2).
OWN_CG=$(awk -F: '$2=="memory"{print $3}' /proc/self/cgroup)
[ -n "$OWN_CG" ] || OWN_CG=$(awk -F: '$1=="0"{print $3}' /proc/self/cgroup)
HYBRID=0
[ -f /sys/fs/cgroup/unified/cgroup.controllers ] && HYBRID=1

# Every cgroup directory a runtime may create, per hierarchy; those that do not
# exist yet are removed again at exit.
CG_NEW=()
note_cgroup() { # cgroupsPath as a runtime will resolve it (relative = beneath ours)
  local ctrl path base rel p
  while IFS=: read -r _ ctrl path; do
    case $ctrl in
      "") base=/sys/fs/cgroup/unified; [ -d $base ] || base=/sys/fs/cgroup ;;
      name=*) base=/sys/fs/cgroup/${ctrl#name=} ;;
      *) base=/sys/fs/cgroup/${ctrl%%,*} ;;
    esac
    [ -d "$base" ] || continue
    if [[ $1 == /* ]]; then rel=$1; else rel="${path%/}/$1"; fi
    p=""
    for c in ${rel//\// }; do
      p+="/$c"
      [ -d "$base$p" ] || CG_NEW+=("$base$p")
    done
  done </proc/self/cgroup
}

# make_bundle RT DIR ARGS_JSON: a bundle for runtime RT at DIR. hull and runc get no
# cgroupsPath: each container gets a cgroup of its own, named after its id, beneath
# the caller's (HOST.md). crun 1.8 would put that outside our cgroup, so it gets a
# path under our own cgroup spelled out, one per bundle dir: containers that are
# alive at the same time must not share a cgroup (deleting one would kill the other).
make_bundle() {
  local rt=$1 dir=$2 args=$3 cg=""
  if [ "$rt" = crun ]; then cg="${OWN_CG%/}/hull-bench/crun/$(basename "$dir")"; note_cgroup "$cg"; fi
  mkdir -p "$dir"
  ROOTFS="$WORK/rootfs" CG="$cg" ARGS="$args" perl -0pe '
      s#"args":\s*\[.*?\]#"args": $ENV{ARGS}#s;
      s#"path":\s*"rootfs"#"path": "$ENV{ROOTFS}"#;
      s#"linux":\s*\{#"linux": {\n\t\t"cgroupsPath": "$ENV{CG}",# if $ENV{CG};
    ' "$REPO/bundles/hello/config.json" >"$dir/config.json"
  grep -qF "$args" "$dir/config.json" || die "could not make the bench config from bundles/hello/config.json"
}

PARALLEL=${PARALLEL:-20}
for rt in $RUNTIMES; do
  mkdir -p "$WORK/root-$rt"
  make_bundle "$rt" "$WORK/b-$rt" '["/bin/true"]'
  make_bundle "$rt" "$WORK/busy-$rt" '["sleep", "3600"]'
  # `wait` returns on the trapped TERM: a polite stop, no grace period.
  make_bundle "$rt" "$WORK/det-$rt" '["sh", "-c", "trap \"exit 0\" TERM; sleep 3600 & wait"]'
  for ((j = 0; j < PARALLEL; j++)); do make_bundle "$rt" "$WORK/b-$rt-p$j" '["/bin/true"]'; done
done

CRUN_WRAP=(unshare -m sh -c 'mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers && exec crun "$@"' crun)

# argv of runtime $1 with its own --root
rt_argv() {
  case $1 in
    hull) ARGV=("$HULL" --root "$WORK/root-hull") ;;
    runc) ARGV=(runc --root "$WORK/root-runc") ;;
    crun) if [ $HYBRID = 1 ]; then ARGV=("${CRUN_WRAP[@]}" --root "$WORK/root-crun")
          else ARGV=(crun --root "$WORK/root-crun"); fi ;;
  esac
}
declare -A RTARGV=()
for rt in $RUNTIMES; do rt_argv "$rt"; RTARGV[$rt]=$(printf '%q ' "${ARGV[@]}"); done
rt() { local r=$1; shift; rt_argv "$r"; "${ARGV[@]}" "$@"; }

cleanup() {
  local r id
  for r in $RUNTIMES; do
    for id in $(ls "$WORK/root-$r" 2>/dev/null); do rt "$r" delete -f "$id" >/dev/null 2>&1; done
  done
  # remove the cgroup directories that did not exist before the bench, deepest
  # first (rmdir refuses a cgroup that still has tasks or children)
  local i
  for ((i = ${#CG_NEW[@]} - 1; i >= 0; i--)); do rmdir "${CG_NEW[$i]}" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# wait until pid $1 is gone or a zombie (the container init has exited)
wait_exit() {
  local line rest st
  while read -r line 2>/dev/null <"/proc/$1/stat"; do
    rest=${line##*) }; st=${rest%% *}
    [ "$st" = Z ] || [ "$st" = X ] && return 0
  done
  return 0
}

SEQ=0
# one sample of scenario $2 for runtime $1; echoes microseconds, or fails
sample() {
  local r=$1 sc=$2 id="bench-$1-$$-$((SEQ++))" err="$WORK/err-$1" t0 t1 pid=""
  local b="$WORK/b-$r"
  rt_argv "$r"
  case $sc in
    run)
      t0=$EPOCHREALTIME; STEP=run
      "${ARGV[@]}" run -b "$b" "$id" </dev/null >/dev/null 2>"$err" || { rt "$r" delete -f "$id" >/dev/null 2>&1; return 1; }
      t1=$EPOCHREALTIME ;;
    lifecycle)
      rm -f "$WORK/pid-$r"
      t0=$EPOCHREALTIME
      STEP=create; "${ARGV[@]}" create -b "$b" --pid-file "$WORK/pid-$r" "$id" </dev/null >/dev/null 2>"$err" \
        && STEP=start && "${ARGV[@]}" start "$id" </dev/null >/dev/null 2>>"$err" \
        && STEP="read pid file" && { read -r pid <"$WORK/pid-$r"; [ -n "$pid" ]; } && wait_exit "$pid" \
        && STEP=delete && "${ARGV[@]}" delete "$id" </dev/null >/dev/null 2>>"$err" \
        || { rt "$r" delete -f "$id" >/dev/null 2>&1; return 1; }
      t1=$EPOCHREALTIME ;;
    detached)
      local tr
      rm -f "$WORK/pid-$r"
      t0=$EPOCHREALTIME; STEP="run -d"
      "${ARGV[@]}" run -d -b "$WORK/det-$r" --pid-file "$WORK/pid-$r" "$id" </dev/null >/dev/null 2>"$err" \
        || { rt "$r" delete -f "$id" >/dev/null 2>&1; return 1; }
      tr=$EPOCHREALTIME
      if [ "$r" = hull ]; then
        STEP=stop; "${ARGV[@]}" stop "$id" </dev/null >/dev/null 2>>"$err" \
          && STEP=rm && "${ARGV[@]}" rm "$id" </dev/null >/dev/null 2>>"$err" \
          || { rt "$r" delete -f "$id" >/dev/null 2>&1; return 1; }
      else
        STEP=kill; "${ARGV[@]}" kill "$id" TERM </dev/null >/dev/null 2>>"$err" \
          && STEP="wait for the init" && { read -r pid <"$WORK/pid-$r"; [ -n "$pid" ]; } && wait_exit "$pid" \
          && STEP=delete && "${ARGV[@]}" delete "$id" </dev/null >/dev/null 2>>"$err" \
          || { rt "$r" delete -f "$id" >/dev/null 2>&1; return 1; }
      fi
      t1=$EPOCHREALTIME
      RUN_D_US=$(( 10#${tr%.*}${tr#*.} - 10#${t0%.*}${t0#*.} )) ;;
    exec)
      t0=$EPOCHREALTIME; STEP=exec
      "${ARGV[@]}" exec "${BUSY[$r]}" /bin/true </dev/null >/dev/null 2>"$err" || return 1
      t1=$EPOCHREALTIME ;;
    parallel)
      # PARALLEL foreground runs at once; the sample is the wall time of the batch
      local j pids=() ok=1
      t0=$EPOCHREALTIME; STEP="parallel run"
      for ((j = 0; j < PARALLEL; j++)); do
        "${ARGV[@]}" run -b "$b-p$j" "$id-p$j" </dev/null >/dev/null 2>"$err-$j" & pids+=($!)
      done
      for j in "${pids[@]}"; do wait "$j" || ok=0; done
      t1=$EPOCHREALTIME
      if [ $ok = 0 ]; then
        cat "$err"-* >"$err" 2>/dev/null
        for ((j = 0; j < PARALLEL; j++)); do rt "$r" delete -f "$id-p$j" >/dev/null 2>&1; done
        return 1
      fi ;;
  esac
  LAST_US=$(( 10#${t1%.*}${t1#*.} - 10#${t0%.*}${t0#*.} ))
}

declare -A SAMPLES=()   # "$sc/$rt" -> space-separated microseconds
SCENARIOS="run lifecycle exec parallel detached"
# rows of the table: the scenarios, and run -d alone (from the detached samples)
ROWS="run lifecycle exec parallel detached run-d"

# exec needs a running container per runtime: one long sleeper each.
declare -A BUSY=()
for r in $RUNTIMES; do
  [ -n "${FAILED[$r]:-}" ] && continue
  BUSY[$r]="busy-$r-$$"
  rt "$r" run -d -b "$WORK/busy-$r" "${BUSY[$r]}" </dev/null >/dev/null 2>"$WORK/err-$r" \
    || { STEP="run -d (for exec)"; FAILED[$r]="exec setup: $(tail -n 1 "$WORK/err-$r")"; log "$r: failed (${FAILED[$r]})"; }
done
fail() { # runtime, scenario
  local msg; msg=$(grep -v '^\s*$' "$WORK/err-$1" 2>/dev/null | tail -n 1)
  FAILED[$1]="$2, step $STEP: ${msg:-exit status non-zero}"
  log "$1: failed (${FAILED[$1]})"
}

log "bench: $WARMUP warm-up + $ITER timed rounds of [$SCENARIOS] x [$RUNTIMES]"
for ((i = 0; i < WARMUP + ITER; i++)); do
  for sc in $SCENARIOS; do
    for r in $RUNTIMES; do
      [ -n "${FAILED[$r]:-}" ] && continue
      if sample "$r" "$sc"; then
        ((i >= WARMUP)) && SAMPLES[$sc/$r]+="$LAST_US "
        [ "$sc" = detached ] && ((i >= WARMUP)) && SAMPLES[run-d/$r]+="$RUN_D_US "
      else
        fail "$r" "$sc"
      fi
    done
  done
done

# ---- hull-only extras: networking and storage, each against a plain container ---
# The bridge and its rules live in a network namespace made here and deleted after
# (HOST.md: the VM's own namespace stays untouched); `plain` runs in it too, so
# both pay the same nsenter.
declare -A XS=()
XFAILED=""
XVARIANTS="plain bridge-publish overlay-volume image"
if [[ " $RUNTIMES " == *" hull "* ]] && [ -z "${FAILED[hull]:-}" ]; then
  NETNS=hull-bench-$$
  if ip netns add "$NETNS" 2>/dev/null && ip -n "$NETNS" link set lo up; then
    NSE=(nsenter --net=/run/netns/$NETNS)
    # One networked container stays up, so the rounds time a container joining a
    # bridge that exists (the first and last users of a bridge also make/remove it).
    "${NSE[@]}" "$HULL" --root "$WORK/root-hull" run -d --net-root "$WORK/net" --network bridge \
      -b "$WORK/busy-hull" "x-anchor-$$" </dev/null >/dev/null 2>"$WORK/err-x" \
      || XFAILED+=" anchor: $(tail -n 1 "$WORK/err-x");"
    # `run --image`: the sample image (the same busybox rootfs and a page, two
    # layers), loaded once: its layers are cached, as the goal says.
    bash "$REPO/bundles/images/make-web.sh" "$WORK/rootfs" "$WORK/web.tar" >/dev/null \
      && "$HULL" --data-root "$WORK/data" image load -q -i "$WORK/web.tar" 2>"$WORK/err-x" \
      || XFAILED+=" image load: $(tail -n 1 "$WORK/err-x");"
    log "bench: hull extras: $WARMUP warm-up + $ITER timed rounds of [$XVARIANTS]"
    for ((i = 0; i < WARMUP + ITER; i++)); do
      for x in $XVARIANTS; do
        id="x-$x-$$-$i"
        case $x in
          plain) cmd=("${NSE[@]}" "$HULL" --root "$WORK/root-hull" run -b "$WORK/b-hull" "$id") ;;
          bridge-publish) cmd=("${NSE[@]}" "$HULL" --root "$WORK/root-hull" run --net-root "$WORK/net"
                               -p 18080:80 -b "$WORK/b-hull" "$id") ;;
          overlay-volume) cmd=("$HULL" --root "$WORK/root-hull" --data-root "$WORK/data" run --overlay
                               -v benchvol:/data -b "$WORK/b-hull" "$id") ;;
          image) cmd=("${NSE[@]}" "$HULL" --root "$WORK/root-hull" --data-root "$WORK/data" run
                      --image web --name "$id" /bin/true) ;;
        esac
        t0=$EPOCHREALTIME
        if ! "${cmd[@]}" </dev/null >/dev/null 2>"$WORK/err-x"; then
          XFAILED+=" $x: $(tail -n 1 "$WORK/err-x");"
          "$HULL" --root "$WORK/root-hull" delete -f "$id" >/dev/null 2>&1
          continue
        fi
        t1=$EPOCHREALTIME
        ((i >= WARMUP)) && XS[$x]+="$(( 10#${t1%.*}${t1#*.} - 10#${t0%.*}${t0#*.} )) "
      done
    done
    "${NSE[@]}" "$HULL" --root "$WORK/root-hull" delete -f "x-anchor-$$" >/dev/null 2>&1
    ip netns delete "$NETNS"
  else
    XFAILED=" could not make a network namespace"
  fi
fi

# ---- statistics -------------------------------------------------------------
# stats "us us us ..." -> "n median_ms p90_ms" (p90 = nearest rank)
stats() {
  tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '
    { a[NR] = $1 }
    END {
      if (NR == 0) { print "0 - -"; exit }
      med = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
      r = int(0.9 * NR); if (r < 0.9 * NR) r++; if (r < 1) r = 1
      printf "%d %.2f %.2f\n", NR, med / 1000, a[r] / 1000
    }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "—"; else printf "%.2f\n", a / b }'; }

declare -A MED=() P90=() N=()
for sc in $ROWS; do
  for r in $RUNTIMES; do
    read -r N[$sc/$r] MED[$sc/$r] P90[$sc/$r] < <(stats "${SAMPLES[$sc/$r]:-}")
  done
done

echo
echo "## hull benchmark — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) CPUs, kernel $(uname -r)"
echo
echo "$ITER timed rounds after $WARMUP warm-up, runtimes interleaved; bundle: busybox, /bin/true."
echo
echo "| scenario | runtime | n | median ms | p90 ms | hull/runc | hull/crun |"
echo "|---|---|---:|---:|---:|---:|---:|"
for sc in $ROWS; do
  for r in $RUNTIMES; do
    hr="" hc=""
    if [ "$r" = hull ]; then
      hr=$(ratio "${MED[$sc/hull]}" "${MED[$sc/runc]:--}")
      hc=$(ratio "${MED[$sc/hull]}" "${MED[$sc/crun]:--}")
    fi
    name=$r; [ -n "${FAILED[$r]:-}" ] && name="$r (failed)"
    echo "| $sc | $name | ${N[$sc/$r]} | ${MED[$sc/$r]} | ${P90[$sc/$r]} | ${hr:-} | ${hc:-} |"
  done
done
echo
for r in $RUNTIMES; do
  [ -n "${FAILED[$r]:-}" ] && echo "- $r: failed (${FAILED[$r]})"
done
line="- parallel: $PARALLEL foreground \`run\`s at once; containers per second (median batch):"
for r in $RUNTIMES; do
  m=${MED[parallel/$r]:--}
  [ "$m" != - ] && line+=" $r $(awk -v n="$PARALLEL" -v m="$m" 'BEGIN{printf "%.0f", n / (m / 1000)}');"
done
echo "${line%;}"
if [ -n "${XS[plain]:-}" ]; then
  echo
  echo "hull-only extras (plain, bridge-publish and image run in a private network namespace, where one networked container keeps the bridge up; image: \`run --image web /bin/true\`, two cached layers under an overlay):"
  echo
  echo "| variant | n | median ms | p90 ms | vs plain |"
  echo "|---|---:|---:|---:|---:|"
  read -r _ xplain _ < <(stats "${XS[plain]}")
  for x in $XVARIANTS; do
    read -r xn xmed xp90 < <(stats "${XS[$x]:-}")
    echo "| $x | $xn | $xmed | $xp90 | $(ratio "$xmed" "$xplain") |"
  done
fi
[ -n "$XFAILED" ] && echo "- hull extras failed:$XFAILED"
if [[ " $RUNTIMES " == *" crun "* ]] && [ $HYBRID = 1 ]; then
  # what the hybrid-host wrapper alone costs, so crun's numbers can be read fairly
  ws=""
  for ((i = 0; i < 20; i++)); do
    t0=$EPOCHREALTIME
    unshare -m sh -c 'mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers && exec true'
    t1=$EPOCHREALTIME; ws+="$(( 10#${t1%.*}${t1#*.} - 10#${t0%.*}${t0#*.} )) "
  done
  read -r _ wmed _ < <(stats "$ws")
  echo "- crun runs through the hybrid-cgroup wrapper (unshare -m + bind mount, HOST.md); the wrapper alone takes ${wmed} ms (median), included in crun's times."
fi

# binary size and peak RSS of one `run`
SIZE=null
if [ -f "$HULL" ]; then
  SIZE=$(stat -c %s "$HULL")
  echo "- hull binary: $SIZE bytes ($(awk -v s="$SIZE" 'BEGIN{printf "%.1f", s/1048576}') MiB), $HULL"
fi
declare -A RSS=()
if [ -x /usr/bin/time ]; then
  for r in $RUNTIMES; do
    [ -n "${FAILED[$r]:-}" ] && continue
    rt_argv "$r"
    if /usr/bin/time -f %M -o "$WORK/rss-$r" "${ARGV[@]}" run -b "$WORK/b-$r" "rss-$r-$$" </dev/null >/dev/null 2>&1; then
      RSS[$r]=$(tail -n 1 "$WORK/rss-$r")
    fi
  done
  line="- peak RSS of one \`run\` (/usr/bin/time %M):"
  for r in $RUNTIMES; do [ -n "${RSS[$r]:-}" ] && line+=" $r ${RSS[$r]} KiB;"; done
  echo "${line%;}"
fi

# ---- the monitors' memory: 100 detached hull containers alive at once --------
MON_RSS=null MON_PSS=null
if [[ " $RUNTIMES " == *" hull "* ]] && [ -z "${FAILED[hull]:-}" ]; then
  MONITORS=${MONITORS:-100}
  rss=0 pss=0 n=0
  for ((j = 0; j < MONITORS; j++)); do
    "$HULL" --root "$WORK/root-hull" run -d -b "$WORK/busy-hull" "mon-$$-$j" </dev/null >/dev/null 2>"$WORK/err-mon" || break
  done
  # Idle monitors: each lets go of the pages its start touched once quiet
  # for 250 ms.
  sleep 1
  for ((j = 0; j < MONITORS; j++)); do
    pid=$("$HULL" --root "$WORK/root-hull" state "mon-$$-$j" 2>/dev/null | awk -F'[:,]' '/"pid"/{gsub(/ /,"",$2); print $2}')
    [ -n "$pid" ] || continue
    read -r -a st <"/proc/$pid/stat" 2>/dev/null || continue
    mon=${st[3]}   # the init's parent: its monitor
    r=$(awk '/^Rss:/{print $2}' "/proc/$mon/smaps_rollup" 2>/dev/null)
    p=$(awk '/^Pss:/{print $2}' "/proc/$mon/smaps_rollup" 2>/dev/null)
    [ -n "$r" ] && [ -n "$p" ] && { rss=$((rss + r)); pss=$((pss + p)); n=$((n + 1)); }
  done
  for ((j = 0; j < MONITORS; j++)); do "$HULL" --root "$WORK/root-hull" rm -f "mon-$$-$j" >/dev/null 2>&1; done
  if [ $n -gt 0 ]; then
    MON_RSS=$((rss / n)) MON_PSS=$((pss / n))
    echo "- monitors: $n detached containers alive and idle; per monitor RSS $MON_RSS KiB, PSS $MON_PSS KiB (mean; PSS shares the binary's pages among them)"
  else
    echo "- monitors: could not start detached containers: $(tail -n 1 "$WORK/err-mon")"
  fi
fi

# ---- raw samples as JSON ----------------------------------------------------
mkdir -p "$OUT_DIR"
json_str() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "${s//$'\t'/ }"; }
{
  printf '{\n  "date": "%s",\n  "kernel": "%s",\n  "cpus": %s,\n  "iterations": %s,\n  "warmup": %s,\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(uname -r)" "$(nproc)" "$ITER" "$WARMUP"
  printf '  "unit": "ms",\n  "hull_binary_bytes": %s,\n' "$SIZE"
  printf '  "monitor_rss_kib": %s,\n  "monitor_pss_kib": %s,\n' "$MON_RSS" "$MON_PSS"
  printf '  "runtimes": {'
  sep=""
  for r in $RUNTIMES; do
    printf '%s\n    "%s": {"argv": %s, "failed": %s, "peak_rss_kib": %s' "$sep" "$r" \
      "$(json_str "${RTARGV[$r]% }")" \
      "$([ -n "${FAILED[$r]:-}" ] && json_str "${FAILED[$r]}" || echo null)" "${RSS[$r]:-null}"
    for sc in $ROWS; do
      s=$(awk '{ for (i = 1; i <= NF; i++) printf "%.3f,", $i / 1000 }' <<<"${SAMPLES[$sc/$r]:-}")
      med=${MED[$sc/$r]}; p90=${P90[$sc/$r]}
      [ "$med" = - ] && med=null; [ "$p90" = - ] && p90=null
      printf ',\n      "%s": {"median": %s, "p90": %s, "samples": [%s]}' "$sc" "$med" "$p90" "${s%,}"
    done
    printf '}'
    sep=","
  done
  printf '\n  }\n}\n'
} >"$OUT_DIR/latest.json"
echo "- raw samples: $OUT_DIR/latest.json"

# ---- optional: hyperfine (not interleaved: one runtime after the other) ------
if [ "${HYPERFINE:-0}" = 1 ]; then
  cmds=()
  for r in $RUNTIMES; do
    [ -n "${FAILED[$r]:-}" ] && continue
    cmds+=(-n "$r" "${RTARGV[$r]}run -b $WORK/b-$r hf-$r </dev/null")
  done
  [ ${#cmds[@]} -gt 0 ] && hyperfine --warmup "$WARMUP" --runs "$ITER" --export-json "$OUT_DIR/hyperfine-run.json" "${cmds[@]}"
fi
exit 0
