package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.catalog.ChunkLocation;
import io.jbackup.store.BackupReader;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.TestFiles;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code jbackup restore} to every kind of target: a new qcow2 through a writable qemu-nbd (zero chunks go as
 * WRITE_ZEROES, so the qcow2 stays as small as the data), an existing file with and without {@code --zero}, a
 * whole VM backup set to an NBD export and a file, and a damaged pack with and without {@code --ignore-errors}.
 */
class RestoreTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int CHUNK = 64 << 10;

    @TempDir
    static Path dir;
    static BackupChain chain;

    @BeforeAll
    static void build() {
        chain = BackupChain.build(dir);
    }

    private static Cli.Result restore(String id, String... extra) {
        List<String> a = new ArrayList<>(List.of("restore", "--repo", chain.repo().toString(), "--disk", "vda",
            "--backup", id));
        a.addAll(List.of(extra));
        return Cli.run(a.toArray(String[]::new));
    }

    /** Bytes of {@code raw} in chunks that are not all zero. */
    private static long dataChunkBytes(Path raw) throws IOException {
        byte[] b = Files.readAllBytes(raw);
        long n = 0;
        for (int off = 0; off < b.length; off += CHUNK) {
            for (int k = off; k < Math.min(b.length, off + CHUNK); k++) {
                if (b[k] != 0) {
                    n += Math.min(CHUNK, b.length - off);
                    break;
                }
            }
        }
        return n;
    }

    @Test
    void toANewQcow2ThroughQemuNbdWithWriteZeroes() throws IOException {
        for (int i = 1; i < chain.ids().size(); i++) {
            Path q = QemuImages.qcow2(dir.resolve("target" + i + ".qcow2"), "16M");
            boolean stale = i == 2;
            if (stale) {
                // a used image: the restore must overwrite everything, zero chunks included
                QemuImages.io(q, "qcow2", "write -P 0xee 0 16M");
            }
            String[] opts = stale ? new String[] {"--discard=unmap"} : new String[0];
            try (Proc.Background nbd = QemuImages.qemuNbd(dir, q, "qcow2", opts)) {
                JsonNode j = restore(chain.ids().get(i), "--to", QemuImages.uriOf(nbd), "--json").ok().json();
                assertEquals("ok", j.get("status").asText());
                JsonNode d = j.get("disks").get(0);
                assertEquals(BackupChain.SIZE, d.get("bytesWritten").asLong() + d.get("bytesZero").asLong(), d.toString());
            }
            Path snap = chain.snapshots().get(i);
            String cmp = Proc.run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", q.toString(), snap.toString());
            assertTrue(cmp.contains("Images are identical"), cmp);
            // zero chunks went as WRITE_ZEROES (on the used image with --discard=unmap: deallocated), not as data
            long data = 0;
            for (JsonNode e : JSON.readTree(Proc.run("qemu-img", "map", "--output=json", q.toString()))) {
                if (e.get("data").asBoolean()) {
                    data += e.get("length").asLong();
                }
            }
            assertEquals(dataChunkBytes(snap), data, "allocated data of " + q + " equals the snapshot's data chunks");
        }
    }

    @Test
    void existingFileIsRestoredBitExactWithOrWithoutZero() throws IOException {
        Path snap = chain.snapshots().get(2);
        Path f = dir.resolve("old.raw");
        Proc.run("qemu-img", "create", "-q", "-f", "raw", f.toString(), "16M");
        QemuImages.io(f, "raw", "write -P 0xee 0 16M");
        Cli.Result refused = restore(chain.ids().get(2), "--to", f.toString());
        assertEquals(2, refused.exitCode(), refused.toString());
        assertTrue(refused.stderr().contains("--force"), refused.stderr());

        // the old pattern everywhere, the backup's zero chunk [13M, 16M) included: --force restores beside it and
        // puts the new file in its place, with its permissions, and leaves no temporary file (nor a dead run's)
        Files.setPosixFilePermissions(f, java.nio.file.attribute.PosixFilePermissions.fromString("rw-r-----"));
        Path dead = Files.writeString(dir.resolve(".old.raw.jbackup-999999999.tmp"), "left by a killed run");
        Cli.Result forced = restore(chain.ids().get(2), "--to", f.toString(), "--force").ok();
        assertFalse(forced.stderr().contains("note:"), forced.stderr());
        assertEquals(Proc.sha256(snap), Proc.sha256(f), "bit-exact without --zero");
        assertEquals("rw-r-----", java.nio.file.attribute.PosixFilePermissions.toString(
            Files.getPosixFilePermissions(f)), "the permissions of the file it replaces");
        assertFalse(Files.exists(dead), "a dead run's temporary file is removed");
        try (var left = Files.list(dir)) {
            assertEquals(List.of(), left.filter(x -> x.getFileName().toString().startsWith(".old.raw")).toList());
        }

        // --in-place empties the file and restores into it: the same image
        QemuImages.io(f, "raw", "write -P 0xee 0 16M");
        restore(chain.ids().get(2), "--to", f.toString(), "--force", "--in-place").ok();
        assertEquals(Proc.sha256(snap), Proc.sha256(f), "bit-exact with --in-place");
        Cli.Result alone = restore(chain.ids().get(2), "--to", f.toString(), "--in-place");
        assertEquals(2, alone.exitCode(), alone.toString());

        // --zero writes in place, zero chunks as zeros: the same image
        QemuImages.io(f, "raw", "write -P 0xee 0 16M");
        Cli.Result zeroed = restore(chain.ids().get(2), "--to", f.toString(), "--force", "--zero").ok();
        assertFalse(zeroed.stderr().contains("note:"), zeroed.stderr());
        assertEquals(Proc.sha256(snap), Proc.sha256(f), "bit-exact with --zero");

        Cli.Result charDev = restore(chain.ids().get(2), "--to", "/dev/null");
        assertEquals(2, charDev.exitCode(), charDev.toString());
        assertFalse(charDev.stderr().contains("note:"), "refused, so nothing to note: " + charDev.stderr());
    }

    /** A block device smaller than the image: exit 2 before anything is written, naming the size needed. */
    @Test
    void tooSmallBlockDeviceIsRefusedNamingTheSize() throws IOException {
        Path backing = dir.resolve("small-dev.img");
        Proc.run("truncate", "-s", "1M", backing.toString());
        Proc.Result lo = Proc.exec(Duration.ofSeconds(30), "losetup", "-f", "--show", backing.toString());
        org.junit.jupiter.api.Assumptions.assumeTrue(lo.exitCode() == 0, "needs root for losetup: " + lo.stderr());
        String dev = lo.stdout().trim();
        try {
            Cli.Result r = restore(chain.ids().get(2), "--to", dev);
            assertEquals(2, r.exitCode(), r.toString());
            assertTrue(r.stderr().contains("restore to a device of at least"), r.stderr());
        } finally {
            Proc.exec(Duration.ofSeconds(30), "losetup", "-d", dev);
        }
    }

    @Test
    void vmSetToAnNbdExportAndAFile() throws IOException {
        Path repo = dir.resolve("vmrepo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        Path a = QemuImages.qcow2(dir.resolve("vm-vda.qcow2"), "4M");
        Path b = QemuImages.qcow2(dir.resolve("vm-vdb.qcow2"), "2M");
        QemuImages.io(a, "qcow2", "write -P 0x0a 0 1M");
        QemuImages.io(b, "qcow2", "write -P 0x0b 1M 512k");
        try (Proc.Background sa = QemuImages.qemuNbd(dir, a, "qcow2", "-r", "-A");
             Proc.Background sb = QemuImages.qemuNbd(dir, b, "qcow2", "-r", "-A")) {
            Cli.run("full", "--repo", repo.toString(), "--vm", "web", "--source", "vda=" + QemuImages.uriOf(sa),
                "--source", "vdb=" + QemuImages.uriOf(sb)).ok();
        }
        Path qa = QemuImages.qcow2(dir.resolve("vm-new-vda.qcow2"), "4M");
        Path fb = dir.resolve("vm-new-vdb.raw");
        try (Proc.Background na = QemuImages.qemuNbd(dir, qa, "qcow2")) {
            JsonNode j = Cli.run("restore", "--repo", repo.toString(), "--vm", "web", "--to",
                "vda=" + QemuImages.uriOf(na), "--to", "vdb=" + fb, "--json").ok().json();
            assertEquals(2, j.get("disks").size(), j.toString());
        }
        assertTrue(Proc.run("qemu-img", "compare", "-f", "qcow2", qa.toString(), a.toString())
            .contains("Images are identical"));
        assertEquals(Proc.sha256(QemuImages.toRaw(b, dir.resolve("vm-vdb-ref.raw"))), Proc.sha256(fb));
        Cli.Result missing = Cli.run("restore", "--repo", repo.toString(), "--vm", "web", "--to",
            "vda=" + dir.resolve("x.raw"));
        assertEquals(2, missing.exitCode(), missing.toString());
        assertTrue(missing.stderr().contains("no target for disk vdb"), missing.stderr());
        // the second disk fails (its NBD target is not there): the first is complete and kept, and the user is
        // told so, and which disks were not restored
        Path half = dir.resolve("half");
        Cli.Result second = Cli.run("restore", "--repo", repo.toString(), "--vm", "web", "--to", half.toString(),
            "--to", "vdb=nbd+unix:///?socket=" + dir.resolve("no-such.sock"), "--json");
        assertEquals(4, second.exitCode(), second.toString());
        assertEquals(Proc.sha256(QemuImages.toRaw(a, dir.resolve("vm-vda-ref.raw"))),
            Proc.sha256(half.resolve("vda.raw")));
        assertTrue(second.stderr().contains("jbackup: note: vda: restored completely to " + half.resolve("vda.raw"))
            && second.stderr().contains("jbackup: note: not restored: vdb"), second.stderr());
        // --backup ID of any disk of the set names the whole set, whichever disk the id is of
        for (String d : List.of("vda", "vdb")) {
            String id = Cli.run("list", "--repo", repo.toString(), "--vm", "web", "--disk", d, "--json").ok()
                .json().get(0).get("id").asText();
            Cli.Result byId = Cli.run("restore", "--repo", repo.toString(), "--vm", "web", "--backup", id, "--to",
                dir.resolve("set-of-" + d).toString(), "--json");
            assertEquals(0, byId.exitCode(), "the set of " + d + "'s backup " + id + ": " + byId);
            assertEquals(2, byId.json().get("disks").size(), byId.toString());
        }
        // --backup @TIME names the newest set at or before TIME, whichever disks it holds
        String newest = null;
        for (Path img : List.of(a, b)) {
            try (Proc.Background s = QemuImages.qemuNbd(dir, img, "qcow2", "-r", "-A")) {
                String d = img == a ? "vda" : "vdb";
                newest = Cli.run("full", "--repo", repo.toString(), "--vm", "web", "--source",
                    d + "=" + QemuImages.uriOf(s), "--json").ok().json().get("disks").get(0).get("backupId").asText();
            }
        }
        for (String at : List.of("@2100-01-01T00:00:00Z", "latest")) {
            JsonNode set = Cli.run("restore", "--repo", repo.toString(), "--vm", "web", "--backup", at, "--to",
                dir.resolve("set-at-" + at.charAt(0)).toString(), "--json").ok().json();
            assertEquals(1, set.get("disks").size(), at + ": " + set);
            assertEquals(newest, set.get("disks").get(0).get("backupId").asText(), at + ": " + set);
        }
    }

    @Test
    @Tag("reliability")
    void damagedChunkStopsTheRestoreOrIsZeroedWithIgnoreErrors() throws IOException {
        // copy the repository, then flip a byte in the payload of the chunk at 12.5M of backup 1 (0x55 data, which
        // backup 0 does not have)
        Path repo = dir.resolve("damaged-repo");
        TestFiles.copyTree(chain.repo(), repo);
        String id = chain.ids().get(1);
        int index = (12 << 20) / CHUNK + 8;
        List<Long> positions = new ArrayList<>();
        try (Repository r = Repository.open(repo, OpenOptions.defaults()); BackupReader reader = r.openBackup(id)) {
            byte[] digest = reader.digest(index);
            assertFalse(reader.isZero(index));
            for (long i = 0; i < reader.chunkCount(); i++) {
                if (Arrays.equals(digest, reader.digest(i))) {
                    positions.add(i); // every position deduplicated onto the damaged record
                }
            }
            ChunkLocation loc = r.chunkLocation(digest);
            try (RandomAccessFile pack = new RandomAccessFile(r.packFile(loc.pack()).toFile(), "rw")) {
                long at = loc.offset() + loc.length() - 3;
                pack.seek(at);
                int v = pack.read();
                pack.seek(at);
                pack.write(v ^ 0x40);
            }
            assertEquals(16, positions.size(), "the 0x55 chunks deduplicate: " + positions);
        }
        Path out = dir.resolve("damaged.raw");
        Cli.Result stop = Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--backup", id, "--to",
            out.toString());
        assertEquals(6, stop.exitCode(), stop.toString());
        assertTrue(positions.stream().anyMatch(i -> stop.stderr().contains("disk offset " + i * CHUNK + ","))
            && stop.stderr().contains("backup " + id) && stop.stderr().contains("--ignore-errors"), stop.stderr());

        assertFalse(stop.stderr().contains("written in place"), "a new file is removed: " + stop.stderr());
        // an existing file replaced (--force) is left as it was, and the user is told so
        byte[] before = new byte[8192];
        Arrays.fill(before, (byte) 0x77);
        Path kept = Files.write(dir.resolve("damaged-kept.raw"), before);
        Cli.Result replaced = Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--backup", id, "--to",
            kept.toString(), "--force");
        assertEquals(6, replaced.exitCode(), replaced.toString());
        assertTrue(replaced.stderr().contains("jbackup: note: " + kept + " is unchanged"), replaced.stderr());
        assertFalse(replaced.stderr().contains("--in-place"), "room was not the problem: " + replaced.stderr());
        assertTrue(Arrays.equals(before, Files.readAllBytes(kept)), "the old file as it was");
        try (var left = Files.list(dir)) {
            assertEquals(List.of(), left.filter(x -> x.getFileName().toString().startsWith(".damaged-kept")).toList(),
                "no temporary file left");
        }
        // an existing file written in place (--force --zero) is now neither old nor new: the user is told
        Path old = Files.write(dir.resolve("damaged-existing.raw"), new byte[4096]);
        Cli.Result inPlace = Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--backup", id, "--to",
            old.toString(), "--force", "--zero");
        assertEquals(6, inPlace.exitCode(), inPlace.toString());
        assertTrue(inPlace.stderr().contains("jbackup: note: " + old + " was being written in place and is now "
            + "neither its old content nor the backup"), inPlace.stderr());

        Files.deleteIfExists(out);
        Cli.Result partial = Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--backup", id, "--to",
            out.toString(), "--ignore-errors", "--json");
        assertEquals(3, partial.exitCode(), partial.toString());
        JsonNode j = partial.json();
        assertEquals("partial", j.get("status").asText());
        JsonNode damaged = j.get("disks").get(0).get("damaged");
        assertEquals(positions.size(), damaged.size(), damaged.toString());
        byte[] expected = Files.readAllBytes(chain.snapshots().get(1));
        for (int k = 0; k < positions.size(); k++) {
            assertEquals(positions.get(k) * CHUNK, damaged.get(k).get("offset").asLong());
            assertEquals(CHUNK, damaged.get(k).get("length").asLong());
            assertTrue(damaged.get(k).get("error").asText().contains("checksum"), damaged.get(k).toString());
            Arrays.fill(expected, (int) (positions.get(k) * CHUNK), (int) (positions.get(k) * CHUNK) + CHUNK, (byte) 0);
        }
        assertTrue(Arrays.equals(expected, Files.readAllBytes(out)), "zeros where damaged, the backup elsewhere");
        // without --json each damaged range is said once, in the command's output, not again as a warning
        Files.delete(out);
        Cli.Result listed = Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--backup", id, "--to",
            out.toString(), "--ignore-errors");
        assertEquals(3, listed.exitCode(), listed.toString());
        for (long i : positions) {
            String range = "damaged, written as zeros: offset " + i * CHUNK + " length " + CHUNK + ":";
            assertTrue(listed.stdout().contains(range), listed.stdout());
            String both = listed.stdout() + listed.stderr();
            assertEquals(both.indexOf("disk offset " + i * CHUNK + ";"), both.lastIndexOf("disk offset " + i * CHUNK
                + ";"), "said once: " + listed);
        }
        // the same to an NBD target, which sends each chunk from the buffer it was decoded into: a damaged chunk's
        // buffer is dropped, not sent, and zeros go there instead
        Path q = QemuImages.qcow2(dir.resolve("damaged.qcow2"), "16M");
        try (Proc.Background nbd = QemuImages.qemuNbd(dir, q, "qcow2")) {
            Cli.Result stopNbd = Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--backup", id,
                "--to", QemuImages.uriOf(nbd));
            assertEquals(6, stopNbd.exitCode(), stopNbd.toString());
            Cli.Result viaNbd = Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--backup", id,
                "--to", QemuImages.uriOf(nbd), "--ignore-errors", "--json");
            assertEquals(3, viaNbd.exitCode(), viaNbd.toString());
            assertEquals(positions.size(), viaNbd.json().get("disks").get(0).get("damaged").size(), viaNbd.stdout());
        }
        Path back = dir.resolve("damaged-nbd.raw");
        Proc.run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", q.toString(), back.toString());
        assertTrue(Arrays.equals(expected, Files.readAllBytes(back)), "through NBD: zeros where damaged");
        // the other backups do not use that record and still restore
        Path ok = dir.resolve("undamaged.raw");
        Cli.run("restore", "--repo", repo.toString(), "--disk", "vda", "--backup", chain.ids().get(0), "--to",
            ok.toString()).ok();
    }

}
