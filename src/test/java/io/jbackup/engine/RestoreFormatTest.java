package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.TestJvm;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code restore --format raw|qcow2} (by default from the target's extension), {@code --vm V --to DIR} (a directory,
 * created when missing, one file per disk), and the human form of the target in the summary.
 */
class RestoreFormatTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    static Path dir;
    static BackupChain chain;

    @BeforeAll
    static void build() {
        chain = BackupChain.build(dir);
    }

    private static Cli.Result restore(String... extra) {
        List<String> a = new ArrayList<>(List.of("restore", "--repo", chain.repo().toString(), "--disk", "vda"));
        a.addAll(List.of(extra));
        return Cli.run(a.toArray(String[]::new));
    }

    private static String formatOf(Path image) throws IOException {
        return JSON.readTree(Proc.run("qemu-img", "info", "--output=json", image.toString())).get("format").asText();
    }

    private static Proc.Result compare(Path image, String format, Path rawReference) {
        return Proc.exec(Duration.ofSeconds(60), "qemu-img", "compare", "-f", format, "-F", "raw", image.toString(),
            rawReference.toString());
    }

    @Test
    void qcow2ExtensionWritesASparseQcow2() throws IOException {
        for (int i = 0; i < chain.ids().size(); i++) {
            Path q = dir.resolve("restored" + i + ".qcow2");
            Cli.Result r = restore("--backup", chain.ids().get(i), "--to", q.toString());
            r.ok();
            assertEquals("qcow2", formatOf(q), r.toString());
            Proc.Result cmp = compare(q, "qcow2", chain.snapshots().get(i));
            assertEquals(0, cmp.exitCode(), cmp.toString());
            assertTrue(r.stdout().contains("to " + q + " (qcow2)"), r.stdout());
            // sparse: only the data chunks are allocated in the qcow2
            long data = 0;
            for (JsonNode e : JSON.readTree(Proc.run("qemu-img", "map", "--output=json", q.toString()))) {
                if (e.get("data").asBoolean()) {
                    data += e.get("length").asLong();
                }
            }
            assertTrue(data < BackupChain.SIZE / 2, "allocated " + data + " of " + BackupChain.SIZE);
        }
        // no temporary sockets or files left next to the image
        try (var s = Files.list(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().endsWith(".jbackup-tmp")), "leftovers");
        }
    }

    @Test
    void formatOptionOverridesTheExtensionAndJsonNamesIt() throws IOException {
        Path rawNamedQcow2 = dir.resolve("asked-raw.qcow2");
        JsonNode j = restore("--to", rawNamedQcow2.toString(), "--format", "raw", "--json").ok().json();
        assertEquals("raw", j.get("disks").get(0).get("format").asText(), j.toString());
        assertEquals("raw", formatOf(rawNamedQcow2));
        assertEquals(Proc.sha256(chain.snapshots().get(2)), Proc.sha256(rawNamedQcow2));

        Path qcowNamedImg = dir.resolve("asked-qcow2.img");
        JsonNode q = restore("--to", qcowNamedImg.toString(), "--format", "qcow2", "--json").ok().json();
        assertEquals("qcow2", q.get("disks").get(0).get("format").asText(), q.toString());
        assertEquals(qcowNamedImg.toString(), q.get("disks").get(0).get("target").asText(), q.toString());
        assertEquals("qcow2", formatOf(qcowNamedImg));
        assertEquals(0, compare(qcowNamedImg, "qcow2", chain.snapshots().get(2)).exitCode());

        Cli.Result bad = restore("--to", dir.resolve("x.raw").toString(), "--format", "vmdk");
        assertEquals(2, bad.exitCode(), bad.toString());
        assertTrue(bad.stderr().contains("raw") && bad.stderr().contains("qcow2"), bad.stderr());
    }

    /** A target in a directory that does not exist: exit 2, and the message says how to go on; nothing created. */
    @Test
    void missingTargetDirectoryNamesTheWayOut() {
        for (String name : List.of("vda.raw", "vda.qcow2")) {
            Path target = dir.resolve("no-such-dir/sub/" + name);
            Cli.Result r = restore("--to", target.toString());
            assertEquals(2, r.exitCode(), r.toString());
            assertTrue(r.stderr().contains("restore target directory " + target.getParent() + " does not exist; "
                + "create it first (mkdir -p " + target.getParent() + ")"), r.stderr());
            assertFalse(Files.exists(dir.resolve("no-such-dir")));
        }
    }

    @Test
    void existingQcow2IsRefusedWithoutForce() throws IOException {
        Path q = dir.resolve("existing.qcow2");
        restore("--to", q.toString()).ok();
        String before = Proc.sha256(q);
        Cli.Result refused = restore("--backup", chain.ids().get(0), "--to", q.toString());
        assertEquals(2, refused.exitCode(), refused.toString());
        assertTrue(refused.stderr().contains("--force"), refused.stderr());
        assertEquals(before, Proc.sha256(q), "a refused restore leaves the file alone");
        restore("--backup", chain.ids().get(0), "--to", q.toString(), "--force").ok();
        assertEquals(0, compare(q, "qcow2", chain.snapshots().get(0)).exitCode());
    }

    @Test
    void unknownExtensionIsRawWithANote() throws IOException {
        Path v = dir.resolve("restored.vmdk");
        Cli.Result r = restore("--to", v.toString()).ok();
        assertTrue(r.stderr().contains("note") && r.stderr().contains("raw") && r.stderr().contains("--format"),
            r.stderr());
        assertFalse(r.stdout().contains("note"), "the note is not command output: " + r.stdout());
        assertEquals("raw", formatOf(v));
        assertEquals(Proc.sha256(chain.snapshots().get(2)), Proc.sha256(v));

        Cli.Result plain = restore("--to", dir.resolve("restored-plain.raw").toString()).ok();
        assertFalse(plain.stderr().contains("note"), plain.stderr());
        Cli.Result quiet = restore("--to", dir.resolve("restored-quiet.vmdk").toString(), "-q").ok();
        assertFalse(quiet.stderr().contains("note"), quiet.stderr());
    }

    @Test
    void vmToAnExistingOrMissingDirectoryWritesOneFilePerDisk() throws IOException {
        Path repo = dir.resolve("vmrepo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        Path a = QemuImages.qcow2(dir.resolve("web-vda.qcow2"), "4M");
        QemuImages.io(a, "qcow2", "write -P 0x0a 0 1M");
        try (Proc.Background s = QemuImages.qemuNbd(dir, a, "qcow2", "-r", "-A")) {
            Cli.run("full", "--repo", repo.toString(), "--vm", "web", "--source", "vda=" + QemuImages.uriOf(s)).ok();
        }
        String ref = Proc.sha256(QemuImages.toRaw(a, dir.resolve("web-vda-ref.raw")));

        Path existing = Files.createDirectories(dir.resolve("restore-existing"));
        Cli.run("restore", "--repo", repo.toString(), "--vm", "web", "--to", existing.toString()).ok();
        assertEquals(ref, Proc.sha256(existing.resolve("vda.raw")));

        Path missing = dir.resolve("restore-missing/sub");
        Cli.run("restore", "--repo", repo.toString(), "--vm", "web", "--to", missing.toString()).ok();
        assertTrue(Files.isDirectory(missing), "created as a directory");
        assertEquals(ref, Proc.sha256(missing.resolve("vda.raw")));

        Path q = dir.resolve("restore-qcow2");
        Cli.run("restore", "--repo", repo.toString(), "--vm", "web", "--to", q.toString(), "--format", "qcow2").ok();
        assertEquals("qcow2", formatOf(q.resolve("vda.qcow2")));
        assertEquals(0, compare(q.resolve("vda.qcow2"), "qcow2", dir.resolve("web-vda-ref.raw")).exitCode());

        Cli.Result unknownDisk = Cli.run("restore", "--repo", repo.toString(), "--vm", "web", "--to",
            "vdx=" + dir.resolve("vdx.raw"));
        assertEquals(2, unknownDisk.exitCode(), unknownDisk.toString());
        assertTrue(unknownDisk.stderr().contains("no disk vdx"), unknownDisk.stderr());

        // one disk (--disk) into a directory: a clear refusal, not "Is a directory" (exit 1)
        Cli.Result intoDir = Cli.run("restore", "--repo", repo.toString(), "--vm", "web", "--disk", "vda", "--to",
            existing.toString());
        assertEquals(2, intoDir.exitCode(), intoDir.toString());
        assertTrue(intoDir.stderr().contains("is a directory"), intoDir.stderr());

        Path file = Files.writeString(dir.resolve("not-a-dir"), "x");
        Cli.Result notDir = Cli.run("restore", "--repo", repo.toString(), "--vm", "web", "--to", file.toString());
        assertEquals(2, notDir.exitCode(), notDir.toString());
        assertTrue(notDir.stderr().contains("directory"), notDir.stderr());
        assertEquals("x", Files.readString(file));
    }

    @Test
    void nbdTargetIsNamedByItsUri() throws IOException {
        Path q = QemuImages.qcow2(dir.resolve("nbd-target.qcow2"), "16M");
        try (Proc.Background nbd = QemuImages.qemuNbd(dir, q, "qcow2")) {
            String uri = QemuImages.uriOf(nbd);
            Cli.Result r = restore("--to", uri).ok();
            assertTrue(r.stdout().contains("to " + uri + " "), r.stdout());
            assertFalse(r.stdout().contains("NbdTarget@"), r.stdout());
            JsonNode j = restore("--to", uri, "--json").ok().json();
            assertEquals(uri, j.get("disks").get(0).get("target").asText(), j.toString());
        }
        assertEquals(0, compare(q, "qcow2", chain.snapshots().get(2)).exitCode());
    }

    @Test
    void qcow2WithoutQemuImgExitsFourNamingThePackage() throws Exception {
        Path q = dir.resolve("no-tools.qcow2");
        List<String> cmd = new ArrayList<>(TestJvm.java(
            "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
            "io.jbackup.cli.Main", "restore", "--repo", chain.repo().toString(), "--disk", "vda", "--to",
            q.toString()));
        Path err = dir.resolve("no-tools.err");
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(err.toFile())
            .redirectOutput(dir.resolve("no-tools.out").toFile()).redirectInput(new File("/dev/null"));
        pb.environment().put("PATH", dir.resolve("no-such-bin").toString());
        Process p = pb.start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        String stderr = Files.readString(err);
        assertEquals(4, p.exitValue(), stderr);
        assertTrue(stderr.contains("qemu-utils") && stderr.contains("--format raw"), stderr);
        assertFalse(Files.exists(q), "nothing written");
    }

    /**
     * The user's own NBD target fails (nbdkit answers every write with ENOSPC) or is not there: exit 4 with
     * {@code target-error} / {@code target-unreachable} naming the target's URI, not the {@code source-*} codes of a
     * backup's NBD source.
     */
    @Test
    void failingOrMissingNbdTargetIsATargetError() {
        Path sock = dir.resolve("enospc.sock");
        try (Proc.Background kit = Proc.start(dir.resolve("enospc.log"), "nbdkit", "-f", "-U", sock.toString(),
                "--filter=error", "memory", "64M", "error=ENOSPC", "error-pwrite-rate=100%").awaitPath(sock)) {
            String uri = "nbd+unix:///?socket=" + sock;
            Cli.Result r = restore("--to", uri, "--json");
            assertEquals(4, r.exitCode(), r.toString());
            JsonNode err = r.json().get("error");
            assertEquals("target-error", err.get("code").asText(), r.toString());
            assertTrue(err.get("message").asText().contains(uri) && err.get("message").asText().contains("ENOSPC"),
                r.toString());
        }
        String missing = "nbd+unix:///?socket=" + dir.resolve("no-such.sock");
        Cli.Result r = restore("--to", missing, "--json");
        assertEquals(4, r.exitCode(), r.toString());
        assertEquals("target-unreachable", r.json().get("error").get("code").asText(), r.toString());
        assertTrue(r.json().get("error").get("message").asText().contains(missing), r.toString());
    }

    /** A target whose file system fills up: exit 4 with the target named, not "a bug", and no half-written file. */
    @Test
    void fullTargetFileSystemIsATargetErrorAndLeavesNoFile() throws IOException {
        Path mnt = Files.createDirectories(dir.resolve("tiny"));
        Proc.Result m = Proc.exec(Duration.ofSeconds(30), "mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs",
            mnt.toString());
        org.junit.jupiter.api.Assumptions.assumeTrue(m.exitCode() == 0,
            "needs root to mount a 1 MiB tmpfs: " + m.stderr().trim());
        try {
            Path target = mnt.resolve("vda.raw");
            Cli.Result r = restore("--backup", chain.ids().get(chain.ids().size() - 1), "--to", target.toString(),
                "--json");
            assertEquals(4, r.exitCode(), r.toString());
            JsonNode err = r.json().get("error");
            assertEquals("target-error", err.get("code").asText(), r.toString());
            assertTrue(err.get("message").asText().contains(target.toString()), r.toString());
            assertFalse(r.stderr().contains("looks like a bug"), r.stderr());
            assertFalse(Files.exists(target), "the half-written file is removed");

            // the same as a qcow2 (written through a private qemu-nbd): also a target error naming the file, not
            // an error of "the NBD server", and neither the image nor its temporary file is left
            Path qcow2 = mnt.resolve("vda.qcow2");
            r = restore("--backup", chain.ids().get(chain.ids().size() - 1), "--to", qcow2.toString(), "--json");
            assertEquals(4, r.exitCode(), r.toString());
            err = r.json().get("error");
            assertEquals("target-error", err.get("code").asText(), r.toString());
            assertTrue(err.get("message").asText().contains(qcow2.toString())
                && err.get("message").asText().contains("free space"), r.toString());
            try (var left = Files.list(mnt)) {
                assertEquals(List.of(), left.toList(), "nothing is left on the full file system");
            }

            // an existing file replaced with --force: the temporary copy does not fit, the file stays as it was,
            // and the note names --in-place, which needs no room for a second copy
            byte[] old = new byte[64 << 10];
            java.util.Arrays.fill(old, (byte) 0x5a);
            Path existing = Files.write(mnt.resolve("old.raw"), old);
            r = restore("--backup", chain.ids().get(chain.ids().size() - 1), "--to", existing.toString(), "--force");
            assertEquals(4, r.exitCode(), r.toString());
            assertTrue(r.stderr().contains(existing + " is unchanged") && r.stderr().contains("--in-place"),
                r.stderr());
            assertTrue(java.util.Arrays.equals(old, Files.readAllBytes(existing)), "the old file as it was");
            try (var left = Files.list(mnt)) {
                assertEquals(List.of(existing), left.toList(), "no temporary file is left");
            }
        } finally {
            Proc.exec(Duration.ofSeconds(30), "umount", mnt.toString());
        }
    }
}
