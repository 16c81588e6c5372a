#!/usr/bin/env bash
# Serving and restoring a repository backup of the realistic dataset (../shared/bench/make-dataset.sh).
#
#   bench/serve-bench.sh [DATASET_DIR]      (default: /work/data/ds2g if complete, else bench/out/dataset;
#                                             built with make-dataset.sh 2G when missing)
#
# 1. A repository with a full backup of base.qcow2 (the day-3 disk, 2 GiB, 1.31 GB allocated), made once through
#    qemu-nbd -r -A and reused while the dataset is unchanged.
# 2. Serve: nbdcopy ... null: from `jbackup serve` (export vda@latest) against nbdcopy from `qemu-nbd -r -f raw`
#    of day3.raw (the same image as a raw file, in the page cache), both on Unix sockets, interleaved.
#    - first read: the first nbdcopy after serve starts (cold chunk cache, cold JIT), once;
#    - warm: ROUNDS interleaved rounds after WARMUP untimed runs each, with a chunk cache of CACHE_MIB (default
#      2048: the backup's 1.31 GB of data fit, as the raw file fits in qemu-nbd's page cache);
#    - decode: the same against a second serve with the default 256 MiB cache, so every chunk is read from the
#      pack, verified (CRC32C, SHA-256) and decompressed on every run.
#    Ratios are qemu-nbd time / jbackup time (jbackup's throughput relative to qemu-nbd; target >= 0.8).
# 3. Restore to a new raw file (whole command, JVM start included; jbackup fsyncs the file at the end) against
#    `qemu-img convert -O raw base.qcow2` (no fsync) and `qemu-img convert` + `sync FILE`, interleaved; the
#    restored image's SHA-256 is checked against day3.raw once.
#
# Env: ROUNDS (5), WARMUP (4), CACHE_MIB (2048), WORK (bench/out/serve), JBACKUP_OPTS (JVM options for both
#      jbackup commands; default -Xmx512m -XX:+UseParallelGC -XX:MaxDirectMemorySize sized for the cache).
# The machine this was written on has 2 vCPUs shared with other jobs: compare medians, not single runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
data=${1:-}
if [ -z "$data" ]; then
  if [ -f /work/data/ds2g/.complete ]; then data=/work/data/ds2g; else data=$top/bench/out/dataset; fi
fi
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-4}
CACHE_MIB=${CACHE_MIB:-2048}
work=${WORK:-$top/bench/out/serve}
J=$top/distribution/bin/jbackup
export JBACKUP_OPTS=${JBACKUP_OPTS:--Xmx512m -XX:+UseParallelGC -XX:MaxDirectMemorySize=$((CACHE_MIB + 512))m}

[ -f "$data/.complete" ] || "$top/../shared/bench/make-dataset.sh" "$data" 2G >/dev/null
ls "$top"/target/jbackup-*.jar >/dev/null 2>&1 || (cd "$top" && mvn -q -B package -DskipTests)
for t in qemu-nbd qemu-img nbdcopy bc; do command -v $t >/dev/null || { echo "missing $t" >&2; exit 1; }; done
mkdir -p "$work"
want=$(grep ' day3.raw' "$data/SHA256SUMS" | cut -d' ' -f1)

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
await() { for _ in $(seq 400); do [ -S "$1" ] && return; sleep 0.05; done; echo "no socket $1" >&2; cat "$work"/*.log >&2; exit 1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }
secs() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }

# ---- 1. the repository (reused while the dataset is unchanged)
repo=$work/repo
stamp=$(sha256sum "$data/SHA256SUMS" | cut -c1-16)
if [ ! -f "$work/repo.stamp" ] || [ "$(cat "$work/repo.stamp")" != "$stamp" ]; then
  rm -rf "$repo" "$work/repo.stamp"
  "$J" init --repo "$repo" >/dev/null
  s=$work/src.sock; rm -f "$s"
  qemu-nbd -r -t -A -f qcow2 -k "$s" "$data/base.qcow2" >"$work/src.log" 2>&1 & src=$!; pids+=("$src")
  await "$s"
  "$J" full --repo "$repo" --disk vda --source "nbd+unix:///?socket=$s" -q
  kill "$src"; wait "$src" 2>/dev/null || true
  echo "$stamp" >"$work/repo.stamp"
fi
echo "repository: $repo ($(du -sh "$repo" | cut -f1)), dataset $data, JBACKUP_OPTS=$JBACKUP_OPTS"

# ---- 2. serve
qs=$work/qemu.sock; js=$work/jbackup.sock; ds=$work/decode.sock
rm -f "$qs" "$js" "$ds"
qemu-nbd -r -t -e 16 -f raw -k "$qs" "$data/day3.raw" >"$work/qemu-nbd.log" 2>&1 & pids+=($!)
"$J" serve --repo "$repo" --socket "$js" --cache-size "$CACHE_MIB" >"$work/serve.log" 2>&1 & jpid=$!; pids+=("$jpid")
await "$qs"; await "$js"
cat "$data/day3.raw" >/dev/null
q() { secs nbdcopy "nbd+unix:///?socket=$qs" null:; }
j() { secs nbdcopy "nbd+unix:///vda@latest?socket=$1" null:; }
first=$(j "$js"); qfirst=$(q)
printf 'serve, first read after start (cold cache and JIT): jbackup %.3f s, qemu-nbd %.3f s, ratio %.2f\n' \
  "$first" "$qfirst" "$(echo "$qfirst / $first" | bc -l)"

rounds() { # $1 = jbackup socket, $2 = label
  local Q=() JJ=() r qq jj
  for _ in $(seq "$WARMUP"); do j "$1" >/dev/null; q >/dev/null; done
  for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then qq=$(q); jj=$(j "$1"); else jj=$(j "$1"); qq=$(q); fi
    Q+=("$qq"); JJ+=("$jj")
    printf '  %s round %d: qemu-nbd %.3f s  jbackup %.3f s  ratio %.2f\n' "$2" "$r" "$qq" "$jj" "$(echo "$qq / $jj" | bc -l)"
  done
  local mq mj
  mq=$(printf '%s\n' "${Q[@]}" | median); mj=$(printf '%s\n' "${JJ[@]}" | median)
  printf 'serve, %s: median qemu-nbd %.3f s (%.0f MB/s of disk), jbackup %.3f s (%.0f MB/s), ratio %.2f (target >= 0.80)\n' \
    "$2" "$mq" "$(echo "2147.483648 / $mq" | bc -l)" "$mj" "$(echo "2147.483648 / $mj" | bc -l)" "$(echo "$mq / $mj" | bc -l)"
}
rounds "$js" "warm ($CACHE_MIB MiB cache)"
kill "$jpid"; wait "$jpid" 2>/dev/null || true
"$J" serve --repo "$repo" --socket "$ds" >"$work/decode.log" 2>&1 & dpid=$!; pids+=("$dpid")
await "$ds"
rounds "$ds" "decode (256 MiB cache: every chunk read, verified and decompressed each run)"
kill "$dpid"; wait "$dpid" 2>/dev/null || true

# ---- 3. restore
out=$work/restore.raw; conv=$work/convert.raw
rm -f "$out"
"$J" restore --repo "$repo" --disk vda --to "$out" -q >/dev/null
[ "$(sha256sum "$out" | cut -d' ' -f1)" = "$want" ] || { echo "restored image differs from day3.raw" >&2; exit 1; }
R=(); C=(); CS=()
for r in $(seq "$ROUNDS"); do
  rm -f "$out" "$conv"; sync
  if [ $((r % 2)) -eq 1 ]; then
    rr=$(secs "$J" restore --repo "$repo" --disk vda --to "$out" -q); rm -f "$out"; sync
    cc=$(secs qemu-img convert -O raw "$data/base.qcow2" "$conv"); rm -f "$conv"; sync
    cs=$(secs sh -c "qemu-img convert -O raw '$data/base.qcow2' '$conv' && sync '$conv'")
  else
    cs=$(secs sh -c "qemu-img convert -O raw '$data/base.qcow2' '$conv' && sync '$conv'"); rm -f "$conv"; sync
    cc=$(secs qemu-img convert -O raw "$data/base.qcow2" "$conv"); rm -f "$conv"; sync
    rr=$(secs "$J" restore --repo "$repo" --disk vda --to "$out" -q)
  fi
  R+=("$rr"); C+=("$cc"); CS+=("$cs")
  printf '  restore round %d: jbackup %.2f s, qemu-img convert %.2f s, convert+sync %.2f s\n' "$r" "$rr" "$cc" "$cs"
done
rm -f "$out" "$conv"
mr=$(printf '%s\n' "${R[@]}" | median); mc=$(printf '%s\n' "${C[@]}" | median); ms=$(printf '%s\n' "${CS[@]}" | median)
printf 'restore to a raw file: median jbackup %.2f s (JVM start and fsync included), qemu-img convert %.2f s (ratio %.2f), convert+sync %.2f s (ratio %.2f); sha256 OK\n' \
  "$mr" "$mc" "$(echo "$mc / $mr" | bc -l)" "$ms" "$(echo "$ms / $mr" | bc -l)"
