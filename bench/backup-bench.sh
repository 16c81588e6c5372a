#!/usr/bin/env bash
# Backup benchmark on the realistic dataset (../shared/bench/make-dataset.sh):
#  - full backup of base.qcow2 (day-3 content, 2 GiB disk) through qemu-nbd -r -A, against
#    `nbdcopy | zstd -1 -T2` (what users script today) and `nbdcopy -> null:` (the read ceiling);
#  - incremental backups of the day-2 and day-3 changes (bitmaps b1, b2), against reading just the dirty
#    extents with python3-libnbd (bench/dirty-read.py);
#  - restores of the chain compared by SHA-256 with the day raws, and restore time against qemu-img convert.
# Prints medians over ROUNDS interleaved rounds, ratios and peak RSS. Usage: bench/backup-bench.sh [DATASET_DIR] [ROUNDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
data=${1:-$top/bench/out/dataset}
rounds=${2:-3}
work=$top/bench/out/backup
J=$top/distribution/bin/jbackup
[ -f "$top/target/lib/picocli-4.7.7.jar" ] || (cd "$top" && mvn -q -B package -DskipTests)
[ -f "$data/.complete" ] || "$top/../shared/bench/make-dataset.sh" "$data" 2G >/dev/null
rm -rf "$work"; mkdir -p "$work"
sock=$work/nbd.sock
serve() { rm -f "$sock"; qemu-nbd -r -t -f qcow2 -A "$@" -k "$sock" & qpid=$!; while [ ! -S "$sock" ]; do sleep 0.05; done; }
stop() { kill $qpid; wait $qpid 2>/dev/null || true; }
uri="nbd+unix:///?socket=$sock"
# wall seconds and peak RSS (KiB) of a command: prints "secs rss"
timed() { /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; cat "$work/time"; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

: >"$work/full.t"; : >"$work/zstd.t"; : >"$work/null.t"; : >"$work/rss.t"
for r in $(seq "$rounds"); do
  rm -rf "$work/repo"; "$J" init --repo "$work/repo" >/dev/null
  serve "$data/base.qcow2"
  nbdcopy "$uri" null:   # warm the page cache
  read -r s m < <(timed "$J" full --repo "$work/repo" --disk vda --source "$uri"); echo "$s" >>"$work/full.t"; echo "$m" >>"$work/rss.t"
  read -r s m < <(timed sh -c "nbdcopy '$uri' - | zstd -1 -T2 -q -o /dev/null -f"); echo "$s" >>"$work/zstd.t"
  read -r s m < <(timed nbdcopy "$uri" null:); echo "$s" >>"$work/null.t"
  stop
done
full=$(median <"$work/full.t"); zs=$(median <"$work/zstd.t"); nul=$(median <"$work/null.t"); rss=$(median <"$work/rss.t")
echo "full backup of base.qcow2 (2 GiB, 1.31 GB allocated), median of $rounds:"
echo "  jbackup full            ${full} s   peak RSS $((rss/1024)) MiB"
echo "  nbdcopy | zstd -1 -T2   ${zs} s   -> jbackup/zstd-pipe time ratio $(echo "scale=2; $full/$zs" | bc)"
echo "  nbdcopy -> null:        ${nul} s   -> jbackup reaches $(echo "scale=0; 100*$nul/$full" | bc)% of the read ceiling's rate"
tail -1 "$work/out"

# Incremental chain: full(day1) -> inc(day2, b1) -> inc(day3, b2)
: >"$work/inc.t"; : >"$work/floor.t"
for r in $(seq "$rounds"); do
  rm -rf "$work/chain"; "$J" init --repo "$work/chain" >/dev/null
  serve "$data/base.day1.qcow2"; "$J" full --repo "$work/chain" --disk vda --source "$uri" --json >"$work/b1.json"; stop
  serve "$data/base.day2.qcow2" -B b1
  read -r s m < <(timed "$J" incremental --repo "$work/chain" --disk vda --bitmap b1 --source "$uri" --json); cp "$work/out" "$work/b2.json"
  read -r f m2 < <(timed /usr/bin/python3 "$here/dirty-read.py" "$uri" b1)
  stop
  serve "$data/base.qcow2" -B b2
  read -r s3 m3 < <(timed "$J" incremental --repo "$work/chain" --disk vda --bitmap b2 --source "$uri" --json); cp "$work/out" "$work/b3.json"
  read -r f3 m4 < <(timed /usr/bin/python3 "$here/dirty-read.py" "$uri" b2)
  stop
  echo "$s $s3" >>"$work/inc.t"; echo "$f $f3" >>"$work/floor.t"
done
i2=$(cut -d' ' -f1 <"$work/inc.t" | median); i3=$(cut -d' ' -f2 <"$work/inc.t" | median)
f2=$(cut -d' ' -f1 <"$work/floor.t" | median); f3=$(cut -d' ' -f2 <"$work/floor.t" | median)
echo "incremental backups (whole command, JVM start included), median of $rounds:"
echo "  day2 (b1): jbackup ${i2} s, dirty-extent read floor ${f2} s, ratio $(echo "scale=2; $i2/$f2" | bc)"
echo "  day3 (b2): jbackup ${i3} s, dirty-extent read floor ${f3} s, ratio $(echo "scale=2; $i3/$f3" | bc)"

# Restores: every backup of the chain must equal its day raw
n=1
for j in b1 b2 b3; do
  id=$(/usr/bin/python3 -c "import json,sys; print(json.load(open('$work/$j.json'))['disks'][0]['backupId'])")
  read -r s m < <(timed "$J" restore --repo "$work/chain" --disk vda --backup "$id" --to "$work/restore$n.raw")
  got=$(sha256sum "$work/restore$n.raw" | cut -d' ' -f1); want=$(grep " day$n.raw" "$data/SHA256SUMS" | cut -d' ' -f1)
  [ "$got" = "$want" ] && ok=OK || ok=MISMATCH
  echo "  restore day$n: ${s} s, peak RSS $((m/1024)) MiB, sha256 $ok"
  [ "$ok" = OK ] || exit 1
  rm -f "$work/restore$n.raw"; n=$((n+1))
done
read -r s m < <(timed qemu-img convert -O raw "$data/base.qcow2" "$work/convert.raw")
echo "  qemu-img convert -O raw of base.qcow2: ${s} s"
rm -f "$work/convert.raw"
