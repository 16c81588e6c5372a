#!/usr/bin/env bash
# Every performance goal of issue 15 in one run, each a ratio measured side by side with what a user would script
# instead, on the realistic dataset (../shared/bench/make-dataset.sh) and on sparse disks. Jobs alternate round by
# round; medians of ROUNDS (at least 5 for the record). Whole commands throughout: JVM start, repository open, every
# chunk verified, fsync.
#
#   bench/goals-bench.sh [DATASET_DIR] [ROUNDS]      (default bench/out/dataset, 5 rounds)
#
# Jobs (the sources are qemu-nbd -r -t -A on Unix sockets, page cache warm):
#   full        jbackup full of base.day1.qcow2          vs  nbdcopy URI - | zstd -1 -T2 > FILE        goal <= 0.8
#   incr        jbackup incremental --bitmap b1 of day 2 vs  jbackup --version + bench/dirty-read.py    goal <= 2
#   restore     jbackup restore of day 2 to a raw file   vs  zstd -d --sparse of day 2's zstd stream    goal <= 1
#   restore-nbd jbackup restore of day 2 to qemu-nbd on a new qcow2
#                                                        vs  nbdcopy day2.raw into the same kind of target goal <= 1
#   serve       jbackup serve started cold, then nbdcopy null: of day 2 (start included, every chunk decoded)
#                                                        vs  qemu-nbd -r of day2.raw, the same    throughput >= 0.8
#   --version, list (one small repository)                                                       goals 0.3 s, 0.5 s
#   1 TiB       full of an empty 1 TiB qcow2; incremental of 1 MiB written into it               goals 3 s, 2 s
#   100 GiB     full of a 100 GiB qcow2 holding 2 GiB of random data vs nbdcopy URI null:      goal <= 1.5
#   memory      once: full and restore (to a raw file) of a 100 GiB qcow2 holding 5 GiB of data
#               (2 GiB random, about 3 GiB of the dataset's day-1 disk)                           goal peak RSS <= 300 MiB
# Prints per job: median wall seconds, peak RSS, CPU seconds (user + sys; a server's own CPU for serve) per GB of
# data moved (the backup's bytes read, the restore's bytes written), then the ratios against their goals.
# Env: WORK (default bench/out/goals; the sparse images are kept there between runs), JBACKUP (another built
#      launcher to measure), SKIP_MEMORY=1 (leave out the 5 GiB memory job).
# The machine may be shared with other jobs: compare medians of interleaved rounds, and look at the load printed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
data=${1:-$top/bench/out/dataset}
rounds=${2:-5}
work=${WORK:-$top/bench/out/goals}
J=${JBACKUP:-$top/distribution/bin/jbackup}
[ -f "$data/.complete" ] || "$top/../shared/bench/make-dataset.sh" "$data" 2G >/dev/null
ls "$top"/target/jbackup-*.jar >/dev/null 2>&1 || (cd "$top" && mvn -q -B package -DskipTests)
for t in qemu-nbd qemu-img qemu-io nbdcopy zstd bc python3; do
  command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }
done
mkdir -p "$work"
rm -rf "$work"/repo* "$work"/*.raw "$work"/*.sock "$work"/*.t "$work"/*.srv "$work/tgt.qcow2"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
await() { for _ in $(seq 1000); do [ -S "$1" ] && return; sleep 0.01; done; echo "no socket $1" >&2; exit 1; }
src=$work/src.sock
suri="nbd+unix:///?socket=$src"
# qemu-nbd serving a source image (read-only, allocation depth) on $src
qserve() { rm -f "$src"; qemu-nbd -r -t -A "$@" -k "$src" >/dev/null 2>&1 & q=$!; pids+=("$q"); await "$src"; }
qstop() { kill "$q"; wait "$q" 2>/dev/null || true; }
# the inputs of the next job read into the page cache, for jbackup and the tool it is compared with alike: this VM
# runs DAMON with a "pageout" scheme (/sys/kernel/mm/damon: pages untouched for 60 s are reclaimed, page cache
# included), so an input read once per round is often cold again by the next one
warm() { cat "$@" >/dev/null 2>&1 || true; }
# a command's "wall cpu rssKiB" appended to $work/NAME.t (its stdout kept in $work/out)
timed() {
  local name=$1; shift
  # the previous job's dirty pages written back first (zstd -d and nbdcopy write through the page cache): else a
  # job can pay for their writeback, and such rounds took twice the CPU (the runs of 2026-12-07 02:52 UTC)
  sync
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  awk '{printf "%s %.2f %s\n", $1, $2 + $3, $4}' "$work/time" >>"$work/$name.t"
}
# a server started cold plus one nbdcopy of EXPORT_PATH to null:, "wall cpu rssKiB" (the server's cpu and rss)
served() {
  local name=$1 path=$2; shift 2
  local sock=$work/srv.sock t0 t1 p
  sync; rm -f "$sock"; t0=$(date +%s.%N)
  "$@" >"$work/srv.log" 2>&1 & p=$!; pids+=("$p")
  await "$sock"
  nbdcopy "nbd+unix://$path?socket=$sock" null: || { cat "$work/srv.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$(printf %.2f "$(echo "$t1 - $t0" | bc -l)") $(awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$p/stat") \
$(awk '/VmHWM/ {print $2}' "/proc/$p/status")" >>"$work/$name.t"
  kill "$p"; wait "$p" 2>/dev/null || true
}
# a writable qemu-nbd on a new qcow2 of SIZE as restore target, on $tgt
tgt=$work/tgt.sock
tserve() { rm -f "$tgt" "$work/tgt.qcow2"; qemu-img create -q -f qcow2 "$work/tgt.qcow2" "$1"
  qemu-nbd -t -f qcow2 -k "$tgt" "$work/tgt.qcow2" >/dev/null 2>&1 & t=$!; pids+=("$t"); await "$tgt"; }
# tstop [NAME]: stops the target; with NAME, appends its qemu-nbd's CPU seconds to $work/NAME.srv
tstop() { [ -z "${1:-}" ] || awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$t/stat" >>"$work/$1.srv"
  kill "$t"; wait "$t" 2>/dev/null || true; }
json() { python3 -c "import json,sys; d=json.load(open('$work/out')); print(d$1)"; }

# ---- the dataset's repository (day 1 full, day 2 incremental) and the zstd stream of day 2
"$J" init --repo "$work/repo" >/dev/null
qserve -f qcow2 "$data/base.day1.qcow2"
"$J" full --repo "$work/repo" --disk vda --source "$suri" --json >"$work/out"
fullgb=$(json "['disks'][0]['bytesRead'] / 1e9")
qstop
cp -a "$work/repo" "$work/repo-day1" # each round's incremental starts from the full alone
qserve -f qcow2 "$data/base.day2.qcow2" -B b1
"$J" incremental --repo "$work/repo" --disk vda --bitmap b1 --source "$suri" --json >"$work/out"
day2=$(json "['disks'][0]['backupId']")
incgb=$(json "['disks'][0]['bytesRead'] / 1e9")
nbdcopy "$suri" - | zstd -1 -T2 -q -f -o "$work/day2.zst"
qstop
restgb=$(python3 -c "print($(stat -c %s "$data/day2.raw") / 1e9)") # replaced by the restore's bytesWritten below
want=$(grep ' day2.raw' "$data/SHA256SUMS" | cut -d' ' -f1)
"$J" init --repo "$work/repo-small" >/dev/null # for `list`: one backup of a 16 MiB disk
qemu-img create -q -f qcow2 "$work/small.qcow2" 16M; qserve -f qcow2 "$work/small.qcow2"
"$J" full --repo "$work/repo-small" --disk a --source "$suri" -q; qstop

# ---- sparse images (kept in WORK between runs)
if [ ! -f "$work/data100g.qcow2" ]; then
  rm -f "$work/d.raw"; truncate -s 100G "$work/d.raw"
  for i in 0 1 2 3 4 5 6 7; do # 256 MiB of random data every 12.5 GiB
    dd if=/dev/urandom of="$work/d.raw" bs=1M count=256 seek=$((i * 12800)) conv=notrunc status=none
  done
  qemu-img convert -f raw -O qcow2 "$work/d.raw" "$work/data100g.qcow2"; rm -f "$work/d.raw"
fi
if [ -z "${SKIP_MEMORY:-}" ] && [ ! -f "$work/mem100g.qcow2" ]; then
  rm -f "$work/d.raw"; truncate -s 100G "$work/d.raw"
  for i in 0 1 2 3 4 5 6 7; do # 2 GiB of random data: 256 MiB every 6 GiB in the first half
    dd if=/dev/urandom of="$work/d.raw" bs=1M count=256 seek=$((i * 6144)) conv=notrunc status=none
  done
  for i in 0 1 2 3 4 5 6 7 8 9; do # about 3 GiB more: the dataset's day-1 disk in 512 MiB pieces, 58% of it data
    dd if="$data/day1.raw" of="$work/d.raw" bs=1M count=512 skip=$(( (i % 4) * 512 )) seek=$((51200 + i * 4096)) \
      conv=notrunc,sparse status=none
  done
  qemu-img convert -f raw -O qcow2 "$work/d.raw" "$work/mem100g.qcow2"; rm -f "$work/d.raw"
fi
cat "$data/day2.raw" "$work/day2.zst" "$data"/base.day*.qcow2 "$work/repo"/packs/*/* >/dev/null 2>&1 || true

# ---- the rounds
for r in $(seq "$rounds"); do
  echo "round $r of $rounds, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  # full backup vs nbdcopy | zstd
  qserve -f qcow2 "$data/base.day1.qcow2"
  rm -rf "$work/repo-full"; "$J" init --repo "$work/repo-full" >/dev/null
  warm "$data/base.day1.qcow2"
  timed full "$J" full --repo "$work/repo-full" --disk vda --source "$suri" -q
  warm "$data/base.day1.qcow2"
  timed full-zstd sh -c "nbdcopy '$suri' - | zstd -1 -T2 -q -f -o '$work/full.zst'"
  rm -f "$work/full.zst"
  qstop
  # incremental vs start-up + reading the dirty extents
  qserve -f qcow2 "$data/base.day2.qcow2" -B b1
  rm -rf "$work/repo-inc"; cp -a "$work/repo-day1" "$work/repo-inc"
  warm "$data/base.day2.qcow2"
  timed incr "$J" incremental --repo "$work/repo-inc" --disk vda --bitmap b1 --source "$suri" -q
  timed incr-version "$J" --version
  warm "$data/base.day2.qcow2"
  timed incr-read /usr/bin/python3 "$here/dirty-read.py" "$suri" b1 # python3-libnbd is for the system python
  qstop
  # restore to a raw file vs zstd -d --sparse
  rm -f "$work/x.raw"
  warm "$work"/repo/packs/*/*
  timed restore "$J" restore --repo "$work/repo" --disk vda --backup "$day2" --to "$work/x.raw" -q
  if [ "$r" = 1 ]; then
    got=$(sha256sum "$work/x.raw" | cut -d' ' -f1)
    [ "$got" = "$want" ] || { echo "restore MISMATCH: $got, want $want" >&2; exit 1; }
  fi
  rm -f "$work/x.raw"
  warm "$work/day2.zst"
  timed restore-zstd zstd -d --sparse -q -f "$work/day2.zst" -o "$work/z.raw"
  rm -f "$work/z.raw"
  # restore to an NBD target vs nbdcopy of the raw image into the same kind of target
  tserve 2G
  warm "$work"/repo/packs/*/*
  timed restore-nbd "$J" restore --repo "$work/repo" --disk vda --backup "$day2" --to "nbd+unix:///?socket=$tgt" --json
  restgb=$(json "['disks'][0]['bytesWritten'] / 1e9")
  tstop restore-nbd
  if [ "$r" = 1 ]; then
    qemu-img compare -q -f qcow2 -F raw "$work/tgt.qcow2" "$data/day2.raw" || { echo "NBD restore MISMATCH" >&2; exit 1; }
  fi
  tserve 2G
  warm "$data/day2.raw"
  timed restore-nbdcopy nbdcopy "$data/day2.raw" "nbd+unix:///?socket=$tgt"
  tstop restore-nbdcopy
  # serve vs qemu-nbd
  warm "$work"/repo/packs/*/*
  served serve "/vda@$day2" "$J" serve --repo "$work/repo" --socket "$work/srv.sock"
  warm "$data/day2.raw"
  served serve-qemu "/" qemu-nbd -r -t -f raw -k "$work/srv.sock" "$data/day2.raw"
  # start-up
  timed version "$J" --version
  timed list "$J" list --repo "$work/repo-small"
  # 1 TiB: empty full, then an incremental of 1 MiB
  rm -f "$work/empty1t.qcow2"; qemu-img create -q -f qcow2 "$work/empty1t.qcow2" 1T
  qemu-img bitmap --add "$work/empty1t.qcow2" b0
  rm -rf "$work/repo-1t"; "$J" init --repo "$work/repo-1t" >/dev/null
  qserve -f qcow2 "$work/empty1t.qcow2"
  timed tib-full "$J" full --repo "$work/repo-1t" --disk d --source "$suri" -q
  qstop
  qemu-io -f qcow2 -c 'write -P 0x55 512G 1M' "$work/empty1t.qcow2" >/dev/null
  qserve -f qcow2 "$work/empty1t.qcow2" -B b0
  timed tib-incr "$J" incremental --repo "$work/repo-1t" --disk d --bitmap b0 --source "$suri" --json
  [ "$(json "['disks'][0]['bytesRead']")" = 1048576 ] || { echo "1 TiB incremental read:"; cat "$work/out"; exit 1; }
  qstop
  # 100 GiB with 2 GiB of random data vs nbdcopy null:
  rm -rf "$work/repo-100"; "$J" init --repo "$work/repo-100" >/dev/null
  qserve -f qcow2 "$work/data100g.qcow2"
  timed g100 "$J" full --repo "$work/repo-100" --disk d --source "$suri" -q
  timed g100-null nbdcopy "$suri" null:
  qstop
done
if [ -z "${SKIP_MEMORY:-}" ]; then
  echo "memory job (once), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  rm -rf "$work/repo-mem"; "$J" init --repo "$work/repo-mem" >/dev/null
  qserve -f qcow2 "$work/mem100g.qcow2"
  timed mem-full "$J" full --repo "$work/repo-mem" --disk d --source "$suri" --json
  memgb=$(json "['disks'][0]['bytesRead'] / 1e9")
  qstop
  rm -f "$work/m.raw"
  timed mem-restore "$J" restore --repo "$work/repo-mem" --disk d --to "$work/m.raw" -q
  qemu-img compare -q -f raw -F qcow2 "$work/m.raw" "$work/mem100g.qcow2" || { echo "memory restore MISMATCH" >&2; exit 1; }
  rm -f "$work/m.raw"
  rm -rf "$work/repo-mem"
fi

# ---- report
col() { awk -v c="$2" '{print $c}' "$work/$1.t" | median; }
w() { col "$1" 1; }
mib() { echo $(( $(col "$1" 3) / 1024 )); }
pergb() { printf %.2f "$(echo "$(col "$1" 2) / $2" | bc -l)"; }
ratio() { printf %.2f "$(echo "$1 / $2" | bc -l)"; }
# a job's line: median wall, peak RSS, CPU per GB of data moved (or CPU seconds when GB is "-")
row() {
  if [ "$3" = - ]; then
    printf '  %-36s %6s s  RSS %4s MiB  CPU %5s s\n' "$1" "$(w "$2")" "$(mib "$2")" "$(col "$2" 2)"
  else
    printf '  %-36s %6s s  RSS %4s MiB  CPU %5s s/GB\n' "$1" "$(w "$2")" "$(mib "$2")" "$(pergb "$2" "$3")"
  fi
}
echo
echo "issue 15 goals: medians of $rounds rounds, $(date -u '+%F %H:%M') UTC, $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(java -version 2>&1 | head -1)"
echo "  (CPU per GB of data moved: full $(printf %.2f "$fullgb") GB read, incremental $(printf %.3f "$incgb") GB, restores $(printf %.2f "$restgb") GB written)"
row "full backup, day 1" full "$fullgb"
row "nbdcopy | zstd -1 -T2" full-zstd "$fullgb"
row "incremental b1, day 2" incr "$incgb"
row "jbackup --version" incr-version -
row "dirty-read.py b1" incr-read -
row "restore day 2 to a raw file" restore "$restgb"
row "zstd -d --sparse" restore-zstd "$restgb"
row "restore day 2 to qemu-nbd (qcow2)" restore-nbd "$restgb"
row "nbdcopy day2.raw to qemu-nbd" restore-nbdcopy "$restgb"
# both processes' CPU: on 2 cores, what the target qemu-nbd spends (writing qcow2) is taken from the restore
srv() { median <"$work/$1.srv"; }
printf '  %-36s target qemu-nbd CPU %s s, with nbdcopy %s s; with jbackup %s s (jbackup alone %s s)\n' \
  "  the two NBD restores, CPU in all" "$(srv restore-nbdcopy)" \
  "$(printf %.2f "$(echo "$(srv restore-nbdcopy) + $(col restore-nbdcopy 2)" | bc -l)")" \
  "$(printf %.2f "$(echo "$(srv restore-nbd) + $(col restore-nbd 2)" | bc -l)")" "$(col restore-nbd 2)"
row "serve cold + nbdcopy null: (server)" serve "$restgb"
row "qemu-nbd cold + nbdcopy null:" serve-qemu "$restgb"
row "--version" version -
row "list (small repository)" list -
row "empty 1 TiB full" tib-full -
row "1 MiB incremental of the 1 TiB" tib-incr -
row "100 GiB with 2 GiB data, full" g100 2.147
row "nbdcopy null: of it" g100-null 2.147
if [ -z "${SKIP_MEMORY:-}" ]; then
  row "100 GiB with 5 GiB data, full" mem-full "$memgb"
  row "its restore to a raw file" mem-restore "$memgb"
fi
# the fastest round of a job (the tools compared with write through the page cache, and on some machines their
# rounds are bimodal: a ratio against their fastest round is printed beside the median one)
fast() { awk '{print $1}' "$work/$1.t" | sort -n | head -1; }
echo "ratios against the goals (medians; in brackets, jbackup's median against the other tool's fastest round):"
printf '  %-44s %6s  (goal <= 0.8)  [%s]\n' "full / nbdcopy|zstd" "$(ratio "$(w full)" "$(w full-zstd)")" \
  "$(ratio "$(w full)" "$(fast full-zstd)")"
printf '  %-44s %6s  (goal <= 2)\n' "incremental / (--version + dirty read)" \
  "$(ratio "$(w incr)" "$(echo "$(w incr-version) + $(w incr-read)" | bc)")"
printf '  %-44s %6s  (goal <= 1)  [%s]\n' "restore / zstd -d" "$(ratio "$(w restore)" "$(w restore-zstd)")" \
  "$(ratio "$(w restore)" "$(fast restore-zstd)")"
printf '  %-44s %6s  (goal <= 1)  [%s]\n' "restore to NBD / nbdcopy to NBD" \
  "$(ratio "$(w restore-nbd)" "$(w restore-nbdcopy)")" "$(ratio "$(w restore-nbd)" "$(fast restore-nbdcopy)")"
printf '  %-44s %6s  (goal >= 0.8)  [%s]\n' "serve throughput / qemu-nbd's" "$(ratio "$(w serve-qemu)" "$(w serve)")" \
  "$(ratio "$(fast serve-qemu)" "$(w serve)")"
printf '  %-44s %6s  (goal <= 0.3 s)\n' "--version (s)" "$(w version)"
printf '  %-44s %6s  (goal <= 0.5 s)\n' "list (s)" "$(w list)"
printf '  %-44s %6s  (goal <= 3 s)\n' "empty 1 TiB full (s)" "$(w tib-full)"
printf '  %-44s %6s  (goal <= 2 s)\n' "1 MiB incremental of 1 TiB (s)" "$(w tib-incr)"
printf '  %-44s %6s  (goal <= 1.5)  [%s]\n' "100 GiB/2 GiB full / nbdcopy null:" \
  "$(ratio "$(w g100)" "$(w g100-null)")" "$(ratio "$(w g100)" "$(fast g100-null)")"
if [ -z "${SKIP_MEMORY:-}" ]; then
  printf '  %-44s %6s  (goal <= 300 MiB)\n' "peak RSS, 5 GiB of 100 GiB: full, restore" "$(mib mem-full), $(mib mem-restore)"
fi
