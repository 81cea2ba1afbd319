#!/usr/bin/env bash
# Image numbers (`make bench-images`, part of `make bench`), hull-only:
#   load   `hull image load` of a ~100 MB image (one incompressible layer) vs
#          `tar -x` of the same layer bytes (what unpacking alone costs)
#   disk   the data root after `create --image` of 50 containers of one image,
#          vs the image alone (the goal: one copy + 50 small uppers)
#   pull   `hull pull` of that image from a local registry (Debian's
#          docker-registry, plain HTTP on 127.0.0.1, started here, stopped by
#          PID) vs `skopeo copy` of the same into an OCI directory
# Medians of RUNS (default 3) after one warm-up. Prints a markdown table.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HULL=${HULL:-$REPO/target/release/hull}
RUNS=${RUNS:-3}
SIZE_MB=${SIZE_MB:-100}
WORK=$(mktemp -d /var/tmp/hull-bench-img.XXXXXX)
REG_PID=
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null && wait "$REG_PID" 2>/dev/null
  "$HULL" --root "$WORK/root" delete -f $(ls "$WORK/root" 2>/dev/null) >/dev/null 2>&1 || true
  rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT
[ -x "$HULL" ] || { echo "bench-images: no $HULL (make build)" >&2; exit 1; }
[ -d "$REPO/bundles/hello/rootfs" ] || { echo "bench-images: make bundles first" >&2; exit 1; }

now() { local t=$EPOCHREALTIME; echo "${t%.*}${t#*.}"; }
ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The image: the busybox rootfs as layer 1, SIZE_MB of random data as layer 2.
mkdir -p "$WORK/l1" "$WORK/l2/data" "$WORK/img/a" "$WORK/img/b"
head -c "${SIZE_MB}M" /dev/urandom >"$WORK/l2/data/blob"
tar --sort=name --numeric-owner --owner=0 --group=0 -C "$REPO/bundles/hello/rootfs" -cf "$WORK/img/a/layer.tar" .
tar --sort=name --numeric-owner --owner=0 --group=0 -C "$WORK/l2" -cf "$WORK/img/b/layer.tar" .
d1=$(sha256sum "$WORK/img/a/layer.tar" | cut -d' ' -f1)
d2=$(sha256sum "$WORK/img/b/layer.tar" | cut -d' ' -f1)
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["true"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s","sha256:%s"]}}' \
  "$d1" "$d2" >"$WORK/img/config.json"
cfg=$(sha256sum "$WORK/img/config.json" | cut -d' ' -f1)
mv "$WORK/img/config.json" "$WORK/img/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["big:1"],"Layers":["a/layer.tar","b/layer.tar"]}]' "$cfg" >"$WORK/img/manifest.json"
tar -C "$WORK/img" -cf "$WORK/big.tar" .
bytes=$(stat -c %s "$WORK/big.tar")

load_t=() tar_t=()
for ((i = 0; i <= RUNS; i++)); do
  rm -rf --one-file-system "$WORK/data" "$WORK/x"; mkdir -p "$WORK/x"; sync
  t0=$(now); "$HULL" --data-root "$WORK/data" image load -q -i "$WORK/big.tar"; t1=$(now)
  tar -C "$WORK/x" -xf "$WORK/img/b/layer.tar"; tar -C "$WORK/x" -xf "$WORK/img/a/layer.tar"; t2=$(now)
  ((i > 0)) && load_t+=("$(ms "$t0" "$t1")") && tar_t+=("$(ms "$t1" "$t2")")
done
load_ms=$(echo "${load_t[@]}" | median); tar_ms=$(echo "${tar_t[@]}" | median)

# Disk: 50 containers of the image (created, each writes nothing yet).
img_kb=$(du -skx "$WORK/data" | cut -f1)
for ((i = 0; i < 50; i++)); do
  "$HULL" --root "$WORK/root" --data-root "$WORK/data" create --image big:1 --name "c$i" true >/dev/null
done
with_kb=$(du -skx "$WORK/data" | cut -f1)
"$HULL" --root "$WORK/root" delete -f $(ls "$WORK/root") >/dev/null

# Pull: a registry of our own on a free port, plain HTTP.
pull_ms=- skopeo_ms=-
if command -v docker-registry >/dev/null && command -v skopeo >/dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$WORK/registry" "$port" >"$WORK/registry.yml"
  docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
  REG_PID=$!
  for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  ref=127.0.0.1:$port/big:1
  "$HULL" --data-root "$WORK/data" tag big:1 "$ref"
  "$HULL" --data-root "$WORK/data" push -q --insecure --authfile "$WORK/auth.json" "$ref"
  pt=() st=()
  for ((i = 0; i <= RUNS; i++)); do
    rm -rf --one-file-system "$WORK/pulled" "$WORK/oci"
    t0=$(now); "$HULL" --data-root "$WORK/pulled" pull -q --insecure --authfile "$WORK/auth.json" "$ref"; t1=$(now)
    skopeo copy -q --src-tls-verify=false "docker://$ref" "oci:$WORK/oci:big" >/dev/null; t2=$(now)
    ((i > 0)) && pt+=("$(ms "$t0" "$t1")") && st+=("$(ms "$t1" "$t2")")
  done
  pull_ms=$(echo "${pt[@]}" | median); skopeo_ms=$(echo "${st[@]}" | median)
fi

mb=$(awk -v b="$bytes" 'BEGIN { printf "%.0f", b / 1e6 }')
echo "image numbers ($mb MB image, two layers, one of random data; medians of $RUNS after a warm-up):"
echo
echo "| measure | hull | reference | ratio |"
echo "|---|---:|---:|---:|"
echo "| load, ms (vs tar -x of the layers) | $load_ms | $tar_ms | $(awk -v a="$load_ms" -v b="$tar_ms" 'BEGIN{printf "%.2f", a/b}') |"
echo "| load throughput, MB/s | $(awk -v b="$bytes" -v m="$load_ms" 'BEGIN{printf "%.0f", b/1e3/m}') | $(awk -v b="$bytes" -v m="$tar_ms" 'BEGIN{printf "%.0f", b/1e3/m}') | |"
echo "| disk, MB: the image, then with 50 containers | $((img_kb / 1024)) | $((with_kb / 1024)) | $(awk -v a="$with_kb" -v b="$img_kb" 'BEGIN{printf "%.2f", a/b}') |"
if [ "$pull_ms" != - ]; then
  echo "| pull, ms (vs skopeo copy to an OCI dir) | $pull_ms | $skopeo_ms | $(awk -v a="$pull_ms" -v b="$skopeo_ms" 'BEGIN{printf "%.2f", a/b}') |"
else
  echo "| pull | - | - | (docker-registry or skopeo missing) |"
fi
