#!/bin/sh
# Installs jbackup under a prefix:
#   PREFIX/bin/jbackup                                launcher (finds Java, runs the jar)
#   PREFIX/lib/jbackup/jbackup.jar, lib/jbackup/lib/  the program and its libraries
#   PREFIX/lib/jbackup/jbackup.jsa{,.size}            class data sharing archive, made here by a training run
#   PREFIX/lib/jbackup/jbackup.native/                the SQLite and zstd native libraries, extracted with it
#   PREFIX/share/man/man1/jbackup*.1                  man pages
#   PREFIX/share/bash-completion/completions/jbackup  bash completion
#   PREFIX/share/doc/jbackup/                         README, docs, examples
#   SYSTEMD_DIR/jbackup.{service,timer}, jbackup-daemon.service  (default PREFIX/lib/systemd/system)
#
# Run it from an unpacked tarball (jbackup-VERSION/install.sh) or from a source checkout after
# `mvn package` (distribution/install.sh unpacks target/jbackup-*.tar.gz first).
set -eu

usage() {
  cat <<USAGE
usage: install.sh [--prefix DIR] [--systemd-dir DIR | --no-systemd] [--uninstall]
  --prefix DIR       install under DIR (default: /usr/local)
  --systemd-dir DIR  where the systemd units go (default: PREFIX/lib/systemd/system)
  --no-systemd       do not install systemd units
  --uninstall        remove what a previous install put under the prefix
USAGE
}

prefix=/usr/local
systemd_dir=
systemd=yes
uninstall=no
while [ $# -gt 0 ]; do
  case $1 in
    --prefix) [ $# -ge 2 ] || { usage >&2; exit 2; }; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --systemd-dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; systemd_dir=$2; shift 2 ;;
    --systemd-dir=*) systemd_dir=${1#--systemd-dir=}; shift ;;
    --no-systemd) systemd=no; shift ;;
    --uninstall) uninstall=yes; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
case $prefix in /*) ;; *) prefix=$(pwd)/$prefix ;; esac
[ -n "$systemd_dir" ] || systemd_dir=$prefix/lib/systemd/system

if [ "$uninstall" = yes ]; then
  rm -rf "$prefix/lib/jbackup" "$prefix/share/doc/jbackup"
  rm -f "$prefix/bin/jbackup" "$prefix/share/bash-completion/completions/jbackup"
  rm -f "$prefix"/share/man/man1/jbackup.1 "$prefix"/share/man/man1/jbackup-*.1
  rm -f "$systemd_dir/jbackup.service" "$systemd_dir/jbackup.timer" "$systemd_dir/jbackup-daemon.service"
  echo "jbackup removed from $prefix (repositories and /etc/jbackup are left alone)"
  exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
src=
cleanup=
if [ -f "$here/lib/jbackup/jbackup.jar" ]; then
  src=$here
else
  # source checkout: distribution/install.sh next to target/
  tarball=
  for t in "$here"/../target/jbackup-*.tar.gz; do [ -f "$t" ] && tarball=$t; done
  if [ -z "$tarball" ]; then
    echo "install.sh: no jbackup build found; run 'mvn -q -B package -DskipTests' first" >&2
    exit 1
  fi
  cleanup=$(mktemp -d)
  trap 'rm -rf "$cleanup"' EXIT
  tar -xzf "$tarball" -C "$cleanup"
  src=$(echo "$cleanup"/jbackup-*)
fi

mkdir -p "$prefix/bin" "$prefix/lib" "$prefix/share/man/man1" "$prefix/share/bash-completion/completions" \
  "$prefix/share/doc"
rm -rf "$prefix/lib/jbackup" "$prefix/share/doc/jbackup"
cp -R "$src/lib/jbackup" "$prefix/lib/jbackup"
cp "$src/bin/jbackup" "$prefix/bin/jbackup"
chmod 0755 "$prefix/bin/jbackup"
cp "$src"/share/man/man1/*.1 "$prefix/share/man/man1/"
cp "$src/share/bash-completion/completions/jbackup" "$prefix/share/bash-completion/completions/jbackup"
cp -R "$src/share/doc/jbackup" "$prefix/share/doc/jbackup"
# the class data sharing archive of the installed jar (start-up time; the launcher ignores a missing one)
if ! JBACKUP_CDS=dump "$prefix/bin/jbackup" > /dev/null 2>&1; then
  echo "install.sh: warning: no class data sharing archive made (jbackup starts slower); retry with" >&2
  echo "  JBACKUP_CDS=dump $prefix/bin/jbackup" >&2
fi
if [ "$systemd" = yes ]; then
  mkdir -p "$systemd_dir"
  for u in jbackup.service jbackup.timer jbackup-daemon.service; do
    sed "s|@PREFIX@|$prefix|g" "$src/lib/systemd/system/$u" > "$systemd_dir/$u"
    chmod 0644 "$systemd_dir/$u"
  done
fi

echo "jbackup installed under $prefix"
echo "  try:      $prefix/bin/jbackup demo"
echo "  manual:   man -M $prefix/share/man jbackup"
if [ "$systemd" = yes ]; then
  echo "  schedule: write /etc/jbackup/jobs.yaml (see $prefix/share/doc/jbackup/examples/jobs.yaml), then"
  echo "            systemctl daemon-reload && systemctl enable --now jbackup.timer"
fi
