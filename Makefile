# hull — build, sample bundles, tests, benchmarks.
#
#   make run                  install deps, build, run the hello container
#   make test                 deps build bundles lint unit suite test-runc (fail fast)
#   make test RUNTIME=runc    same, but the black-box suite runs against runc only
#   make bench                runtime-tests/bench/bench.sh (hull vs runc vs crun)
#   make fuzz                 each cargo-fuzz target for FUZZ_SECONDS (nightly; not in `make test`)
#
# Variables: RUNTIME (binary the suite drives; default target/release/hull),
#            CARGO (default cargo), BUSYBOX (default /bin/busybox).

SHELL   := /bin/bash
CARGO   ?= cargo
BUSYBOX ?= /bin/busybox
HULL    := $(CURDIR)/target/release/hull
# The fault-injection build (cargo feature `failpoints`) for the crash walk of
# the suite (runtime-tests/tests/suite/faults.rs): a target dir of its own, so
# target/release/hull never carries it.
FAILPOINTS := $(CURDIR)/target/failpoints/release/hull
RUNTIME ?= $(HULL)

# Sample bundles: every bundles/<name>/ that has a config.json gets a rootfs.
BUNDLES := $(patsubst %/config.json,%,$(wildcard bundles/*/config.json))
ROOTFSES := $(addsuffix /rootfs,$(BUNDLES))

# Packages `make deps` makes sure of (crun is installed by the bench only).
# libseccomp-dev and pkg-config: the libseccomp crate links against libseccomp at build time.
APT_PKGS := busybox-static runc hyperfine libseccomp-dev pkg-config containerd docker.io podman
# --network bridge: nft applies the rules, conntrack flushes UDP flows; the
# network tests build their namespaces with iproute2.
APT_PKGS += nftables conntrack iproute2
# The registry tests run Debian's distribution registry with TLS (openssl makes
# the certificates) and htpasswd auth (apache2-utils).
APT_PKGS += docker-registry apache2-utils openssl

# The suite needs the release binaries only when it drives hull.
SUITE_DEPS := bundles $(if $(filter $(HULL),$(RUNTIME)),build build-failpoints)
# With RUNTIME=runc, `make test` runs the suite once, against runc.
TEST_RUNC := $(if $(filter runc %/runc,$(RUNTIME)),,test-runc)

# Prerequisites run in the order written, and the first failure stops make.
.NOTPARALLEL:
.PHONY: all deps build bundles image-web run run-web lint unit suite test-runc test-cgroupv2 test-engines test bench bench-images fuzz build-failpoints clean

all: build

deps:
	@missing=; \
	for p in $(APT_PKGS); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "deps: cargo not found (install rustup, then . \$$HOME/.cargo/env)" >&2; exit 1; }
	@if command -v rustup >/dev/null; then \
	  inst=$$(rustup component list --installed); \
	  for c in clippy rustfmt; do \
	    grep -q "^$$c" <<<"$$inst" || rustup component add $$c; \
	  done; \
	fi

build:
	$(CARGO) build --release

# No LTO: a test binary, where build time counts and run time hardly does.
build-failpoints:
	CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
	  $(CARGO) build --release --features failpoints --target-dir target/failpoints

bundles: $(ROOTFSES)

# Built in a temporary directory and renamed, so an interrupted build never
# leaves a half rootfs that make would take for finished.
bundles/%/rootfs: | bundles/%/config.json
	@echo "bundles: building $@ from $(BUSYBOX)"
	@rm -rf $@.tmp
	@mkdir -p $@.tmp/{bin,proc,sys,dev,tmp,etc,root}
	@chmod 1777 $@.tmp/tmp
	@chmod 700 $@.tmp/root
	@cp $(BUSYBOX) $@.tmp/bin/busybox
	@chroot $@.tmp /bin/busybox --install -s /bin
	@printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > $@.tmp/etc/passwd
	@printf 'root:x:0:\nnogroup:x:65534:\nnobody:x:65534:\n' > $@.tmp/etc/group
	@mv $@.tmp $@

run: deps build bundles
	cd bundles/hello && $(HULL) run hello-$$$$

# A two-layer image (bundles/hello's rootfs + a web page), written offline in
# `docker save`'s format: `hull image load -i target/images/web.tar`.
image-web: target/images/web.tar

target/images/web.tar: bundles/images/make-web.sh | bundles/hello/rootfs
	bash bundles/images/make-web.sh bundles/hello/rootfs $@

# bundles/web serves a page on published port 8080, in a netns of its own.
run-web: deps build bundles
	bash bundles/web/run.sh $(HULL)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p hull --all-targets --features failpoints -- -D warnings

unit:
	$(CARGO) test -p hull

suite: $(SUITE_DEPS)
	RUNTIME=$(RUNTIME) $(CARGO) test -p runtime-tests --test suite

test-runc: bundles
	RUNTIME=runc $(CARGO) test -p runtime-tests --test suite

# The cgroup-v2 lane (a qemu VM booted with cgroup_no_v1=all runs the whole suite
# against hull and against runc; fails on a hull failure, prints runc differences;
# installs qemu-system-x86 and downloads the kernel package into target/vm on
# first use; prints "skipped: <reason>" when qemu cannot run).
test-cgroupv2: build
	bash runtime-tests/vm/run.sh

# Real engines drive hull as they drive runc (hull-only): a private containerd whose
# shim calls hull for create/start/exec/ps/kill/delete and the console socket, and a
# dockerd (in its own netns) with its prestart hook, seccomp profile and update, and
# podman through conmon.
test-engines: build bundles
	HULL=$(HULL) bash runtime-tests/engines/containerd.sh
	HULL=$(HULL) bash runtime-tests/engines/docker.sh
	HULL=$(HULL) bash runtime-tests/engines/podman.sh

test: deps build bundles lint unit suite $(if $(filter $(HULL),$(RUNTIME)),test-cgroupv2 test-engines) $(TEST_RUNC)

bench:
	bash runtime-tests/bench/bench.sh
	bash runtime-tests/bench/images.sh

# Image load, disk per container and pull numbers (runtime-tests/bench/images.sh).
bench-images: build bundles
	bash runtime-tests/bench/images.sh

# Fuzzing of the pure parsers (fuzz/, a workspace of its own): each target
# runs FUZZ_SECONDS on one core, starting from the committed fuzz/seeds/<t>;
# what it learns goes to fuzz/corpus/<t>, crashes to fuzz/artifacts/<t>
# (both ignored by git). Needs the nightly toolchain; cargo-fuzz is installed
# on first use. A crash stops the run: fix it in hull, commit the input to
# fuzz/seeds/<t> and as a unit test (so `make unit` replays it on stable).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := config mount_options cli_flags state signal
FUZZ_CARGO ?= cargo +nightly

fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; \
	  dict=; [ -f fuzz/dicts/$$t.dict ] && dict=-dict=$(CURDIR)/fuzz/dicts/$$t.dict; \
	  echo "fuzz: $$t for $(FUZZ_SECONDS)s"; \
	  $(FUZZ_CARGO) fuzz run $$t fuzz/corpus/$$t fuzz/seeds/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf bundles/*/rootfs bundles/*/rootfs.tmp
