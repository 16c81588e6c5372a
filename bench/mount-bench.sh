#!/usr/bin/env bash
# File-level restore benchmark on the realistic dataset (../shared/bench/make-dataset.sh): read every file of the
# day 2 backup (full of day 1 + incremental of day 2) through `jbackup mount` (NBD server -> nbdfuse -> loop ->
# ext4) with `find MOUNTPOINT -type f -print0 | xargs -0 cat > /dev/null`, against the same over a read-only loop
# mount of the day 2 raw image. Each round mounts afresh (empty chunk cache, no page cache of the loop devices); the
# backing files (pack files, the raw image) stay in the host's page cache unless drop_caches is allowed. Prints the
# median times, their ratio and the bytes the mount process read from the repository (rchar of /proc/PID/io during
# the walk) against the bytes of the files read. Needs root. Usage: bench/mount-bench.sh [DATASET_DIR] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
data=${1:-$top/bench/out/dataset}
rounds=${2:-3}
work=$top/bench/out/mount
J=$top/distribution/bin/jbackup
[ "$(id -u)" -eq 0 ] || { echo "mount-bench: run as root (mount, loop devices, FUSE)" >&2; exit 2; }
[ -f "$top/target/lib/picocli-4.7.7.jar" ] || (cd "$top" && mvn -q -B package -DskipTests)
[ -f "$data/.complete" ] || "$top/../shared/bench/make-dataset.sh" "$data" 2G >/dev/null
mkdir -p "$work"
mp=$work/mnt; raw=$work/raw
cleanup() {
  "$J" umount -q "$mp" 2>/dev/null || true
  mountpoint -q "$raw" && umount "$raw" || true
}
trap cleanup EXIT
sock=$work/nbd.sock
serve() { rm -f "$sock"; qemu-nbd -r -t -f qcow2 -A "$@" -k "$sock" & qpid=$!; while [ ! -S "$sock" ]; do sleep 0.05; done; }
stop() { kill $qpid; wait $qpid 2>/dev/null || true; }
uri="nbd+unix:///?socket=$sock"
if [ ! -f "$work/repo/.bench-ready" ]; then
  rm -rf "$work/repo"; "$J" init --repo "$work/repo" -q
  serve "$data/base.day1.qcow2"; "$J" full --repo "$work/repo" --disk vda --source "$uri" -q; stop
  serve "$data/base.day2.qcow2" -B b1; "$J" incremental --repo "$work/repo" --disk vda --bitmap b1 --source "$uri" -q; stop
  touch "$work/repo/.bench-ready"
fi
offset=$(( $(partx -g -o START -n 1 "$data/day2.raw") * 512 ))
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null && echo dropped || echo kept; }
walk() { find "$1" -type f -print0 | xargs -0 cat > /dev/null; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); echo "$t1 - $t0" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
: >"$work/mount.t"; : >"$work/raw.t"; : >"$work/rchar"
caches=kept
for r in $(seq "$rounds"); do
  caches=$(drop)
  pid=$("$J" mount -q --json --repo "$work/repo" --disk vda --daemon "$mp" | sed -n 's/^  "pid" : \([0-9]*\),$/\1/p')
  before=$(awk '/^rchar/ {print $2}' "/proc/$pid/io")
  secs walk "$mp/1" >>"$work/mount.t"
  after=$(awk '/^rchar/ {print $2}' "/proc/$pid/io")
  echo $((after - before)) >>"$work/rchar"
  "$J" umount -q "$mp"
  caches=$(drop)
  mkdir -p "$raw"; mount -o ro,noload,loop,offset="$offset" "$data/day2.raw" "$raw"
  secs walk "$raw" >>"$work/raw.t"
  files_bytes=$(find "$raw" -type f -print0 | du -cb --files0-from=- | tail -1 | cut -f1)
  umount "$raw"
done
m=$(median <"$work/mount.t"); w=$(median <"$work/raw.t"); rc=$(median <"$work/rchar")
stored=$(du -sb "$work/repo/packs" | cut -f1)
echo "find -type f | xargs cat over the day 2 backup of $(basename "$data") (median of $rounds; page cache $caches):"
echo "  jbackup mount (nbdfuse + loop)   ${m} s"
echo "  loop mount of day2.raw           ${w} s   -> mount/raw time ratio $(echo "scale=2; $m/$w" | bc)"
echo "  files read: $((files_bytes/1048576)) MiB; read from the repository: $((rc/1048576)) MiB (packs hold $((stored/1048576)) MiB)"
