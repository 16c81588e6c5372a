package io.jbackup.libvirt;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.engine.BackupMode;
import io.jbackup.engine.Cancellation;
import io.jbackup.engine.DiskResult;
import io.jbackup.engine.EngineOptions;
import io.jbackup.engine.ProgressListener;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Domain;
import io.jbackup.testutil.Libvirt;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jbackup full|incremental|auto --domain} and {@code restore --domain} against a real libvirtd and a TCG
 * domain with no OS; guest writes come from the monitor. The source of truth for each backup is a raw snapshot
 * ({@code qemu-img convert -U}) of each disk taken while the domain is paused at the instant of the checkpoint:
 * every backup runs with the domain paused, so nothing writes between the snapshot and {@code backup-begin}.
 */
class DomainBackupTest {
    private static final long MIB = 1 << 20;

    @TempDir
    Path tmp;

    @BeforeAll
    static void libvirt() {
        Libvirt.assumeAvailable();
    }

    /** The expected content of every backup taken: backup id → SHA-256 of the raw snapshot. */
    private final Map<String, String> expected = new LinkedHashMap<>();
    private String repo;

    private Domain domain(long... sizes) throws Exception {
        repo = tmp.resolve("repo").toString();
        Cli.run("init", "--repo", repo, "--encryption", "none").ok();
        return Libvirt.domain(Libvirt.shareWithQemu(tmp.resolve("dom"))).disks(sizes).cdrom()
            .userInterface("52:54:00:4a:42:01").create();
    }

    /** Snapshots of every disk of {@code dom} (paused), by target. */
    private Map<String, Path> snapshots(Domain dom, String tag) {
        Map<String, Path> m = new LinkedHashMap<>();
        for (Domain.Disk d : dom.disks()) {
            m.put(d.target(), dom.snapshotAsIs(d.target(), tmp.resolve(tag + "-" + d.target() + ".raw")));
        }
        return m;
    }

    /** One backup through the CLI with the domain paused; returns the JSON result, records the expectations. */
    private JsonNode backUp(Domain dom, String command, String... extra) throws Exception {
        boolean running = dom.isActive();
        if (running) {
            dom.suspend();
        }
        Map<String, Path> snaps;
        Cli.Result r;
        try {
            snaps = snapshots(dom, "s" + expected.size());
            List<String> args = new ArrayList<>(List.of(command, "--repo", repo, "--domain", dom.name(),
                "--connect", Libvirt.URI, "--json"));
            args.addAll(List.of(extra));
            r = Cli.run(args.toArray(String[]::new));
        } finally {
            if (running) {
                dom.resume();
            }
        }
        assertEquals(0, r.exitCode(), r.toString());
        JsonNode out = r.json();
        for (JsonNode d : out.get("disks")) {
            assertEquals("ok", d.get("status").asText(), d.toString());
            expected.put(d.get("backupId").asText(), Proc.sha256(snaps.get(d.get("disk").asText())));
        }
        return out;
    }

    private static JsonNode disk(JsonNode result, String target) {
        for (JsonNode d : result.get("disks")) {
            if (d.get("disk").asText().equals(target)) {
                return d;
            }
        }
        throw new AssertionError("no disk " + target + " in " + result);
    }

    private List<String> ourCheckpoints(Domain dom) {
        return dom.checkpoints().stream().filter(c -> c.startsWith("jbackup-")).toList();
    }

    private void assertEveryBackupRestores(Domain dom) {
        for (Map.Entry<String, String> e : expected.entrySet()) {
            Path out = tmp.resolve("restore-" + e.getKey() + ".raw");
            Cli.run("restore", "--repo", repo, "--vm", dom.name(), "--disk", diskOf(e.getKey()), "--backup",
                e.getKey(), "--to", out.toString(), "-q").ok();
            assertEquals(e.getValue(), Proc.sha256(out), "backup " + e.getKey() + " restores bit-exact");
        }
    }

    private int completeBackups() throws Exception {
        try (Repository r = Repository.open(Path.of(repo), OpenOptions.defaults())) {
            return (int) r.listBackups().stream().filter(b -> "complete".equals(b.state())).count();
        }
    }

    private String diskOf(String backupId) {
        JsonNode show = Cli.run("show", "--repo", repo, backupId, "--json").ok().json();
        return show.path("disk").asText(show.path("backup").path("disk").asText());
    }

    private static List<Path> scratchDirs() throws java.io.IOException {
        try (var left = Files.list(Path.of("/var/tmp"))) {
            return new ArrayList<>(left.filter(p -> p.getFileName().toString().startsWith("jbackup-libvirt-"))
                .toList());
        }
    }

    /**
     * A raw data disk cannot be backed up with checkpoints: the other disks are, and the run says it is partial (exit
     * 3, the disk with status "skipped" and the way to leave it out knowingly), so a disk of the guest's data is not
     * silently missing from every nightly backup; with --exclude-disk the run is a success.
     */
    @Test
    void aRawDataDiskMakesTheRunPartialUnlessLeftOut() throws Exception {
        repo = tmp.resolve("repo").toString();
        Cli.run("init", "--repo", repo, "--encryption", "none").ok();
        try (Domain dom = Libvirt.domain(Libvirt.shareWithQemu(tmp.resolve("dom"))).disks(16 * MIB)
                .rawDisk(4 * MIB).define()) {
            Cli.Result r = Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI,
                "--json");
            assertEquals(3, r.exitCode(), r.toString());
            assertEquals("partial", r.json().get("status").asText(), r.stdout());
            assertEquals("ok", disk(r.json(), "vda").get("status").asText(), r.stdout());
            JsonNode raw = disk(r.json(), "vdz");
            assertEquals("skipped", raw.get("status").asText(), r.stdout());
            assertTrue(raw.get("reason").asText().contains("raw image")
                && raw.get("reason").asText().contains("--exclude-disk vdz"), r.stdout());
            assertTrue(r.stderr().contains("jbackup: warning: " + dom.name() + "/vdz: skipped: "), r.stderr());

            Cli.Result left = Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--connect", Libvirt.URI,
                "--exclude-disk", "vdz", "--json");
            assertEquals(0, left.exitCode(), left.toString());
            assertEquals(1, left.json().get("disks").size(), left.stdout());
        }
    }

    @Test
    void chainOfARunningDomainWithAnAddedDiskAndWritesDuringTheBackup() throws Exception {
        List<Path> scratchBefore = scratchDirs();
        try (Domain dom = domain(64 * MIB, 32 * MIB)) {
            dom.write("vda", 0x11, 0, 4 * MIB);
            dom.write("vdb", 0x22, MIB, 3 * MIB);

            // full
            JsonNode full = backUp(dom, "full");
            assertEquals(2, full.get("disks").size(), "the cdrom is skipped: " + full);
            // and the JSON document says so (not a log line on standard error)
            boolean noted = false;
            for (JsonNode n : full.get("notes")) {
                noted |= n.get("disk").asText().endsWith("/hdc") && n.get("message").asText().startsWith("skipped:")
                    && n.get("level").asText().equals("note");
            }
            assertTrue(noted, full.toString());
            assertEquals("full", disk(full, "vda").get("type").asText());
            assertEquals(1, ourCheckpoints(dom).size(), dom.checkpoints().toString());

            // writes through the monitor, including write-zeroes and discard; incremental
            dom.write("vda", 0x33, 8 * MIB, MIB);
            dom.writeZeroes("vdb", MIB, MIB);
            dom.discard("vdb", 2 * MIB, MIB);
            JsonNode inc = backUp(dom, "incremental");
            for (String t : List.of("vda", "vdb")) {
                assertEquals("incremental", disk(inc, t).get("type").asText(), inc.toString());
            }
            assertTrue(disk(inc, "vda").get("bytesRead").asLong() <= 2 * MIB, "only the dirty chunks: " + inc);
            assertEquals(1, ourCheckpoints(dom).size(), "the older checkpoint is deleted: " + dom.checkpoints());

            // a third disk: auto makes a full of it, incrementals of the others
            dom.attachDisk("vdc", 16 * MIB);
            dom.write("vdc", 0x44, 0, 2 * MIB);
            dom.write("vda", 0x55, 16 * MIB, MIB);
            JsonNode auto = backUp(dom, "auto");
            assertEquals("full", disk(auto, "vdc").get("type").asText(), auto.toString());
            assertTrue(disk(auto, "vdc").get("reason").asText().contains("no complete backup"), auto.toString());
            assertEquals("incremental", disk(auto, "vda").get("type").asText(), auto.toString());
            assertEquals("incremental", disk(auto, "vdb").get("type").asText(), auto.toString());

            // guest writes during the backup: the job holds the point in time
            dom.suspend();
            Map<String, Path> before = snapshots(dom, "during");
            AtomicBoolean wrote = new AtomicBoolean();
            ProgressListener writer = new ProgressListener() {
                @Override
                public void message(String disk, String text) {
                    if (text.startsWith("point in time taken") && wrote.compareAndSet(false, true)) {
                        dom.write("vda", 0x99, 0, 2 * MIB);
                        dom.write("vdc", 0x99, MIB, 2 * MIB);
                    }
                }
            };
            List<DiskResult> during;
            try (Repository r = Repository.open(Path.of(repo), OpenOptions.defaults())) {
                during = new DomainBackup(r, new Virsh(Libvirt.URI, Duration.ofSeconds(60)), EngineOptions.defaults(),
                    writer, new Cancellation()).run(new DomainBackup.Options(dom.name(), null, Set.of(),
                    DomainBackup.Quiesce.AUTO, null), BackupMode.AUTO, ClientOptions.defaults(), Map.of(), null);
            } finally {
                dom.resume();
            }
            assertTrue(wrote.get(), "the guest wrote during the backup");
            for (DiskResult d : during) {
                assertTrue(d.ok(), d.toString());
                expected.put(d.backupId(), Proc.sha256(before.get(d.disk())));
            }
            Path after = dom.snapshot("vda", tmp.resolve("after-vda.raw"));
            assertNotEquals(Proc.sha256(before.get("vda")), Proc.sha256(after), "the write landed on the disk");

            // every backup of every disk restores bit-exact
            assertEquals(10, expected.size(), "2 full, 2 incremental, 3 auto, 3 during writes");
            List<Path> scratch = scratchDirs();
            scratch.removeAll(scratchBefore);
            assertTrue(scratch.isEmpty(), "scratch directories are removed: " + scratch);
            assertEveryBackupRestores(dom);

            // the domain XML is stored with every backup
            String anyId = expected.keySet().iterator().next();
            Cli.Result xml = Cli.run("show", "--repo", repo, anyId, "--attachment", "domain.xml").ok();
            assertTrue(xml.stdout().contains("<name>" + dom.name() + "</name>"), xml.stdout());

            // instant recovery: serve --writable, restore --instant --define --start; the guest reads the backup
            instantRecovery(dom, before);

            // restore --define: a new domain with the restored disks (new name, UUID and MAC), which starts
            String copy = dom.name() + "-r";
            Path dir = Libvirt.shareWithQemu(tmp.resolve("restored"));
            try {
                Cli.Result rr = Cli.run("restore", "--repo", repo, "--domain", dom.name(), "--to", dir.toString(),
                    "--define", copy, "--start", "--connect", Libvirt.URI, "--json").ok();
                assertEquals(3, rr.json().get("disks").size(), rr.toString());
                assertEquals("running", Libvirt.virsh("domstate", copy).strip());
                String defined = Libvirt.virsh("dumpxml", copy);
                assertFalse(defined.contains(dom.mac()), "a new MAC address: " + defined);
                assertFalse(defined.contains(Libvirt.virsh("domuuid", dom.name()).strip()), "a new UUID");
                for (String t : List.of("vda", "vdb", "vdc")) {
                    Path file = dir.resolve(t + ".qcow2");
                    assertTrue(defined.contains(file.toString()), defined);
                    Path raw = tmp.resolve("defined-" + t + ".raw");
                    Proc.run("qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", file.toString(), raw.toString());
                    assertEquals(Proc.sha256(before.get(t)), Proc.sha256(raw), t + " of the defined domain");
                }
            } finally {
                Libvirt.virshResult("destroy", copy);
                Libvirt.virshResult("undefine", copy);
            }
        }
    }

    private static String readQuietly(Path f) {
        try {
            return Files.readString(f);
        } catch (java.io.IOException e) {
            return e.toString();
        }
    }

    /** {@code serve --writable} in a child JVM, then {@code restore --domain --instant --define --start}. */
    private void instantRecovery(Domain dom, Map<String, Path> snapshot) throws Exception {
        Path dir = Libvirt.shareWithQemu(tmp.resolve("ir"));
        Path sock = dir.resolve("serve.sock");
        String ir = dom.name() + "-ir";
        try (Proc.Background serve = Proc.start(tmp.resolve("serve.log"), TestJvm.java("-Xmx256m", "-cp",
            System.getProperty("java.class.path"), "io.jbackup.cli.Main", "serve", "--repo", repo, "--socket",
            sock.toString(), "--cache-size", "32", "--writable", "--overlay-dir", dir.resolve("overlays").toString())
            .toArray(String[]::new))) {
            for (int i = 0; i < 600 && !Files.exists(sock); i++) {
                Proc.sleep(50);
            }
            assertTrue(Files.exists(sock), () -> "serve did not start: " + readQuietly(tmp.resolve("serve.log")));
            Libvirt.shareFileWithQemu(sock);
            Cli.run("restore", "--repo", repo, "--domain", dom.name(), "--to", dir.toString(), "--instant",
                sock.toString(), "--define", ir, "--start", "--connect", Libvirt.URI).ok();
            assertEquals("running", Libvirt.virsh("domstate", ir).strip());
            String blk = Libvirt.virsh("domblklist", ir);
            assertTrue(blk.contains("vda@"), blk);
            // the guest's vda is the backup's: 0x11 where the write during the backup went later
            Path log = Libvirt.QEMU_LOG_DIR.resolve(ir + ".log");
            Libvirt.virsh("qemu-monitor-command", ir, "--hmp",
                "qemu-io -d /machine/peripheral/virtio-disk0/virtio-backend \"read -P 0x11 0 2M\"");
            String seen = "";
            for (int i = 0; i < 200 && !seen.contains("bytes at offset 0"); i++) {
                Proc.sleep(50);
                seen = Files.exists(log) ? Files.readString(log) : "";
            }
            assertTrue(seen.contains("read 2097152/2097152 bytes at offset 0"), seen);
            assertFalse(seen.contains("Pattern verification failed"), seen);
        } finally {
            Libvirt.virshResult("destroy", ir);
            Libvirt.virshResult("undefine", ir);
            Files.deleteIfExists(Libvirt.QEMU_LOG_DIR.resolve(ir + ".log"));
        }
    }

    @Test
    void lostCheckpointOfflineDomainAndBusyOrMissingDomains() throws Exception {
        try (Domain dom = domain(32 * MIB)) {
            dom.write("vda", 0x11, 0, 2 * MIB);
            backUp(dom, "full");
            List<String> cps = ourCheckpoints(dom);
            assertEquals(1, cps.size());

            // the domain lost its checkpoint (as after a redefine): incremental refuses, auto makes a full and says why
            Libvirt.virsh("checkpoint-delete", dom.name(), cps.get(0), "--metadata");
            Cli.Result refused = Cli.run("incremental", "--repo", repo, "--domain", dom.name(), "--json");
            assertEquals(2, refused.exitCode(), refused.toString());
            assertTrue(refused.stderr().contains("lost checkpoint " + cps.get(0)), refused.stderr());
            JsonNode auto = backUp(dom, "auto");
            JsonNode vda = disk(auto, "vda");
            assertEquals("full", vda.get("type").asText(), auto.toString());
            assertEquals("checkpoint-lost", vda.get("fallbackReason").asText(), auto.toString());

            // shut off: an offline incremental from the checkpoint's bitmap in the qcow2, then online again
            dom.write("vda", 0x22, 4 * MIB, MIB);
            dom.shutOff();
            Proc.run("qemu-io", "-f", "qcow2", "-c", "write -P 0x23 8M 1M", dom.disk("vda").file().toString());
            JsonNode offline = backUp(dom, "auto");
            assertEquals("incremental", disk(offline, "vda").get("type").asText(), offline.toString());
            assertTrue(disk(offline, "vda").get("bytesRead").asLong() <= 2 * MIB, offline.toString());
            dom.start();
            dom.write("vda", 0x24, 12 * MIB, MIB);
            JsonNode online = backUp(dom, "auto");
            assertEquals("incremental", disk(online, "vda").get("type").asText(), online.toString());

            // a job already running on the domain: refused, nothing changed; once it ended, the backup runs
            Path d = Libvirt.shareWithQemu(tmp.resolve("manual"));
            Path bx = d.resolve("b.xml");
            Files.writeString(bx, "<domainbackup mode='pull'><server transport='unix' socket='" + d.resolve("s.sock")
                + "'/><disks><disk name='vda' backup='yes' type='file'><scratch file='" + d.resolve("s.qcow2")
                + "'/></disk></disks></domainbackup>");
            Libvirt.virsh("backup-begin", dom.name(), bx.toString());
            try {
                Cli.Result busy = Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--json");
                assertEquals(2, busy.exitCode(), busy.toString());
                assertEquals("domain-busy", busy.json().get("error").get("code").asText(), busy.toString());
            } finally {
                Libvirt.virsh("domjobabort", dom.name());
            }
            backUp(dom, "auto");

            // options that name what is wrong
            Cli.Result exclude = Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--exclude-disk", "vdz");
            assertEquals(2, exclude.exitCode(), exclude.toString());
            assertTrue(exclude.stderr().contains("has no disk vdz"), exclude.stderr());
            Cli.Result quiesce = Cli.run("auto", "--repo", repo, "--domain", dom.name(), "--quiesce", "--json");
            assertEquals(4, quiesce.exitCode(), quiesce.toString());
            assertTrue(quiesce.stderr().contains("guest agent of domain " + dom.name() + " does not answer"),
                quiesce.stderr());
            assertTrue(dom.checkpoints().size() == 1, "nothing changed: " + dom.checkpoints());

            // a job file with domain: in place of disks, run by run-due
            Path jobs = tmp.resolve("jobs.yaml");
            Files.writeString(jobs, String.join("\n", "repository: " + repo, "timezone: UTC", "jobs:",
                "  - name: nightly", "    domain: " + dom.name(), "    schedule: \"0 2 * * *\"",
                "    libvirt: {connect: \"" + Libvirt.URI + "\", quiesce: false}", ""));
            dom.write("vda", 0x25, 16 * MIB, MIB);
            dom.suspend();
            Path scheduled;
            Cli.Result due;
            try {
                scheduled = dom.snapshotAsIs("vda", tmp.resolve("scheduled.raw"));
                due = Cli.run("run-due", "--config", jobs.toString(), "--now", "2026-11-24T02:30:00Z", "--json");
            } finally {
                dom.resume();
            }
            assertEquals(0, due.exitCode(), due.toString());
            JsonNode task = due.json().get("tasks").get(0);
            assertEquals("ok", task.get("status").asText(), task.toString());
            JsonNode sd = task.get("disks").get(0);
            assertEquals("incremental", sd.get("type").asText(), task.toString());
            expected.put(sd.get("backupId").asText(), Proc.sha256(scheduled));

            // a domain that does not exist
            Cli.Result missing = Cli.run("auto", "--repo", repo, "--domain", dom.name() + "-nosuch", "--json");
            assertEquals(2, missing.exitCode(), missing.toString());
            assertEquals("not-found", missing.json().get("error").get("code").asText(), missing.toString());
            assertTrue(missing.stderr().contains(dom.name() + "-nosuch"), missing.stderr());

            assertEveryBackupRestores(dom);
        }
    }

    @Test
    void theNvramOfAUefiDomainIsStoredAndRestored() throws Exception {
        repo = tmp.resolve("repo").toString();
        Cli.run("init", "--repo", repo, "--encryption", "none").ok();
        Assumptions.assumeTrue(Files.exists(Path.of(Domain.OVMF_CODE)), "OVMF (package ovmf) is not installed");
        try (Domain dom = Libvirt.domain(Libvirt.shareWithQemu(tmp.resolve("dom"))).disks(16 * MIB).uefi().create()) {
            dom.write("vda", 0x41, 0, MIB);
            dom.shutOff();
            String nvram = Proc.sha256(dom.nvram());
            JsonNode full = backUp(dom, "full");
            String id = disk(full, "vda").get("backupId").asText();
            try (Repository r = Repository.open(Path.of(repo), OpenOptions.defaults())) {
                assertTrue(java.util.Arrays.equals(Files.readAllBytes(dom.nvram()), r.readAttachment(id, "nvram")),
                    "the backup holds the NVRAM file");
            }
            String copy = dom.name() + "-r";
            Path dir = Libvirt.shareWithQemu(tmp.resolve("restored"));
            try {
                Cli.run("restore", "--repo", repo, "--domain", dom.name(), "--to", dir.toString(), "--define", copy,
                    "--start", "--connect", Libvirt.URI).ok();
                Path vars = dir.resolve(copy + "_VARS.fd");
                assertEquals(nvram, Proc.sha256(vars), "the NVRAM file is restored byte for byte");
                assertTrue(Libvirt.virsh("dumpxml", "--inactive", copy).contains(vars.toString()));
                assertEquals("running", Libvirt.virsh("domstate", copy).strip());
            } finally {
                Libvirt.virshResult("destroy", copy);
                Libvirt.virshResult("undefine", copy, "--nvram");
            }
            assertEveryBackupRestores(dom);
        }
    }

    @Test
    void libvirtdStoppedInTheMiddleOfABackupCommitsNothing() throws Exception {
        try (Domain dom = domain(32 * MIB)) {
            dom.write("vda", 0x31, 0, 2 * MIB);
            backUp(dom, "full");
            dom.write("vda", 0x32, 4 * MIB, MIB);
            int before = completeBackups();
            ProgressListener killer = new ProgressListener() {
                @Override
                public void message(String disk, String text) {
                    if (text.startsWith("point in time taken")) {
                        Proc.exec(Duration.ofSeconds(30), "pkill", "-x", "libvirtd");
                        for (int i = 0; i < 100 && Files.exists(Libvirt.LIBVIRT_SOCK)
                            && Proc.exec(Duration.ofSeconds(5), "pgrep", "-x", "libvirtd").exitCode() == 0; i++) {
                            Proc.sleep(50);
                        }
                    }
                }
            };
            List<DiskResult> results;
            try (Repository r = Repository.open(Path.of(repo), OpenOptions.defaults())) {
                results = new DomainBackup(r, new Virsh(Libvirt.URI, Duration.ofSeconds(30)), EngineOptions.defaults(),
                    killer, new Cancellation()).run(new DomainBackup.Options(dom.name(), null, Set.of(),
                    DomainBackup.Quiesce.OFF, null), BackupMode.AUTO, ClientOptions.defaults(), Map.of(), null);
            } finally {
                Libvirt.restart();
            }
            assertEquals(1, results.size());
            assertFalse(results.get(0).ok(), results.toString());
            assertTrue(results.get(0).reason().contains("was not committed"), results.get(0).reason());
            assertEquals(before, completeBackups(), "nothing was committed");

            // the next run succeeds (ending the job the interrupted run left, if libvirt kept it)
            JsonNode next = backUp(dom, "auto");
            assertEquals("incremental", disk(next, "vda").get("type").asText(), next.toString());
            assertEveryBackupRestores(dom);
        }
    }
}
