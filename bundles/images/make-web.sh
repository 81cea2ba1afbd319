#!/usr/bin/env bash
# Build a small two-layer image, offline, as `docker save` would write it (a
# docker-archive: manifest.json, the config, a tar per layer):
#   layer 1: the busybox rootfs of bundles/hello
#   layer 2: a web page and its server's command
# Usage: make-web.sh ROOTFS OUT.tar  (`make image-web` writes target/images/web.tar)
set -euo pipefail
rootfs=$1 out=$2
work=$(mktemp -d)
trap 'rm -rf --one-file-system "$work"' EXIT
mkdir -p "$work/l1" "$work/l2" "$work/app/www"
# Fixed owners and times: the same rootfs gives the same image id.
tarc() { tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$1" -cf "$2" .; }
tarc "$rootfs" "$work/l1/layer.tar"
echo '<h1>Hello from a hull image</h1>' >"$work/app/www/index.html"
tarc "$work/app" "$work/l2/layer.tar"
d1=$(sha256sum "$work/l1/layer.tar" | cut -d' ' -f1)
d2=$(sha256sum "$work/l2/layer.tar" | cut -d' ' -f1)
cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","created":"2026-01-01T00:00:00Z",
 "config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
           "Cmd":["httpd","-f","-v","-p","80","-h","/www"],"WorkingDir":"/www",
           "ExposedPorts":{"80/tcp":{}},"StopSignal":"SIGTERM",
           "Labels":{"org.opencontainers.image.title":"web"}},
 "rootfs":{"type":"layers","diff_ids":["sha256:$d1","sha256:$d2"]},
 "history":[{"created_by":"busybox rootfs"},{"created_by":"web page"}]}
JSON
cfg=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/$cfg.json"
printf '[{"Config":"%s.json","RepoTags":["web:latest"],"Layers":["l1/layer.tar","l2/layer.tar"]}]' "$cfg" >"$work/manifest.json"
mkdir -p "$(dirname "$out")"
tar --owner=0 --group=0 --numeric-owner -C "$work" -cf "$out.tmp" manifest.json "$cfg.json" l1 l2
mv "$out.tmp" "$out"
echo "image: wrote $out (web:latest, 2 layers)"
