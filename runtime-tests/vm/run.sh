#!/usr/bin/env bash
# The cgroup-v2 lane (`make test-cgroupv2`): boot Debian's 6.1 kernel under
# qemu TCG with cgroup_no_v1=all, run hull and the cgroup tests of the suite
# inside, report pass/fail back here.
#
#   runtime-tests/vm/run.sh [FILTER]      FILTER: suite test filter (default cg_)
#
# Downloads (the kernel package) and the built initramfs live in target/vm/,
# so a rerun only rebuilds what changed. Skips, saying why, when qemu or the
# kernel package cannot be had. Exits non-zero when a test fails in the VM.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
OUT=$ROOT/target/vm
FILTER=${1:-cg_}
TIMEOUT=${VM_TIMEOUT:-170}
CARGO=${CARGO:-cargo}
mkdir -p "$OUT"

skip() { echo "test-cgroupv2: skipped: $*"; exit 0; }
say() { echo "test-cgroupv2: $*"; }

# --- host packages: qemu and a static busybox -----------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } ||
    skip "cannot install ${need[*]} with apt"
fi
command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not available"

# --- the guest kernel: Debian's linux-image-6.1.0-N-amd64, extracted --------
KERNEL=$OUT/vmlinuz
if [ ! -s "$KERNEL" ]; then
  find_pkg() {
    apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
      awk '{print $1}' | sort -V | tail -1
  }
  pkg=$(find_pkg)
  if [ -z "$pkg" ]; then apt-get update -q >/dev/null 2>&1 || true; pkg=$(find_pkg); fi
  [ -n "$pkg" ] || skip "no linux-image-6.1.0-*-amd64 package in the apt sources"
  say "downloading $pkg"
  rm -rf "$OUT/deb" && mkdir -p "$OUT/deb"
  (cd "$OUT/deb" && apt-get download -q "$pkg" >/dev/null) || skip "apt-get download $pkg failed"
  dpkg-deb --fsys-tarfile "$OUT"/deb/*.deb | tar -x -C "$OUT/deb" --wildcards './boot/vmlinuz-*'
  cp "$OUT"/deb/boot/vmlinuz-* "$KERNEL.tmp" && mv "$KERNEL.tmp" "$KERNEL"
  rm -rf "$OUT/deb"
fi

# --- what runs in the guest: hull and the suite binary ----------------------
$CARGO build --release -q
SUITE=$($CARGO test -q -p runtime-tests --test suite --no-run --message-format=json 2>/dev/null |
  grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)
[ -x "$SUITE" ] || { echo "test-cgroupv2: cannot find the suite binary" >&2; exit 1; }

# --- initramfs: busybox, the two binaries and their libraries ---------------
R=$OUT/initramfs
rm -rf "$R"
mkdir -p "$R"/{bin,proc,sys,dev,tmp,run,etc,newroot}
cp /bin/busybox "$R/bin/busybox"
for a in $(/bin/busybox --list); do
  [ "$a" = busybox ] || ln -sf busybox "$R/bin/$a"
done
ln -s bin "$R/sbin"
cp "$ROOT/target/release/hull" "$R/bin/hull"
cp "$SUITE" "$R/bin/suite"
for f in "$R/bin/hull" "$R/bin/suite"; do
  for lib in $(ldd "$f" | grep -o '/[^ ]*'); do
    mkdir -p "$R$(dirname "$lib")"
    cp -L "$lib" "$R$lib"
  done
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"

# Stage 1: the initramfs root cannot be pivot_root'ed away (containers need
# that), so copy everything to a tmpfs and switch_root into it.
cat >"$R/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mount -t tmpfs -o size=300m tmpfs /newroot
for d in bin etc lib lib64 usr init2; do
  [ -e "/$d" ] && /bin/busybox cp -a "/$d" /newroot/
done
/bin/busybox ln -s bin /newroot/sbin
/bin/busybox mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp /newroot/run
exec /bin/busybox switch_root /newroot /init2
EOF
# Stage 2: a cgroup2-only system; run the suite; report; power off.
cat >"$R/init2" <<EOF
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 cgroup2 /sys/fs/cgroup
hostname hull-vm
echo "VM-INFO: kernel \$(uname -r); cgroup.controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)"
export PATH=/bin TMPDIR=/tmp RUNTIME=/bin/hull HOME=/root
/bin/suite $FILTER
echo "VM-RESULT: rc=\$?"
poweroff -f
EOF
chmod +x "$R/init" "$R/init2"
(cd "$R" && find . | /bin/busybox cpio -o -H newc 2>/dev/null) >"$OUT/initramfs.cpio"

# --- boot ---------------------------------------------------------------------
say "booting $(basename "$(readlink -f "$KERNEL")") under qemu TCG (cgroup_no_v1=all), filter '$FILTER'"
LOG=$OUT/console.log
set +e
timeout -k 5 "$TIMEOUT" qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m 768 \
  -nographic -no-reboot -kernel "$KERNEL" -initrd "$OUT/initramfs.cpio" \
  -append "console=ttyS0 panic=-1 cgroup_no_v1=all quiet loglevel=3" </dev/null >"$LOG" 2>&1
qrc=$?
set -e
tr -d '\r' <"$LOG" | grep -E '^(ok|FAIL|skipped|VM-INFO|VM-RESULT|[0-9]+ passed)' | sed 's/^/  vm: /'
if grep -q 'VM-RESULT: rc=0' "$LOG"; then
  say "passed (log: $LOG)"
  exit 0
fi
[ $qrc -eq 124 ] && echo "test-cgroupv2: the VM did not finish within ${TIMEOUT}s" >&2
echo "test-cgroupv2: FAILED (log: $LOG)" >&2
tail -20 "$LOG" >&2
exit 1
