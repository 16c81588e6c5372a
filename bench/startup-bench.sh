#!/usr/bin/env bash
# Start-up benchmark (issue 15): wall and CPU (user+sys) time of short commands, medians of ROUNDS runs, with the
# class data sharing archive (JBACKUP_CDS=auto, the default) and without it (JBACKUP_CDS=off), against
# `java -version`. The small repository holds one backup of an empty 16 MiB qcow2 (qemu-img, qemu-nbd).
# Usage: bench/startup-bench.sh [ROUNDS]   JBACKUP=path/to/launcher compares another build (default: this checkout's).
# Runs are interleaved (one of each command per round), so load that comes and goes hits every column alike; the
# load average is printed: on a busy machine the absolute figures mean little, the ratios somewhat more.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
rounds=${1:-10}
J=${JBACKUP:-$top/distribution/bin/jbackup}
work=$top/bench/out/startup
if [ -z "${JBACKUP:-}" ] && ! ls "$top"/target/jbackup-*.jsa >/dev/null 2>&1; then
  (cd "$top" && mvn -q -B package -DskipTests)
fi
rm -rf "$work"; mkdir -p "$work"
repo=$work/repo
qemu-img create -q -f qcow2 "$work/a.qcow2" 16M
sock=$work/nbd.sock
qemu-nbd -r -t -f qcow2 -k "$sock" "$work/a.qcow2" & qpid=$!
while [ ! -S "$sock" ]; do sleep 0.05; done
JBACKUP_CDS=off "$J" init --repo "$repo" --encryption none >/dev/null
JBACKUP_CDS=off "$J" full --repo "$repo" --disk a --source "nbd+unix:///?socket=$sock" >/dev/null
kill $qpid; wait $qpid 2>/dev/null || true

names=("java -version" "--version" "--help" "list")
cmds=("java -version" "$J --version" "$J --help" "$J list --repo $repo")
TIMEFORMAT='%R %U %S'
median() { sort -n | awk '{a[NR]=$1} END {printf "%.3f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
for mode in auto off; do for i in "${!cmds[@]}"; do : >"$work/$mode.$i"; done; done
for r in $(seq "$rounds"); do
  for mode in auto off; do
    for i in "${!cmds[@]}"; do
      [ "$mode" = off ] && [ "$i" = 0 ] && continue
      # shellcheck disable=SC2086
      { time JBACKUP_CDS=$mode ${cmds[$i]} >/dev/null 2>&1; } 2>>"$work/$mode.$i"
    done
  done
done
echo "start-up, median of $rounds runs ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), $(java -version 2>&1 | head -1))"
printf '  %-14s %22s %22s\n' "" "with CDS archive" "without (JBACKUP_CDS=off)"
printf '  %-14s %10s %11s %10s %11s\n' "command" "wall s" "cpu s" "wall s" "cpu s"
for i in "${!cmds[@]}"; do
  line=$(printf '  %-14s' "${names[$i]}")
  for mode in auto off; do
    if [ "$mode" = off ] && [ "$i" = 0 ]; then line+=$(printf ' %10s %11s' - -); continue; fi
    w=$(awk '{print $1}' "$work/$mode.$i" | median)
    c=$(awk '{print $2+$3}' "$work/$mode.$i" | median)
    line+=$(printf ' %10s %11s' "$w" "$c")
  done
  echo "$line"
done
