#!/usr/bin/env bash
# Throughput of jbackup's NBD server against qemu-nbd serving the same raw file, read with nbdcopy to null:.
#
#   bench/server-bench.sh [RAW_FILE]        (default: ../shared or /work/data/ds2g/day1.raw, else a generated
#                                            1 GiB sparse file of random and zero areas under $WORK)
# Env: ROUNDS (default 5), WARMUP (untimed runs of each first, default 8: the JIT needs ~6 runs to settle on 2 busy vCPUs), CONNS (nbdcopy --connections; default: nbdcopy's own, 4 with multi-conn),
#      WORK (scratch dir, default /tmp/jbackup-server-bench), JAVA_OPTS, IO_THREADS (server event loops).
#
# Both servers are started once, read-only, and allow several connections (qemu-nbd -e 16 so that it
# advertises multi-conn as ours does). Each round runs nbdcopy against qemu-nbd and against jbackup,
# alternating which goes first; the page cache is warmed before. Prints per-run wall times and the ratio of
# medians (qemu-nbd time / jbackup time = jbackup throughput relative to qemu-nbd; target >= 0.8).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
WORK=${WORK:-/tmp/jbackup-server-bench}
mkdir -p "$WORK"

FILE=${1:-}
if [ -z "$FILE" ]; then
  for f in ../shared/data/ds2g/day1.raw /work/data/ds2g/day1.raw; do
    [ -f "$f" ] && FILE=$f && break
  done
fi
if [ -z "$FILE" ]; then
  FILE=$WORK/random-zero.raw
  if [ ! -f "$FILE" ]; then
    echo "generating $FILE (1 GiB: 8 MiB random / 8 MiB hole / 4 MiB zeroes written / ...)" >&2
    truncate -s 1G "$FILE"
    for i in $(seq 0 31); do
      dd if=/dev/urandom of="$FILE" bs=1M seek=$((i * 32)) count=8 conv=notrunc status=none
      dd if=/dev/zero of="$FILE" bs=1M seek=$((i * 32 + 16)) count=4 conv=notrunc status=none
      dd if=/dev/urandom of="$FILE" bs=1M seek=$((i * 32 + 20)) count=6 conv=notrunc status=none
    done
  fi
fi
SIZE=$(stat -c %s "$FILE")
echo "file: $FILE ($SIZE bytes, $(du -k "$FILE" | cut -f1) KiB allocated)"

if [ ! -f target/test-classes/io/jbackup/nbd/server/BenchServer.class ] || [ ! -d target/lib ]; then
  mvn -q -B -o package -DskipTests
fi
CP="target/classes:target/test-classes:target/lib/*"

QSOCK=$WORK/qemu.sock
JSOCK=$WORK/jbackup.sock
rm -f "$QSOCK" "$JSOCK"
qemu-nbd -r -t -e 16 -f raw -k "$QSOCK" "$FILE" >"$WORK/qemu-nbd.log" 2>&1 &
QPID=$!
# shellcheck disable=SC2086
java ${JAVA_OPTS:-} -cp "$CP" io.jbackup.nbd.server.BenchServer "$JSOCK" "$FILE" ${IO_THREADS:-} >"$WORK/jbackup.log" 2>&1 &
JPID=$!
cleanup() { kill "$QPID" "$JPID" 2>/dev/null || true; wait "$QPID" "$JPID" 2>/dev/null || true; }
trap cleanup EXIT
for s in "$QSOCK" "$JSOCK"; do
  for _ in $(seq 200); do [ -S "$s" ] && break; sleep 0.05; done
  [ -S "$s" ] || { echo "server did not create $s" >&2; cat "$WORK"/*.log >&2; exit 1; }
done

cat "$FILE" >/dev/null
CONNARG=()
[ -n "${CONNS:-}" ] && CONNARG=(--connections="$CONNS")

run() { # $1 = socket; prints wall seconds
  local t0 t1
  t0=$(date +%s.%N)
  nbdcopy "${CONNARG[@]}" "nbd+unix:///?socket=$1" null:
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

# warm-up: untimed runs (the JIT compiles the server's hot paths; a serving process is long-lived)
for _ in $(seq "${WARMUP:-8}"); do run "$JSOCK" >/dev/null; run "$QSOCK" >/dev/null; done

Q=(); J=()
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then
    q=$(run "$QSOCK"); j=$(run "$JSOCK")
  else
    j=$(run "$JSOCK"); q=$(run "$QSOCK")
  fi
  Q+=("$q"); J+=("$j")
  printf 'round %d: qemu-nbd %.3f s  jbackup %.3f s  ratio %.2f\n' "$r" "$q" "$j" "$(echo "$q / $j" | bc -l)"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mq=$(median "${Q[@]}"); mj=$(median "${J[@]}")
printf 'median: qemu-nbd %.3f s (%.0f MB/s of disk)  jbackup %.3f s (%.0f MB/s)  ratio %.2f (target >= 0.80)\n' \
  "$mq" "$(echo "$SIZE / $mq / 1000000" | bc -l)" "$mj" "$(echo "$SIZE / $mj / 1000000" | bc -l)" "$(echo "$mq / $mj" | bc -l)"
