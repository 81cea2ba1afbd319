#!/bin/bash
# make run-web: run bundles/web (busybox httpd, annotation dev.hull.ports
# "8080:80") and fetch its page through the published port. Everything runs
# in a network namespace made for it and deleted afterwards, so the bridge,
# veth and rules never touch the machine's own network.
set -euo pipefail
HULL=${1:-$(pwd)/target/release/hull}
BUNDLE=$(cd "$(dirname "$0")" && pwd)
NS=hull-web-$$
ID=web-$$
TMP=$(mktemp -d)
hull() { nsenter --net=/run/netns/$NS "$HULL" --root "$TMP/state" "$@"; }
cleanup() {
	hull delete --force "$ID" 2>/dev/null || true
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
hull run -d --net-root "$TMP/net" -b "$BUNDLE" "$ID" >/dev/null
echo "container $ID: $(hull state "$ID" | grep '"ip"' | tr -d ' ,')"
echo "hull port $ID: $(hull port "$ID")"
for _ in $(seq 50); do
	if page=$(nsenter --net=/run/netns/$NS timeout 2 busybox wget -q -O - http://127.0.0.1:8080/ 2>/dev/null); then
		echo "GET http://127.0.0.1:8080/ -> $page"
		exit 0
	fi
	sleep 0.1
done
echo "run-web: no answer on 127.0.0.1:8080" >&2
exit 1
