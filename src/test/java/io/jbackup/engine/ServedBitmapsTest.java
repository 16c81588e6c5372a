package io.jbackup.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.Extents;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.nbd.client.NbdUri;
import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.S3Proxy;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A served backup's own metadata ({@link BackupContexts}): {@code DISK@ID} offers {@code qemu:allocation-depth}
 * and a {@code qemu:dirty-bitmap:ID2} per older backup; each bitmap is dirty exactly over the chunks in which the
 * two restored images differ, and copying its dirty extents over a restore of {@code ID2} gives a restore of
 * {@code ID}. With them, {@code full} and {@code incremental --bitmap ID2} replicate repository A into B over NBD,
 * B local or on S3 (s3proxy): B's restores equal A's and each incremental reads only the chunks that changed.
 */
class ServedBitmapsTest {
    static final int CHUNK = 64 << 10;

    @TempDir
    static Path dir;
    static BackupChain chain;
    static ServedRepo served;

    @BeforeAll
    static void start() throws IOException {
        chain = BackupChain.build(dir);
        served = ServedRepo.start(chain.repo(), dir.resolve("a.sock"));
    }

    @AfterAll
    static void stop() {
        if (served != null) {
            served.close();
        }
    }

    static String id(int i) {
        return chain.ids().get(i);
    }

    static NbdUri uri(int i) {
        return NbdUri.parse(served.uri("vda@" + id(i)));
    }

    static String bitmap(int i) {
        return NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX + id(i);
    }

    @Test
    void everyBackupOffersAllocationDepthAndABitmapPerOlderBackup() throws IOException {
        ClientOptions o = ClientOptions.defaults();
        assertEquals(List.of(NbdConstants.CONTEXT_ALLOCATION_DEPTH), NbdClient.listMetaContexts(uri(0), o, "qemu:"));
        assertEquals(List.of(bitmap(0), bitmap(1)), NbdClient.listMetaContexts(uri(2), o,
            NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX));
        assertEquals(List.of(NbdConstants.CONTEXT_BASE_ALLOCATION, NbdConstants.CONTEXT_ALLOCATION_DEPTH, bitmap(0)),
            NbdClient.listMetaContexts(uri(1), o));
    }

    @Test
    void bitmapsAreTheChunksInWhichTheRestoresDifferAndCopyingThemGivesTheNewerBackup() throws Exception {
        for (int newer = 1; newer < chain.ids().size(); newer++) {
            byte[] now = Files.readAllBytes(chain.snapshots().get(newer));
            for (int older = 0; older < newer; older++) {
                byte[] then = Files.readAllBytes(chain.snapshots().get(older));
                List<long[]> expected = new ArrayList<>();
                for (int c = 0; c < now.length / CHUNK; c++) {
                    if (!Arrays.equals(now, c * CHUNK, (c + 1) * CHUNK, then, c * CHUNK, (c + 1) * CHUNK)) {
                        expected.add(new long[] {(long) c * CHUNK, CHUNK});
                    }
                }
                Path copy = dir.resolve("copy-" + older + "-" + newer + ".raw");
                Files.copy(chain.snapshots().get(older), copy);
                List<long[]> dirty = new ArrayList<>();
                try (NbdClient c = NbdClient.connect(uri(newer), ClientOptions.defaults().withMetaContexts(
                    List.of(bitmap(older))));
                     RandomAccessFile f = new RandomAccessFile(copy.toFile(), "rw")) {
                    for (Extent e : Extents.map(c, bitmap(older), 0, now.length)) {
                        if (e.flags() != NbdConstants.STATE_DIRTY) {
                            continue;
                        }
                        for (long at = e.offset(); at < e.end(); at += CHUNK) {
                            dirty.add(new long[] {at, CHUNK});
                        }
                        byte[] b = new byte[(int) e.length()];
                        c.read(e.offset(), b, 0, b.length).get(30, TimeUnit.SECONDS);
                        f.seek(e.offset());
                        f.write(b);
                    }
                }
                assertEquals(toString(expected), toString(dirty), "bitmap of " + older + " on backup " + newer);
                assertTrue(!dirty.isEmpty());
                assertEquals(Proc.sha256(chain.snapshots().get(newer)), Proc.sha256(copy),
                    "restore " + older + " + dirty extents of " + newer);
            }
        }
    }

    @Test
    void allocationDepthIsZeroExactlyForZeroChunks() throws Exception {
        try (NbdClient c = NbdClient.connect(uri(2), ClientOptions.defaults().withMetaContexts(List.of(
            NbdConstants.CONTEXT_BASE_ALLOCATION, NbdConstants.CONTEXT_ALLOCATION_DEPTH)))) {
            List<Extent> alloc = Extents.map(c, NbdConstants.CONTEXT_BASE_ALLOCATION, 0, BackupChain.SIZE);
            List<Extent> depth = Extents.map(c, NbdConstants.CONTEXT_ALLOCATION_DEPTH, 0, BackupChain.SIZE);
            List<Extent> fromAlloc = Extents.coalesce(alloc.stream().map(e -> new Extent(e.offset(), e.length(),
                e.flags() == 3 ? 0 : 1)).toList());
            assertEquals(fromAlloc, Extents.coalesce(depth));
            assertTrue(depth.stream().anyMatch(e -> e.flags() == 0) && depth.stream().anyMatch(e -> e.flags() == 1));
        }
    }

    @Test
    void fullAndIncrementalsReplicateRepositoryAIntoBOverNbd() {
        Path b = dir.resolve("repo-b");
        Cli.run("init", "--repo", b.toString(), "--chunk-size", "64K").ok();
        replicate(List.of("--repo", b.toString()), "local");
    }

    @Test
    void replicationIntoAnS3Repository() throws IOException {
        try (S3Proxy s3 = S3Proxy.start(Files.createDirectories(dir.resolve("s3"))).withDefaultCredentials()) {
            s3.createBucket("replica");
            Path pass = Files.writeString(dir.resolve("pass"), "replica passphrase\n");
            List<String> args = List.of("--repo", "s3://replica/b", "--s3-endpoint", s3.endpoint().toString(),
                "--s3-region", "us-east-1", "--cache-dir", dir.resolve("s3-cache").toString(), "--passphrase-file",
                pass.toString());
            List<String> init = new ArrayList<>(List.of("init", "--chunk-size", "64K", "--encryption",
                "aes-256-gcm"));
            init.addAll(args);
            Cli.run(init.toArray(String[]::new)).ok();
            replicate(args, "s3");
        }
    }

    /**
     * Copies every backup of A into the repository {@code repoArgs} name: a full of the first, then incrementals with
     * {@code --bitmap} the previous id; each incremental reads at most the chunks that changed, and B's restores
     * equal A's snapshots.
     */
    static void replicate(List<String> repoArgs, String label) {
        List<String> copies = new ArrayList<>();
        for (int i = 0; i < chain.ids().size(); i++) {
            List<String> a = new ArrayList<>(List.of(i == 0 ? "full" : "incremental", "--disk", "vda", "--source",
                served.uri("vda@" + id(i)), "--json"));
            a.addAll(repoArgs);
            if (i > 0) {
                a.addAll(List.of("--bitmap", id(i - 1)));
            }
            JsonNode d = Cli.run(a.toArray(String[]::new)).ok().json().get("disks").get(0);
            long read = d.get("bytesRead").asLong();
            if (i > 0) {
                long changed = changedBytes(i - 1, i);
                System.out.printf("replication (%s) of backup %d: %d bytes read, %d bytes in changed chunks%n", label,
                    i, read, changed);
                assertTrue(read <= changed, "incremental " + i + " read " + read + " bytes; " + changed
                    + " bytes of chunks changed");
            }
            copies.add(d.get("backupId").asText());
        }
        for (int i = 0; i < copies.size(); i++) {
            Path out = dir.resolve("b-" + label + "-restore" + i + ".raw");
            List<String> a = new ArrayList<>(List.of("restore", "--disk", "vda", "--backup", copies.get(i), "--to",
                out.toString()));
            a.addAll(repoArgs);
            Cli.run(a.toArray(String[]::new)).ok();
            assertEquals(Proc.sha256(chain.snapshots().get(i)), Proc.sha256(out), label + " restore of copy " + i);
        }
    }

    /** Bytes of the chunks that differ between two snapshots. */
    static long changedBytes(int older, int newer) {
        try {
            byte[] then = Files.readAllBytes(chain.snapshots().get(older));
            byte[] now = Files.readAllBytes(chain.snapshots().get(newer));
            long n = 0;
            for (int c = 0; c < now.length / CHUNK; c++) {
                if (!Arrays.equals(now, c * CHUNK, (c + 1) * CHUNK, then, c * CHUNK, (c + 1) * CHUNK)) {
                    n += CHUNK;
                }
            }
            return n;
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    static String toString(List<long[]> l) {
        StringBuilder sb = new StringBuilder();
        for (long[] x : l) {
            sb.append(x[0]).append('+').append(x[1]).append(' ');
        }
        return sb.toString();
    }
}
