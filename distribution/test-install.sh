#!/usr/bin/env bash
# mvn verify: installs the tarball to a temporary prefix and checks the installed jbackup runs.
# usage: test-install.sh TARBALL VERSION
set -euo pipefail
tarball=$1
version=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "install test FAILED: $*" >&2; exit 1; }

tar -xzf "$tarball" -C "$work"
"$work/jbackup-$version/install.sh" --prefix "$work/prefix" > "$work/install.log" || fail "install.sh: $(cat "$work/install.log")"
p=$work/prefix

out=$("$p/bin/jbackup" --version | head -1) || fail "jbackup --version exited $?"
case $out in "jbackup $version"*) ;; *) fail "jbackup --version printed: $out" ;; esac

# the class data sharing archive install.sh made, and the launcher runs with it without a word about it
[ -s "$p/lib/jbackup/jbackup.jsa" ] && [ -s "$p/lib/jbackup/jbackup.jsa.size" ] || fail "no CDS archive installed"
JBACKUP_OPTS="-Xlog:class+load:file=$work/classes.log" "$p/bin/jbackup" --help > /dev/null \
  || fail "jbackup --help with the CDS archive"
# (only jbackup's own archive can hold jbackup's classes, and only a static one picocli's: see the launcher)
grep -q 'io.jbackup.cli.JBackup source: shared objects file' "$work/classes.log" \
  || fail "the installed CDS archive is not used"
# picocli's classes (class file version 49) in the archive: checked on Java 17, which CI runs (Java 25's archive
# leaves them out)
if [ "$("$p/bin/jbackup" --version | sed -n 's/^Java \([0-9]*\).*/\1/p')" = 17 ]; then
  grep -q 'picocli.CommandLine source: shared objects file' "$work/classes.log" \
    || fail "the installed CDS archive does not hold picocli's classes"
fi

# through a symlink, as /usr/bin/jbackup -> /opt/jbackup/bin/jbackup would be
ln -s "$p/bin/jbackup" "$work/jb"
"$work/jb" --version > /dev/null || fail "jbackup through a symlink"

for page in jbackup jbackup-prune jbackup-gc jbackup-run-due jbackup-demo; do
  [ -s "$p/share/man/man1/$page.1" ] || fail "man page $page.1 missing"
done
grep -q '^\.TH "JBACKUP' "$p/share/man/man1/jbackup-prune.1" || fail "jbackup-prune.1 is not a troff man page"
for page in "$p"/share/man/man1/jbackup*.1; do
  for section in 'EXIT STATUS' ENVIRONMENT FILES EXAMPLES; do
    grep -q "^\.SH \"$section\"" "$page" || fail "man page $(basename "$page") has no $section section"
  done
done
bash -c "source '$p/share/bash-completion/completions/jbackup' && complete -p jbackup" > /dev/null \
  || fail "bash completion does not register"
for u in jbackup.service jbackup.timer jbackup-daemon.service; do
  [ -s "$p/lib/systemd/system/$u" ] || fail "systemd unit $u missing"
done
grep -q "ExecStart=$p/bin/jbackup run-due" "$p/lib/systemd/system/jbackup.service" || fail "@PREFIX@ not replaced"
# the installed units as systemd reads them: ExecStart exists, Environment= is one assignment, and the man pages
# of Documentation= are the installed ones
if command -v systemd-analyze > /dev/null; then
  man_check=()
  command -v man > /dev/null || man_check=(--man=no) # no man(1) to look the pages up with
  units_out=$(cd "$p/lib/systemd/system" && MANPATH=$p/share/man systemd-analyze verify "${man_check[@]}" \
    ./jbackup.service ./jbackup.timer ./jbackup-daemon.service 2>&1) || fail "systemd-analyze verify: $units_out"
  [ -z "$units_out" ] || fail "systemd-analyze verify: $units_out"
else
  echo "systemd-analyze not found: the installed units are not verified"
fi
[ -f "$p/share/doc/jbackup/README.md" ] || fail "docs missing"

# the installed class path is complete (netty, sqlite and zstd natives, jackson, cron-utils)
"$p/bin/jbackup" demo --builtin > "$work/demo.log" 2>&1 || fail "jbackup demo --builtin: $(cat "$work/demo.log")"
grep -q "Both backups restore bit-exact" "$work/demo.log" || fail "demo output: $(cat "$work/demo.log")"

"$work/jbackup-$version/install.sh" --prefix "$p" --uninstall > /dev/null
[ ! -e "$p/bin/jbackup" ] && [ ! -e "$p/lib/jbackup" ] || fail "--uninstall left files"
echo "install test passed: $tarball installs to a prefix and runs ($out)"
