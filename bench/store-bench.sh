#!/bin/sh
# Chunk store benchmark: put (new, duplicate, zero data) and get, in chunks/s and MB/s, beside the raw speed of
# sha256sum and zstd -1 on the same data. Usage: bench/store-bench.sh [SIZE_MIB=256] [CHUNK_SIZE=1048576]
# Needs a built project (mvn -q -B -o test-compile runs first) and the zstd and sha256sum tools.
set -eu
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-256}
CHUNK=${2:-1048576}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jbackup-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

# Data that looks like a system disk: binaries, libraries and text from /usr, in a stable order.
find /usr/lib /usr/share /usr/bin -xdev -type f -size +8k 2>/dev/null | LC_ALL=C sort | xargs cat 2>/dev/null \
  | head -c $((SIZE_MIB * 1048576)) > "$WORK/data.bin" || true
BYTES=$(stat -c %s "$WORK/data.bin")

mvn -q -B -o test-compile dependency:build-classpath -Dmdep.outputFile="$WORK/cp.txt" >/dev/null

rate() { # label bytes start_ns end_ns
  awk -v l="$1" -v b="$2" -v s="$3" -v e="$4" 'BEGIN { t=(e-s)/1e9; printf "%-28s %12s %10.1f\n", l, "", b/1e6/t }'
}
cat "$WORK/data.bin" > /dev/null  # page cache
echo "tools on the same data ($BYTES bytes, single thread):"
s=$(date +%s%N); sha256sum "$WORK/data.bin" > /dev/null; e=$(date +%s%N); rate "sha256sum" "$BYTES" "$s" "$e"
s=$(date +%s%N); zstd -q -1 -c "$WORK/data.bin" > "$WORK/data.zst"; e=$(date +%s%N); rate "zstd -1" "$BYTES" "$s" "$e"
s=$(date +%s%N); zstd -q -3 -c "$WORK/data.bin" > /dev/null; e=$(date +%s%N); rate "zstd -3" "$BYTES" "$s" "$e"
s=$(date +%s%N); zstd -q -1 -T0 -c "$WORK/data.bin" > /dev/null; e=$(date +%s%N); rate "zstd -1 -T0 (all cores)" "$BYTES" "$s" "$e"
s=$(date +%s%N); zstd -q -d -c "$WORK/data.zst" > /dev/null; e=$(date +%s%N); rate "zstd -d" "$BYTES" "$s" "$e"
echo "zstd -1 ratio: $(awk -v a="$BYTES" -v b="$(stat -c %s "$WORK/data.zst")" 'BEGIN { printf "%.2fx", a/b }')"
echo
java -Xmx2g -cp "target/test-classes:target/classes:$(cat "$WORK/cp.txt")" io.jbackup.bench.StoreBench \
  "$WORK/data.bin" "$WORK" "$CHUNK" "${LEVELS:-1,3}" "${ENCRYPTIONS:-none,aes-256-gcm}"
