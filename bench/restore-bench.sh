#!/usr/bin/env bash
# Restore and serve of the day-2 backup of the realistic dataset (issue 15), against what users script today.
#
#   bench/restore-bench.sh [DATASET_DIR] [ROUNDS]     (default bench/out/dataset, 5 rounds)
#
# The repository: a full backup of base.day1.qcow2, then an incremental of base.day2.qcow2 through bitmap b1 (as in
# backup-bench.sh), made once per run. Jobs, interleaved round by round, median of ROUNDS:
#   restore   jbackup restore --backup DAY2 --to NEW.raw (whole command: JVM start, every chunk verified, fsync)
#   zstd -d   zstd -d --sparse of a `nbdcopy | zstd -1 -T2` stream of day 2 (made once; no fsync)
#   serve     jbackup serve started cold, then nbdcopy 'nbd+unix:///vda@DAY2?socket=S' null: (start included;
#             cold: every chunk is read from its pack, verified and decompressed once, as nbdcopy reads it)
#   qemu-nbd  qemu-nbd -r -t -f raw day2.raw started cold, then nbdcopy null: (day2.raw in the page cache)
# Prints the wall seconds, the ratios (restore / zstd -d: target <= 1; qemu-nbd time / serve time: target >= 0.8),
# the peak RSS and the CPU seconds (user + sys, the server's own for the serve jobs) per GB of disk image (2 GiB).
# Env: WORK (bench/out/restore), JBACKUP_OPTS (JVM options; default: the launcher's), BASE (another checkout, built:
#      its restore and serve run in the same rounds too, as "restore@base" and "serve@base", for before/after).
# The machine may be shared with other jobs: compare medians of interleaved runs, not single runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
data=${1:-$top/bench/out/dataset}
rounds=${2:-5}
work=${WORK:-$top/bench/out/restore}
J=$top/distribution/bin/jbackup
[ -f "$data/.complete" ] || { echo "no dataset in $data (see ../shared/bench/make-dataset.sh)" >&2; exit 1; }
ls "$top"/target/jbackup-*.jar >/dev/null 2>&1 || (cd "$top" && mvn -q -B package -DskipTests)
for t in qemu-nbd nbdcopy zstd bc python3; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done
rm -rf "$work"; mkdir -p "$work"
sock=$work/nbd.sock
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
await() { for _ in $(seq 600); do [ -S "$1" ] && return; sleep 0.01; done; echo "no socket $1" >&2; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
qserve() { rm -f "$sock"; qemu-nbd -r -t -A -f qcow2 "$@" -k "$sock" >/dev/null 2>&1 & q=$!; pids+=("$q"); await "$sock"; }
qstop() { kill "$q"; wait "$q" 2>/dev/null || true; }
uri="nbd+unix:///?socket=$sock"
gb=$(echo "$(stat -c %s "$data/day2.raw") / 1000000000" | bc -l)

# ---- the repository and the zstd stream
"$J" init --repo "$work/repo" >/dev/null
qserve "$data/base.day1.qcow2"; "$J" full --repo "$work/repo" --disk vda --source "$uri" -q; qstop
qserve "$data/base.day2.qcow2" -B b1
id=$("$J" incremental --repo "$work/repo" --disk vda --bitmap b1 --source "$uri" --json \
  | python3 -c "import json,sys; print(json.load(sys.stdin)['disks'][0]['backupId'])")
nbdcopy "$uri" - | zstd -1 -T2 -q -f -o "$work/day2.zst"
qstop
want=$(grep ' day2.raw' "$data/SHA256SUMS" | cut -d' ' -f1)
cat "$data/day2.raw" "$work/day2.zst" "$work"/repo/packs/*/* >/dev/null 2>&1 || true # page cache, like the others

# a command's "wall user sys rssKiB"
timed() { /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" \
  || { cat "$work/err" >&2; exit 1; }; cat "$work/time"; }
# a server started cold plus one nbdcopy to null: "wall cpu rssKiB" (cpu and rss of the server process)
served() { # served URI_PATH CMD...
  local path=$1; shift
  local t0 t1; rm -f "$sock"; t0=$(date +%s.%N)
  "$@" >"$work/srv.log" 2>&1 & local p=$!; pids+=("$p")
  await "$sock"
  nbdcopy "nbd+unix://$path?socket=$sock" null: || { cat "$work/srv.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  local tick; tick=$(getconf CLK_TCK)
  local cpu; cpu=$(awk -v t="$tick" '{print ($14 + $15) / t}' "/proc/$p/stat")
  local rss; rss=$(awk '/VmHWM/ {print $2}' "/proc/$p/status")
  kill "$p"; wait "$p" 2>/dev/null || true
  echo "$(printf '%.2f' "$(echo "$t1 - $t0" | bc -l)") $cpu $rss"
}

B=${BASE:+$BASE/distribution/bin/jbackup}
for f in restore zstd serve qnbd brestore bserve; do : >"$work/$f.t"; done
for r in $(seq "$rounds"); do
  if [ -n "$B" ]; then
    rm -f "$work/x.raw"
    timed "$B" restore --repo "$work/repo" --disk vda --backup "$id" --to "$work/x.raw" >>"$work/brestore.t"
    rm -f "$work/x.raw"
    served "/vda@$id" "$B" serve --repo "$work/repo" --socket "$sock" >>"$work/bserve.t"
  fi
  rm -f "$work/x.raw"
  timed "$J" restore --repo "$work/repo" --disk vda --backup "$id" --to "$work/x.raw" >>"$work/restore.t"
  if [ "$r" = 1 ]; then
    got=$(sha256sum "$work/x.raw" | cut -d' ' -f1)
    [ "$got" = "$want" ] || { echo "restore MISMATCH: $got, want $want" >&2; exit 1; }
  fi
  rm -f "$work/x.raw"
  rm -f "$work/z.raw"
  timed zstd -d --sparse -q -f "$work/day2.zst" -o "$work/z.raw" >>"$work/zstd.t"
  rm -f "$work/z.raw"
  served "/vda@$id" "$J" serve --repo "$work/repo" --socket "$sock" >>"$work/serve.t"
  served "/" qemu-nbd -r -t -f raw -k "$sock" "$data/day2.raw" >>"$work/qnbd.t"
done

col() { awk -v c="$2" '{print $c}' "$work/$1.t" | median; }
cpu2() { awk '{print $2 + $3}' "$work/$1.t" | median; }
rs=$(col restore 1); zs=$(col zstd 1); sv=$(col serve 1); qn=$(col qnbd 1)
printf 'restore of the day-2 backup (%s), median of %s, %s, %s\n' "$id" "$rounds" "$(date -u +%F)" "$(nproc) CPUs"
printf '  %-10s %6s s  peak RSS %5s MiB  CPU %5s s/GB\n' \
  "restore" "$rs" "$(( $(col restore 4) / 1024 ))" "$(echo "scale=2; $(cpu2 restore) / $gb" | bc)" \
  "zstd -d" "$zs" "$(( $(col zstd 4) / 1024 ))" "$(echo "scale=2; $(cpu2 zstd) / $gb" | bc)" \
  "serve" "$sv" "$(( $(col serve 3) / 1024 ))" "$(echo "scale=2; $(col serve 2) / $gb" | bc)" \
  "qemu-nbd" "$qn" "$(( $(col qnbd 3) / 1024 ))" "$(echo "scale=2; $(col qnbd 2) / $gb" | bc)"
if [ -n "$B" ]; then
  brs=$(col brestore 1); bsv=$(col bserve 1)
  printf '  %-10s %6s s  peak RSS %5s MiB  CPU %5s s/GB\n' \
    "restore@base" "$brs" "$(( $(col brestore 4) / 1024 ))" "$(echo "scale=2; $(cpu2 brestore) / $gb" | bc)" \
    "serve@base" "$bsv" "$(( $(col bserve 3) / 1024 ))" "$(echo "scale=2; $(col bserve 2) / $gb" | bc)"
  echo "  base: restore / zstd -d $(echo "scale=2; $brs / $zs" | bc), serve / qemu-nbd $(echo "scale=2; $qn / $bsv" | bc)"
fi
echo "  restore / zstd -d time:           $(echo "scale=2; $rs / $zs" | bc)  (target <= 1)"
echo "  serve throughput / qemu-nbd's:    $(echo "scale=2; $qn / $sv" | bc)  (target >= 0.8)"
