#!/usr/bin/env bash
# S3 against local: a full backup of the realistic dataset (base.qcow2, day-3 content) and its restore to a raw file,
# into a local repository and into an s3:// repository on s3proxy (filesystem backend, 127.0.0.1), in alternating
# rounds of one run. Prints medians, the S3/local time ratios, the peak RSS of each job, and the S3 requests of each
# job (PUT, GET, LIST, ...: jbackup logs them at -v when an s3:// repository closes). Every restore is checked by
# SHA-256 against the dataset's day3.raw.
# Usage: bench/s3-bench.sh [DATASET_DIR] [ROUNDS]   (default: bench/out/dataset, built at 2G when missing; 5 rounds)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
data=${1:-$top/bench/out/dataset}
rounds=${2:-5}
work=$top/bench/out/s3
J=$top/distribution/bin/jbackup
jar=$top/target/s3proxy/s3proxy.jar
ls "$top"/target/jbackup-*.jar >/dev/null 2>&1 && [ -f "$jar" ] || (cd "$top" && mvn -q -B -ntp package -DskipTests)
[ -f "$data/.complete" ] || "$top/../shared/bench/make-dataset.sh" "$data" 2G >/dev/null
rm -rf "$work"; mkdir -p "$work/s3data/bench"   # a directory under the filesystem backend's basedir is a bucket

# s3proxy on a free port of 127.0.0.1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/s3proxy.conf" <<EOF
s3proxy.authorization=aws-v2-or-v4
s3proxy.endpoint=http://127.0.0.1:$port
s3proxy.identity=benchkey
s3proxy.credential=benchsecret
jclouds.provider=filesystem
jclouds.filesystem.basedir=$work/s3data
EOF
java -Xmx512m -jar "$jar" --properties "$work/s3proxy.conf" >"$work/s3proxy.log" 2>&1 & s3pid=$!
sock=$work/nbd.sock; qpid=
cleanup() { [ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true; kill "$s3pid" 2>/dev/null || true; }
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=benchkey AWS_SECRET_ACCESS_KEY=benchsecret AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port XDG_CACHE_HOME=$work/cache
for _ in $(seq 300); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.1; done

serve() { rm -f "$sock"; qemu-nbd -r -t -f qcow2 -A "$@" -k "$sock" & qpid=$!; while [ ! -S "$sock" ]; do sleep 0.05; done; }
stop() { kill "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=; }
uri="nbd+unix:///?socket=$sock"
# wall seconds, peak RSS (KiB) and CPU seconds (user+sys) of a command: prints "secs rss cpu"
timed() {
  /usr/bin/time -f "%e %M %U %S" -o "$work/time" "$@" >"$work/out" 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
  read -r s m u y <"$work/time"; echo "$s $m $(echo "$u + $y" | bc)"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# the request line that jbackup -v logs when an s3:// repository closes
requests() { grep -o 'S3 requests: .*' "$work/err" | tail -1 || echo "S3 requests: (not logged)"; }
want=$(grep " day3.raw" "$data/SHA256SUMS" | cut -d' ' -f1)
check() {
  got=$(sha256sum "$work/restore.raw" | cut -d' ' -f1); rm -f "$work/restore.raw"
  [ "$got" = "$want" ] || { echo "restore of $1 differs from day3.raw: $got != $want" >&2; exit 1; }
}

serve "$data/base.qcow2"
nbdcopy "$uri" null:   # warm the page cache
for f in full restore; do for k in local s3; do : >"$work/$f.$k"; done; done
for r in $(seq "$rounds"); do
  for k in local s3; do
    if [ "$k" = local ]; then repo=$work/repo; rm -rf "$repo"; else repo=s3://bench/r$r; rm -rf "$work/cache"; fi
    "$J" init --repo "$repo" --encryption none >/dev/null
    timed "$J" full -v --repo "$repo" --disk vda --source "$uri" >>"$work/full.$k"
    [ "$k" = local ] || requests >"$work/full.req"
    timed "$J" restore -v --repo "$repo" --disk vda --backup latest --to "$work/restore.raw" >>"$work/restore.$k"
    [ "$k" = local ] || requests >"$work/restore.req"
    check "$k round $r"
  done
done
stop

col() { cut -d' ' -f"$1" <"$2" | median; }
allocated=$(qemu-img map --output=json "$data/base.qcow2" \
  | python3 -c 'import json,sys; print(sum(e["length"] for e in json.load(sys.stdin) if e["data"]))')
gb=$(echo "scale=3; $allocated/1000000000" | bc)
echo "base.qcow2: $(echo "scale=2; $allocated/1073741824" | bc) GiB allocated; medians of $rounds alternating rounds"
echo "s3proxy 4.1.0 (filesystem backend) on 127.0.0.1, same machine; every restore equal to day3.raw by SHA-256"
printf '%-18s %9s %9s %9s %12s %10s\n' job local s3 ratio "peak RSS" "CPU s/GB"
for f in full restore; do
  l=$(col 1 "$work/$f.local"); s=$(col 1 "$work/$f.s3")
  printf '%-18s %8ss %8ss %8sx %5s/%-4s MiB %4s/%-4s\n' "$f" "$l" "$s" "$(echo "scale=2; $s/$l" | bc)" \
    "$(( $(col 2 "$work/$f.local") / 1024 ))" "$(( $(col 2 "$work/$f.s3") / 1024 ))" \
    "$(echo "scale=1; $(col 3 "$work/$f.local")/$gb" | bc)" "$(echo "scale=1; $(col 3 "$work/$f.s3")/$gb" | bc)"
done
echo "(peak RSS and CPU seconds per GB of allocated data: local/s3)"
echo "full backup to s3: $(cat "$work/full.req")"
echo "restore from s3:   $(cat "$work/restore.req")"
echo "bucket: $(du -sh "$work/s3data/bench/r$rounds" | cut -f1) for the last round's repository"
