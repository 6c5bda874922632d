#!/usr/bin/env bash
# make demo: start the local stack (MinIO + STAC API + sample imagery), mount
# it, say what to try, and tear everything down on Ctrl-C.
set -euo pipefail
BIN=${1:-bin/prescientfs}
MNT=${2:-mnt}
STATE=.demo
mkdir -p "$STATE" "$MNT"
rm -f "$STATE/ready" "$STATE/env.sh"

go build -o "$STATE/teststack" ./e2e/cmd/teststack
"$STATE/teststack" -dir "$STATE" -env-out "$STATE/env.sh" -ready-file "$STATE/ready" >"$STATE/stack.log" 2>&1 &
STACK=$!

cleanup() {
	trap - INT TERM EXIT
	echo
	echo "tearing down..."
	"$BIN" unmount "$MNT" 2>/dev/null || true
	kill "$STACK" 2>/dev/null || true
	wait "$STACK" 2>/dev/null || true
	echo "done."
}
trap cleanup INT TERM EXIT

for _ in $(seq 1 600); do
	[ -f "$STATE/ready" ] && break
	kill -0 "$STACK" 2>/dev/null || { echo "the test stack failed to start:"; tail -20 "$STATE/stack.log"; exit 1; }
	sleep 0.2
done
[ -f "$STATE/ready" ] || { echo "the test stack was not ready after 2 minutes"; exit 1; }

# shellcheck disable=SC1091
. "$STATE/env.sh"
"$BIN" mount --stac-url "$STAC_URL" --log-file "$STATE/mount.log" "$MNT"

ITEM=$(ls "$MNT/sentinel-demo" | grep -v collection.json | head -1)
cat <<MSG

prescientfs is serving the local test catalog at ./$MNT (log: $STATE/mount.log).
Try, in another terminal:

  ls $MNT
  ls -l $MNT/sentinel-demo/$ITEM
  gdalinfo $MNT/sentinel-demo/$ITEM/visual.tif
  gdalinfo -checksum $MNT/sentinel-demo/$ITEM/B04.tif
  cat $MNT/sentinel-demo/$ITEM/item.json
  find $MNT/many-items | head

Press Ctrl-C to unmount and stop the stack.
MSG
while kill -0 "$STACK" 2>/dev/null; do sleep 1; done
