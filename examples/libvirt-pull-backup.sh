#!/usr/bin/env bash
# Back up a running libvirt domain with jbackup through libvirt's pull-mode backup API.
#
#   libvirt-pull-backup.sh DOMAIN REPO [auto|full]
#
# libvirt makes the point-in-time NBD export (virsh backup-begin, mode='pull') and creates a checkpoint at
# the same instant; jbackup reads the export. The checkpoint of the last successful backup is kept in a
# state file, so the next run exports "changes since that checkpoint" (libvirt's <incremental>) and jbackup
# makes an incremental from it. On failure the new checkpoint is deleted: the previous one still covers
# every change since the last good backup. On success older checkpoints of this script are deleted.
#
# Environment:
#   JBACKUP      jbackup launcher (default: jbackup)
#   SCRATCH_DIR  where libvirt puts the fleecing scratch files and the NBD socket (default: /var/tmp);
#                needs free space for the data the guest overwrites during the backup
#   STATE_DIR    where the last good checkpoint of each domain is recorded (default: /var/lib/jbackup)
#   JBACKUP_ARGS extra jbackup options, e.g. "--passphrase-file /etc/jbackup/pass"
#
# Needs libvirt >= 7.2 with QEMU >= 6.0 (pull-mode backups and checkpoints), and qcow2 disks (persistent
# bitmaps). This script was written against libvirt's documentation (formatbackup, formatcheckpoint);
# libvirt was not available where jbackup was developed, so test it on a scratch VM first.
set -euo pipefail

usage() {
    echo "usage: $0 DOMAIN REPO [auto|full]" >&2
    exit 2
}
die() {
    echo "$0: $*" >&2
    exit 1
}

[[ $# -ge 2 && $# -le 3 ]] || usage
DOMAIN=$1
REPO=$2
MODE=${3:-auto}
[[ $MODE == auto || $MODE == full ]] || usage
JBACKUP=${JBACKUP:-jbackup}
SCRATCH_DIR=${SCRATCH_DIR:-/var/tmp}
STATE_DIR=${STATE_DIR:-/var/lib/jbackup}
PREFIX=jbackup-
STATE=$STATE_DIR/$DOMAIN.checkpoint

command -v virsh >/dev/null || die "virsh is not installed (Debian: apt-get install libvirt-clients)"
command -v "$JBACKUP" >/dev/null || die "$JBACKUP not found; set JBACKUP=/path/to/jbackup"
mkdir -p "$STATE_DIR"

# the domain's disks (target names such as vda), skipping CD-ROMs and empty drives
mapfile -t DISKS < <(virsh -q domblklist "$DOMAIN" --details | awk '$2 == "disk" && $4 != "-" { print $3 }')
[[ ${#DISKS[@]} -gt 0 ]] || die "domain $DOMAIN has no disks to back up"

# the checkpoint of the last successful backup, if libvirt still has it
PREV=""
if [[ $MODE == auto && -s $STATE ]]; then
    PREV=$(<"$STATE")
    if ! virsh checkpoint-list "$DOMAIN" --name | grep -qxF "$PREV"; then
        echo "$0: checkpoint $PREV of the last backup is gone; making a full backup" >&2
        PREV=""
    fi
fi
NEW=$PREFIX$(date -u +%Y%m%dT%H%M%SZ)
WORK=$(mktemp -d "$SCRATCH_DIR/jbackup-$DOMAIN.XXXXXX")
SOCK=$WORK/nbd.sock

{
    echo "<domainbackup mode='pull'>"
    if [[ -n $PREV ]]; then
        echo "  <incremental>$PREV</incremental>"
    fi
    echo "  <server transport='unix' socket='$SOCK'/>"
    echo "  <disks>"
    for d in "${DISKS[@]}"; do
        echo "    <disk name='$d' backup='yes' type='file' exportname='$d' exportbitmap='$PREFIX$d'>"
        echo "      <scratch file='$WORK/$d.scratch'/>"
        echo "    </disk>"
    done
    echo "  </disks>"
    echo "</domainbackup>"
} >"$WORK/backup.xml"
{
    echo "<domaincheckpoint>"
    echo "  <name>$NEW</name>"
    echo "  <disks>"
    for d in "${DISKS[@]}"; do
        echo "    <disk name='$d' checkpoint='bitmap'/>"
    done
    echo "  </disks>"
    echo "</domaincheckpoint>"
} >"$WORK/checkpoint.xml"

STARTED=0
DONE=0
cleanup() {
    if [[ $STARTED == 1 ]]; then
        virsh domjobabort "$DOMAIN" >/dev/null 2>&1 || true # ends the pull-mode backup job
    fi
    if [[ $STARTED == 1 && $DONE == 0 ]]; then
        # the new checkpoint must not become the base of the next incremental
        if ! virsh checkpoint-delete "$DOMAIN" "$NEW" >/dev/null; then
            echo "$0: WARNING: could not delete checkpoint $NEW; the next run uses $STATE, which is unchanged" >&2
        fi
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

virsh backup-begin "$DOMAIN" "$WORK/backup.xml" "$WORK/checkpoint.xml"
STARTED=1

ARGS=()
for d in "${DISKS[@]}"; do
    ARGS+=(--source "$d=nbd+unix:///$d?socket=$SOCK")
    if [[ -n $PREV ]]; then
        ARGS+=(--bitmap "$d=$PREFIX$d")
    fi
done
if [[ -n $PREV ]]; then CMD=auto; else CMD=full; fi

# shellcheck disable=SC2086 # JBACKUP_ARGS is a list of options
"$JBACKUP" "$CMD" --repo "$REPO" --vm "$DOMAIN" "${ARGS[@]}" --label "libvirt.checkpoint=$NEW" ${JBACKUP_ARGS:-}
DONE=1
echo "$NEW" >"$STATE.tmp" && mv "$STATE.tmp" "$STATE"

# older checkpoints of this script are no longer needed
for c in $(virsh checkpoint-list "$DOMAIN" --name | grep "^$PREFIX" || true); do
    [[ $c == "$NEW" ]] || virsh checkpoint-delete "$DOMAIN" "$c" >/dev/null || true
done
