package io.jbackup.libvirt;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.engine.BackupMode;
import io.jbackup.engine.Cancellation;
import io.jbackup.engine.EngineOptions;
import io.jbackup.engine.ProgressListener;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Owner;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Domain;
import io.jbackup.testutil.Libvirt;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code restore --domain --define} under a name libvirt already has, old checkpoints of which one cannot be
 * deleted or whose bitmap QEMU lost, and what killed runs leave behind, against a real libvirtd and a TCG domain
 * with no OS.
 */
class DomainCheckpointAndDefineTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path tmp;

    private String repo;

    @BeforeAll
    static void libvirt() {
        Libvirt.assumeAvailable();
    }

    private Domain domain(long... sizes) throws Exception {
        repo = tmp.resolve("repo").toString();
        Cli.run("init", "--repo", repo, "--encryption", "none").ok();
        return Libvirt.domain(Libvirt.shareWithQemu(tmp.resolve("dom"))).disks(sizes).create();
    }

    private static List<String> ours(Domain dom) {
        return dom.checkpoints().stream().filter(c -> c.startsWith("jbackup-")).toList();
    }

    /**
     * A name that is taken is refused before any disk is written: with --force the files of the running domain of
     * that name would otherwise be replaced under it, and without it a re-run needs --force.
     */
    @Test
    void defineUnderATakenNameIsRefusedBeforeAnyDiskIsRestored() throws Exception {
        try (Domain dom = domain(16 * MIB)) {
            dom.write("vda", 0x11, 0, MIB);
            Cli.run("full", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI, "-q").ok();
            Path dir = Libvirt.shareWithQemu(tmp.resolve("restored"));
            Cli.Result r = Cli.run("restore", "--repo", repo, "--domain", dom.name(), "--to", dir.toString(),
                "--define", dom.name(), "--connect", Libvirt.URI, "--json");
            assertEquals(2, r.exitCode(), r.toString());
            assertTrue(r.stderr().contains("domain " + dom.name() + " already exists"), r.stderr());
            assertTrue(r.stderr().contains("nothing was restored"), r.stderr());
            try (var left = Files.list(dir)) {
                assertEquals(List.of(), left.toList(), "no disk and no XML written");
            }
            assertEquals("running", Libvirt.virsh("domstate", dom.name()).strip(), "the domain is untouched");
        }
    }

    /**
     * A checkpoint libvirt cannot delete (its bitmap was removed from an image by hand) does not keep the others:
     * every later run deletes the checkpoints no incremental needs, instead of stopping at the broken one and
     * leaving one more checkpoint (a bitmap on every disk) each run.
     */
    @Test
    void aCheckpointThatCannotBeDeletedDoesNotKeepTheOthers() throws Exception {
        try (Domain dom = domain(16 * MIB, 16 * MIB)) {
            dom.write("vda", 0x21, 0, MIB);
            Cli.run("full", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI, "-q").ok();
            List<String> first = ours(dom);
            assertEquals(1, first.size(), first.toString());
            dom.shutOff();
            Proc.run("qemu-img", "bitmap", "--remove", dom.disk("vda").file().toString(), first.get(0));
            // offline: vda is read in full (no bitmap), vdb incrementally; the checkpoint stays in libvirt
            Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI, "-q").ok();
            dom.start();
            for (int i = 0; i < 3; i++) {
                dom.write("vda", 0x22 + i, 2 * MIB, MIB);
                Cli.Result r = Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI,
                    "--json");
                assertEquals(0, r.exitCode(), r.toString());
                if (i == 0) {
                    // the reason names what happened, not "not taken through libvirt"
                    String why = r.json().get("disks").get(0).get("reason").asText();
                    assertTrue(why.contains("records no checkpoint (it was read from the shut-off domain's image"),
                        why);
                }
            }
            List<String> left = ours(dom);
            assertTrue(left.size() <= 2, "the broken checkpoint and the newest one at most: " + left);
            assertFalse(left.isEmpty());
        }
    }

    /**
     * QEMU killed (the host crashed, the OOM killer): libvirt keeps the checkpoint's metadata, but its bitmap comes
     * back inconsistent, and {@code backup-begin} refuses an incremental from it ("missing or broken bitmap"). That
     * made every later {@code auto} fail with exit 4 (libvirt-error); it is now a full backup with the reason
     * ({@code checkpoint-lost}), {@code incremental} refuses with exit 2 naming the fix, and the chain goes on.
     */
    @Test
    void aCheckpointWhoseBitmapQemuLostGivesAFullBackupNotAFailure() throws Exception {
        try (Domain dom = domain(16 * MIB, 16 * MIB)) {
            dom.write("vda", 0x41, 0, MIB);
            dom.write("vdb", 0x42, 0, MIB);
            Cli.run("full", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI, "-q").ok();
            String cp = ours(dom).get(0);
            dom.write("vda", 0x43, 2 * MIB, MIB);
            long qemu = Long.parseLong(Files.readString(Path.of("/run/libvirt/qemu", dom.name() + ".pid")).strip());
            Proc.run("kill", "-KILL", Long.toString(qemu));
            for (int i = 0; i < 100 && dom.isActive(); i++) {
                Thread.sleep(50);
            }
            // the bitmap, made in this QEMU's life, never reached the image (one from an earlier life stays in-use)
            assertFalse(Proc.run("qemu-img", "info", "-U", dom.disk("vda").file().toString()).contains(cp),
                "QEMU never saved the checkpoint's bitmap");
            dom.start();
            assertEquals(List.of(cp), ours(dom), "libvirt keeps the checkpoint");

            Cli.Result refused = Cli.run("incremental", "--repo", repo, "--domain", dom.name(), "--connect",
                Libvirt.URI, "--json");
            assertEquals(2, refused.exitCode(), refused.toString());
            assertEquals("backup-refused", refused.json().get("error").get("code").asText(), refused.toString());
            assertTrue(refused.stderr().contains("the bitmap of checkpoint " + cp), refused.stderr());

            dom.write("vdb", 0x44, 4 * MIB, MIB);
            Path vda = dom.snapshot("vda", tmp.resolve("vda-then.raw"));
            Path vdb = dom.snapshot("vdb", tmp.resolve("vdb-then.raw"));
            Cli.Result auto = Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI,
                "--json");
            assertEquals(0, auto.exitCode(), auto.toString());
            for (JsonNode d : auto.json().get("disks")) {
                assertEquals("full", d.get("type").asText(), d.toString());
                assertEquals("checkpoint-lost", d.get("fallbackReason").asText(), d.toString());
                assertTrue(d.get("reason").asText().contains("missing or inconsistent"), d.toString());
            }
            for (Map.Entry<String, Path> e : Map.of("vda", vda, "vdb", vdb).entrySet()) {
                Path out = tmp.resolve("restored-" + e.getKey() + ".raw");
                Cli.run("restore", "--repo", repo, "--vm", dom.name(), "--disk", e.getKey(), "--backup", "latest",
                    "--to", out.toString(), "-q").ok();
                assertEquals(Proc.sha256(e.getValue()), Proc.sha256(out), e.getKey() + " restores bit-exact");
            }
            assertFalse(ours(dom).contains(cp), "the broken checkpoint is deleted: " + ours(dom));

            dom.write("vda", 0x45, 6 * MIB, MIB);
            Cli.Result next = Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI,
                "--json");
            assertEquals(0, next.exitCode(), next.toString());
            assertEquals("incremental", next.json().get("disks").get(0).get("type").asText(), next.toString());
        }
    }

    /**
     * virsh takes a domain's id or UUID where a name goes, and so did {@code --domain}: a run by id backed up under
     * a VM named after the id (a chain of its own) and deleted the checkpoint the chain by name needed, so the next
     * run by name was a full backup. The domain's name is now looked up first.
     */
    @Test
    void aDomainGivenByIdOrUuidContinuesTheChainOfItsName() throws Exception {
        try (Domain dom = domain(16 * MIB)) {
            dom.write("vda", 0x61, 0, MIB);
            Cli.run("full", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI, "-q").ok();
            String id = Libvirt.virsh("domid", dom.name()).strip();
            String uuid = Libvirt.virsh("domuuid", dom.name()).strip();
            int n = 0;
            for (String given : List.of(id, uuid, dom.name())) {
                dom.write("vda", 0x62 + n, (2 + n) * MIB, MIB);
                Path then = dom.snapshot("vda", tmp.resolve("vda-" + n + ".raw"));
                Cli.Result r = Cli.run("auto", "--repo", repo, "--domain", given, "--connect", Libvirt.URI, "--json");
                assertEquals(0, r.exitCode(), r.toString());
                JsonNode d = r.json().get("disks").get(0);
                assertEquals(dom.name(), d.get("vm").asText(), given + ": " + d);
                assertEquals("incremental", d.get("type").asText(), given + ": " + d);
                Path out = tmp.resolve("restored-" + n + ".raw");
                Cli.run("restore", "--repo", repo, "--vm", dom.name(), "--disk", "vda", "--backup",
                    d.get("backupId").asText(), "--to", out.toString(), "-q").ok();
                assertEquals(Proc.sha256(then), Proc.sha256(out), given + ": restores bit-exact");
                n++;
            }
            assertEquals(1, ours(dom).size(), "one checkpoint: " + ours(dom));

            // a run under another VM name (--vm) keeps the checkpoint the chain of the name needs, and the reverse
            Cli.run("full", "--repo", repo, "--domain", dom.name(), "--vm", dom.name() + "-copy", "--connect",
                Libvirt.URI, "-q").ok();
            for (String vm : List.of(dom.name(), dom.name() + "-copy")) {
                dom.write("vda", 0x70, 8 * MIB, MIB);
                JsonNode d = Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--vm", vm, "--connect",
                    Libvirt.URI, "--json").ok().json().get("disks").get(0);
                assertEquals("incremental", d.get("type").asText(), vm + ": " + d);
            }
        }
    }

    /**
     * A --scratch-dir QEMU's user cannot enter: libvirt's "Permission denied" was all the message said; it now names
     * the closed directory and the way out. Nothing is left behind.
     */
    @Test
    void aScratchDirectoryQemuCannotEnterIsNamed() throws Exception {
        try (Domain dom = domain(16 * MIB)) {
            Path closed = Files.createDirectories(tmp.resolve("closed"));
            Files.setPosixFilePermissions(closed, java.nio.file.attribute.PosixFilePermissions.fromString("rwx------"));
            Cli.Result r = Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI,
                "--scratch-dir", closed.toString(), "--json");
            assertEquals(4, r.exitCode(), r.toString());
            assertEquals("libvirt-error", r.json().get("error").get("code").asText(), r.toString());
            String msg = r.json().get("error").get("message").asText();
            assertTrue(msg.contains("is closed to other users") && msg.contains("give --scratch-dir a directory"),
                msg);
            assertEquals(List.of(), ours(dom), "no checkpoint");
            try (var left = Files.list(closed)) {
                assertEquals(List.of(), left.toList(), "no scratch directory left");
            }
            Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI, "-q").ok();

            // restore --define --start into such a directory: the domain is defined but cannot start; say so
            String copy = dom.name() + "-r";
            try {
                Cli.Result rs = Cli.run("restore", "--repo", repo, "--domain", dom.name(), "--to",
                    closed.resolve("r").toString(), "--define", copy, "--start", "--connect", Libvirt.URI, "--json");
                assertEquals(4, rs.exitCode(), rs.toString());
                String m = rs.json().get("error").get("message").asText();
                assertTrue(m.contains("domain " + copy + " is defined") && m.contains("is closed to other users")
                    && m.contains("virsh start " + copy), m);
            } finally {
                Libvirt.virshResult("undefine", copy);
            }
        }
    }

    /** Ctrl-C or SIGTERM after the point in time was taken: no disk is committed, so the new checkpoint goes too. */
    @Test
    void anInterruptedBackupLeavesNoNewCheckpoint() throws Exception {
        try (Domain dom = domain(16 * MIB)) {
            dom.write("vda", 0x31, 0, MIB);
            Cli.run("full", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI, "-q").ok();
            List<String> before = ours(dom);
            dom.write("vda", 0x32, 2 * MIB, MIB);
            Cancellation cancel = new Cancellation();
            ProgressListener interrupter = new ProgressListener() {
                @Override
                public void message(String disk, String text) {
                    if (text.startsWith("point in time taken")) {
                        cancel.cancel("SIGTERM");
                    }
                }
            };
            Exception thrown = null;
            try (Repository r = Repository.open(Path.of(repo), OpenOptions.defaults())) {
                new DomainBackup(r, new Virsh(Libvirt.URI, Duration.ofSeconds(60)), EngineOptions.defaults(),
                    interrupter, cancel).run(new DomainBackup.Options(dom.name(), null, Set.of(),
                    DomainBackup.Quiesce.OFF, null), BackupMode.AUTO, ClientOptions.defaults(), Map.of(), null);
            } catch (Exception e) {
                thrown = e;
            }
            assertTrue(thrown != null, "the backup was interrupted");
            assertEquals(before, ours(dom), "the interrupted run's checkpoint is deleted again");
            Cli.Result next = Cli.run("incremental", "--repo", repo, "--domain", dom.name(), "--connect",
                Libvirt.URI);
            assertEquals(0, next.exitCode(), "the next run builds on the old checkpoint: " + next);
        }
    }

    /**
     * A backup job that a killed jbackup left (SIGKILL, the OOM killer: its scratch directory and owner file stay,
     * the process is gone) no longer makes every later run refuse with domain-busy until someone runs
     * {@code virsh domjobabort}: the next run ends it, removes its directory and backs up. A job whose owner still
     * runs is refused as before.
     */
    @Test
    void aBackupJobAKilledRunLeftIsEndedByTheNextRun() throws Exception {
        try (Domain dom = domain(16 * MIB)) {
            dom.write("vda", 0x22, 0, 2 * MIB);
            // the job as a killed run leaves it: begun in a scratch directory whose owner file names a dead process
            Path dir = LiveDomainBackup.scratchDirectory(Libvirt.shareWithQemu(tmp.resolve("scratch")));
            Process dead = new ProcessBuilder("true").start();
            dead.waitFor();
            Files.writeString(dir.resolve(LiveDomainBackup.OWNER), new Owner(Owner.current().host(), dead.pid(), 0).id());
            Virsh virsh = new Virsh(Libvirt.URI, Duration.ofSeconds(60));
            virsh.backupBegin(dom.name(), PullBackupXml.backup(dir.resolve("nbd.sock"), dir,
                List.of(new PullBackupXml.Disk("vda", null)), List.of()), PullBackupXml.checkpoint("stale-cp",
                "a killed run", List.of("vda"), List.of()), tmp);
            assertTrue(virsh.activeJob(dom.name()) != null, "the stale job runs");

            // while its owner runs, the job is another run's: refused, nothing changed
            Files.writeString(dir.resolve(LiveDomainBackup.OWNER), Owner.current().id());
            Cli.Result busy = Cli.run("full", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI,
                "--json");
            assertEquals(2, busy.exitCode(), busy.toString());
            assertEquals("domain-busy", busy.json().get("error").get("code").asText(), busy.toString());

            Files.writeString(dir.resolve(LiveDomainBackup.OWNER), new Owner(Owner.current().host(), dead.pid(), 0).id());
            Cli.Result r = Cli.run("full", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI,
                "--json");
            assertEquals(0, r.exitCode(), r.toString());
            assertTrue(r.stderr().contains("ending the backup job that an interrupted jbackup run left on domain "
                + dom.name() + " (the process that began it, " + dead.pid()), r.stderr());
            assertFalse(Files.exists(dir), "its scratch directory is removed");
            assertEquals(null, virsh.activeJob(dom.name()), "and the run's own job ended too");
            Path out = tmp.resolve("vda.raw");
            Cli.run("restore", "--repo", repo, "--vm", dom.name(), "--disk", "vda", "--backup", "latest", "--to",
                out.toString()).ok();
            assertEquals(Proc.sha256(dom.snapshot("vda", tmp.resolve("vda-now.raw"))), Proc.sha256(out));
        }
    }

    /**
     * A backup of a shut-off domain killed with SIGKILL (the OOM killer, {@code kill -9}) while its qemu-nbd serves
     * the domain's image. The qemu-nbd used to stay, holding the image's lock: {@code virsh start} then failed
     * ("Failed to get "write" lock") until someone found and killed it.
     */
    @Test
    void aKilledBackupOfAShutOffDomainLeavesNoQemuNbdAndTheDomainStarts() throws Exception {
        try (Domain dom = domain(256 * MIB)) {
            dom.shutOff();
            String image = dom.disk("vda").file().toString();
            Proc.run("qemu-io", "-f", "qcow2", "-c", "write -P 0x51 0 200M", image);

            Process jbackup = new ProcessBuilder(TestJvm.java("-Xmx256m", "-cp", System.getProperty("java.class.path"),
                "io.jbackup.cli.Main", "auto", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI))
                .redirectErrorStream(true).redirectOutput(tmp.resolve("killed.log").toFile()).start();
            Optional<ProcessHandle> qemuNbd = Optional.empty();
            String cmd = "";
            try {
                // once qemu-nbd answers (and holds the image), jbackup says what it reads
                Path log = tmp.resolve("killed.log");
                for (int i = 0; i < 1500 && !Files.readString(log).contains("full read") && jbackup.isAlive(); i++) {
                    Proc.sleep(20);
                }
                qemuNbd = jbackup.descendants().filter(p -> p.info().commandLine().orElse("").contains(image))
                    .findFirst();
                cmd = qemuNbd.flatMap(p -> p.info().commandLine()).orElse("");
                assertTrue(qemuNbd.isPresent() && jbackup.isAlive(), "jbackup serves the image with qemu-nbd: "
                    + Files.readString(log));
                jbackup.destroyForcibly(); // SIGKILL: no shutdown hook runs
                jbackup.waitFor();

                Proc.Result start = null;
                for (int i = 0; i < 20; i++) {
                    start = Libvirt.virshResult("start", dom.name());
                    if (start.exitCode() == 0) {
                        break;
                    }
                    Proc.sleep(100);
                }
                assertEquals(0, start.exitCode(), "the domain starts: its qemu-nbd ended with jbackup: " + start);
            } finally {
                qemuNbd.ifPresent(ProcessHandle::destroyForcibly);
                // the killed run's private directory (qemu-nbd -k DIR/nbd.sock) stays: remove it
                java.util.regex.Matcher m = java.util.regex.Pattern.compile("-k (\\S+)/nbd\\.sock").matcher(cmd);
                if (m.find()) {
                    LiveDomainBackup.deleteTree(Path.of(m.group(1)));
                }
            }

            // the next run backs up the running domain, bit-exact
            Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI, "-q").ok();
            Path out = tmp.resolve("vda.raw");
            Cli.run("restore", "--repo", repo, "--vm", dom.name(), "--disk", "vda", "--backup", "latest", "--to",
                out.toString(), "-q").ok();
            assertEquals(Proc.sha256(dom.snapshot("vda", tmp.resolve("now.raw"))), Proc.sha256(out));
            assertEquals(List.of(), ProcessHandle.allProcesses().filter(p -> p.isAlive()
                && p.info().command().orElse("").endsWith("qemu-nbd")
                && p.info().commandLine().orElse("").contains(image)).toList(), "no qemu-nbd serves the image");
        }
    }
}
