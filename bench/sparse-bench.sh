#!/usr/bin/env bash
# Sparse-disk benchmark (issue 15: cost grows with a disk's data, not its size):
#  - full backup of an empty 1 TiB qcow2, then an incremental after a 1 MiB write (dirty bitmap b0);
#  - full backup of a 100 GiB qcow2 holding 2 GiB of random data (8 ranges of 256 MiB), against
#    `nbdcopy -> null:` (the read ceiling);
# each the whole `jbackup` command (JVM start included), served by qemu-nbd -r -A over a Unix socket.
# Prints medians over ROUNDS rounds: wall seconds, peak RSS (/usr/bin/time), CPU seconds (user+sys) per GB of
# data read. Usage: bench/sparse-bench.sh [WORKDIR] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
work=${1:-/tmp/jbackup-sparse-bench}
rounds=${2:-3}
J=$top/distribution/bin/jbackup
ls "$top"/target/jbackup-*.jar >/dev/null 2>&1 || (cd "$top" && mvn -q -B package -DskipTests)
mkdir -p "$work"
sock=$work/nbd.sock
uri="nbd+unix:///?socket=$sock"
serve() { rm -f "$sock"; qemu-nbd -r -t -f qcow2 -A "$@" -k "$sock" & qpid=$!; while [ ! -S "$sock" ]; do sleep 0.05; done; }
stop() { kill $qpid; wait $qpid 2>/dev/null || true; }
# prints "wall_s peak_rss_kib cpu_s"
timed() { /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
          awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$work/time"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
col() { cut -d' ' -f"$1" <"$2" | median; }

# images
if [ ! -f "$work/data100g.qcow2" ]; then
  rm -f "$work/data100g.raw"; truncate -s 100G "$work/data100g.raw"
  for i in 0 1 2 3 4 5 6 7; do   # 256 MiB of random data every 12.5 GiB
    dd if=/dev/urandom of="$work/data100g.raw" bs=1M count=256 seek=$((i * 12800)) conv=notrunc status=none
  done
  qemu-img convert -f raw -O qcow2 "$work/data100g.raw" "$work/data100g.qcow2"; rm -f "$work/data100g.raw"
fi

: >"$work/full1t.t"; : >"$work/inc1t.t"; : >"$work/full100.t"; : >"$work/null100.t"
for r in $(seq "$rounds"); do
  rm -f "$work/empty1t.qcow2"; qemu-img create -q -f qcow2 "$work/empty1t.qcow2" 1T
  qemu-img bitmap --add "$work/empty1t.qcow2" b0
  rm -rf "$work/repo"; "$J" init --repo "$work/repo" >/dev/null
  serve "$work/empty1t.qcow2"
  timed "$J" full --repo "$work/repo" --disk d --source "$uri" --json >>"$work/full1t.t"; stop
  qemu-io -f qcow2 -c 'write -P 0x55 512G 1M' "$work/empty1t.qcow2" >/dev/null
  serve "$work/empty1t.qcow2" -B b0
  timed "$J" incremental --repo "$work/repo" --disk d --bitmap b0 --source "$uri" --json >>"$work/inc1t.t"; stop
  grep -q '"bytesRead" *: *1048576' "$work/out" || { echo "incremental read an unexpected amount:"; cat "$work/out"; }

  rm -rf "$work/repo"; "$J" init --repo "$work/repo" >/dev/null
  serve "$work/data100g.qcow2"
  nbdcopy "$uri" null:   # warm the page cache
  timed "$J" full --repo "$work/repo" --disk d --source "$uri" --json >>"$work/full100.t"
  timed nbdcopy "$uri" null: >>"$work/null100.t"
  stop
done
gb=$(echo "scale=3; 2 * 1.073741824" | bc)
echo "median of $rounds rounds ($(date -u +%F), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '  empty 1 TiB full             %6s s  peak RSS %4d MiB  CPU %s s\n' "$(col 1 "$work/full1t.t")" $(( $(col 2 "$work/full1t.t") / 1024 )) "$(col 3 "$work/full1t.t")"
printf '  empty 1 TiB incr. of 1 MiB   %6s s  peak RSS %4d MiB  CPU %s s\n' "$(col 1 "$work/inc1t.t")" $(( $(col 2 "$work/inc1t.t") / 1024 )) "$(col 3 "$work/inc1t.t")"
f=$(col 1 "$work/full100.t"); n=$(col 1 "$work/null100.t"); c=$(col 3 "$work/full100.t")
printf '  100 GiB, 2 GiB data, full    %6s s  peak RSS %4d MiB  CPU %s s = %s CPU s/GB\n' "$f" $(( $(col 2 "$work/full100.t") / 1024 )) "$c" "$(echo "scale=2; $c / $gb" | bc)"
printf '  nbdcopy -> null:             %6s s  -> jbackup/nbdcopy %s x\n' "$n" "$(echo "scale=2; $f / $n" | bc)"
