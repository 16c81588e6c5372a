package io.jbackup.cli;

import io.jbackup.cli.ManualSections.Entry;

import java.util.List;
import java.util.Map;

/**
 * The EXAMPLES of each command's {@code --help} and man page, by qualified command name. Every command has at
 * least one, and each example runs the command it documents (ManualSectionsTest parses every one).
 */
final class CommandExamples {
    private static final String SOCK = "'nbd+unix:///?socket=/run/vm1.sock'";
    private static final List<Entry> KEY_EXPORT = List.of(
        new Entry("Keep a copy of the sealed key (with config.json) somewhere safe",
            "jbackup key export --repo /backup/repo"));
    private static final List<Entry> BITMAP_ADD = List.of(
        new Entry("Start tracking changes of an offline qcow2 at the time of a full backup",
            "jbackup bitmap add --image vm1.qcow2 --name b1"));

    private static final Map<String, List<Entry>> EXAMPLES = Map.ofEntries(
        Map.entry("jbackup", List.of(
            new Entry("Try the whole cycle on a sample disk in a temporary directory", "jbackup demo"),
            new Entry("Create a repository", "jbackup init --repo /backup/repo"),
            new Entry("Back up a disk qemu-nbd exports: incremental when that is safe, else full",
                "jbackup auto --repo /backup/repo --disk vda --bitmap b1 --source " + SOCK),
            new Entry("Restore the newest backup to a sparse raw file",
                "jbackup restore --repo /backup/repo --disk vda --backup latest --to vda.raw"))),
        Map.entry("jbackup help", List.of(
            new Entry("The options of the full backup", "jbackup help full"))),
        Map.entry("jbackup init", List.of(
            new Entry("A new repository", "jbackup init --repo /backup/repo"),
            new Entry("An encrypted one (asks for the passphrase, or reads JBACKUP_PASSPHRASE)",
                "jbackup init --repo /backup/repo --encryption aes-256-gcm"))),
        Map.entry("jbackup full", List.of(
            new Entry("Full backup of an offline disk: qemu-nbd -r -A -t -k /run/vm1.sock -f qcow2 vm1.qcow2 serves it",
                "jbackup full --repo /backup/repo --disk vda --source " + SOCK),
            new Entry("Full backup of a running VM through its QMP socket",
                "jbackup full --repo /backup/repo --vm vm1 --qmp /run/vm1/jbackup.qmp --node vda=vda"))),
        Map.entry("jbackup incremental", List.of(
            new Entry("Only what bitmap b1 marks; "
                + "qemu-nbd -r -A -B b1 -t -k /run/vm1.sock -f qcow2 vm1.qcow2 serves it",
                "jbackup incremental --repo /backup/repo --disk vda --bitmap b1 --source " + SOCK))),
        Map.entry("jbackup auto", List.of(
            new Entry("Incremental when it is safe, else full, saying why",
                "jbackup auto --repo /backup/repo --disk vda --bitmap b1 --source " + SOCK),
            new Entry("Two disks of one VM as one set, in parallel",
                "jbackup auto --repo /backup/repo --vm web1 --bitmap b1 --source vda=nbd://host/vda "
                    + "--source vdb=nbd://host/vdb"))),
        Map.entry("jbackup restore", List.of(
            new Entry("The newest backup of a disk to a sparse raw file",
                "jbackup restore --repo /backup/repo --disk vda --backup latest --to vda.raw"),
            new Entry("A VM's disks as they were at a point in time, into a directory",
                "jbackup restore --repo /backup/repo --vm web1 --backup @2026-11-24T10:00 --to /restore/dir"))),
        Map.entry("jbackup mount", List.of(
            new Entry("Mount the newest backup of a disk under /mnt/restore until Ctrl-C",
                "jbackup mount --repo /backup/repo --disk vda /mnt/restore"),
            new Entry("Mount every disk of a VM's backup set of a given time and return",
                "jbackup mount --repo /backup/repo --vm vm1 --backup @2026-05-01T00:00:00Z --daemon /mnt/restore"))),
        Map.entry("jbackup umount", List.of(
            new Entry("Unmount it (also after the mount process was killed)", "jbackup umount /mnt/restore"))),
        Map.entry("jbackup files", List.of(
            new Entry("List /etc of partition 1 of the newest backup", "jbackup files ls --repo /backup/repo "
                + "--disk vda 1:/etc"))),
        Map.entry("jbackup files ls", List.of(
            new Entry("List /etc of partition 1 of the newest backup", "jbackup files ls --repo /backup/repo "
                + "--disk vda 1:/etc"),
            new Entry("The same as JSON, of a disk with one filesystem", "jbackup files ls --repo /backup/repo "
                + "--disk vdb --json /home"))),
        Map.entry("jbackup files get", List.of(
            new Entry("Copy a file out of yesterday's backup, keeping mode and times", "jbackup files get --repo "
                + "/backup/repo --disk vda --backup @2026-05-01T00:00:00Z 1:/etc/fstab --to fstab.old"))),
        Map.entry("jbackup serve", List.of(
            new Entry("Serve every backup over NBD (then: nbdinfo --list 'nbd+unix:///?socket=/run/jbackup.sock')",
                "jbackup serve --repo /backup/repo --socket /run/jbackup.sock"),
            new Entry("Writable, for booting a VM from a backup (copy-on-write overlays)",
                "jbackup serve --repo /backup/repo --socket /run/jbackup.sock --writable"))),
        Map.entry("jbackup commit-overlay", List.of(
            new Entry("Keep what a VM wrote to a served backup as a new backup",
                "jbackup commit-overlay --repo /backup/repo --export vda@latest"))),
        Map.entry("jbackup inspect", List.of(
            new Entry("Size, flags and the allocation map of an export",
                "jbackup inspect nbd://host/vda --map base:allocation"),
            new Entry("The exports a server offers", "jbackup inspect --list nbd://host"))),
        Map.entry("jbackup verify", List.of(
            new Entry("Re-read and check every chunk", "jbackup verify --repo /backup/repo"),
            new Entry("A 5 percent sample, e.g. daily", "jbackup verify --repo /backup/repo --sample 5"))),
        Map.entry("jbackup repair", List.of(
            new Entry("Rebuild a lost or damaged catalog from the packs and indexes",
                "jbackup repair --repo /backup/repo --rebuild-catalog"))),
        Map.entry("jbackup key", KEY_EXPORT),
        Map.entry("jbackup key export", KEY_EXPORT),
        Map.entry("jbackup key list", List.of(
            new Entry("The passphrases (key slots) that open the repository", "jbackup key list --repo /backup/repo"))),
        Map.entry("jbackup key add", List.of(
            new Entry("A second passphrase, e.g. for a colleague (asked twice on the terminal)",
                "jbackup key add --repo /backup/repo --label alice"))),
        Map.entry("jbackup key passwd", List.of(
            new Entry("Change the passphrase; no data is rewritten",
                "jbackup key passwd --repo /backup/repo --new-passphrase-file /root/new.pass"))),
        Map.entry("jbackup key remove", List.of(
            new Entry("Remove a key by its id from jbackup key list (never the last one)",
                "jbackup key remove --repo /backup/repo 3f2a9c1e"))),
        Map.entry("jbackup bitmap", BITMAP_ADD),
        Map.entry("jbackup bitmap add", BITMAP_ADD),
        Map.entry("jbackup bitmap list", List.of(
            new Entry("The persistent bitmaps of an image", "jbackup bitmap list --image vm1.qcow2"))),
        Map.entry("jbackup bitmap remove", List.of(
            new Entry("Stop tracking with b1", "jbackup bitmap remove --image vm1.qcow2 --name b1"))),
        Map.entry("jbackup list", List.of(
            new Entry("Every backup, per VM and disk", "jbackup list --repo /backup/repo"),
            new Entry("The backups of one VM as JSON", "jbackup list --repo /backup/repo --vm web1 --json"))),
        Map.entry("jbackup show", List.of(
            new Entry("One backup in full", "jbackup show --repo /backup/repo 20261124-0215"),
            new Entry("The newest backup of a disk", "jbackup show --repo /backup/repo --disk vda latest"),
            new Entry("An attachment of a backup (e.g. the domain XML), raw on standard output",
                "jbackup show --repo /backup/repo 20261124-0215 --attachment domain.xml"))),
        Map.entry("jbackup stats", List.of(
            new Entry("Totals, deduplication and compression", "jbackup stats --repo /backup/repo"))),
        Map.entry("jbackup prune", List.of(
            new Entry("What a retention policy would keep and remove, and the rule keeping each",
                "jbackup prune --repo /backup/repo --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run"))),
        Map.entry("jbackup protect", List.of(
            new Entry("Never prune this backup (until unprotect)",
                "jbackup protect --repo /backup/repo 20261124-0215"))),
        Map.entry("jbackup unprotect", List.of(
            new Entry("Let prune consider it again", "jbackup unprotect --repo /backup/repo 20261124-0215"))),
        Map.entry("jbackup forget", List.of(
            new Entry("Delete chosen backups (no other backup depends on them)",
                "jbackup forget --repo /backup/repo 20261124-0215"))),
        Map.entry("jbackup gc", List.of(
            new Entry("Delete unused chunks and repack sparse packs (safe during backups)",
                "jbackup gc --repo /backup/repo"))),
        Map.entry("jbackup run-due", List.of(
            new Entry("From cron or jbackup.timer: run what the job file says is due, silent unless something failed",
                "jbackup run-due --config /etc/jbackup/jobs.yaml"))),
        Map.entry("jbackup daemon", List.of(
            new Entry("One long-running process instead of the timer (jbackup-daemon.service)",
                "jbackup daemon --config /etc/jbackup/jobs.yaml"))),
        Map.entry("jbackup schedule", List.of(
            new Entry("The next run times of each task", "jbackup schedule --config /etc/jbackup/jobs.yaml"))),
        Map.entry("jbackup log", List.of(
            new Entry("The full log of the last scheduled run",
                "jbackup log --config /etc/jbackup/jobs.yaml --run latest"))),
        Map.entry("jbackup demo", List.of(
            new Entry("The whole cycle on a sample 64 MiB disk; cleans up after itself", "jbackup demo"),
            new Entry("The same with the built-in NBD server (no qemu tools needed)", "jbackup demo --builtin"))));

    private CommandExamples() {
    }

    /** The examples of a command ({@code "jbackup bitmap add"}); empty if it has none. */
    static List<Entry> of(String qualifiedName) {
        return EXAMPLES.getOrDefault(qualifiedName, List.of());
    }
}
