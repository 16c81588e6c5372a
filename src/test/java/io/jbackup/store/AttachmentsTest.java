package io.jbackup.store;

import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.AttachmentInfo;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.RepositoryException;
import io.jbackup.testutil.S3Proxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Backup attachments on real repositories, local and in a bucket (s3proxy), plain and encrypted: written with a
 * backup, read back byte-equal, listed after a catalog rebuild and from a fresh cache, reclaimed by forget + gc
 * (while gc keeps another backup's), checked on read (a flipped byte is an {@link AttachmentCorruptException}
 * naming the backup and the attachment), and never visible from an aborted or killed writer.
 */
class AttachmentsTest {
    static final int CS = 64 * 1024;
    static final String PASS = "attachments passphrase";
    static final String BUCKET = "jbackup-attachments";
    static final byte[] XML = "<domain type='kvm'><name>web1</name><os><loader>/usr/share/OVMF/OVMF_CODE.fd</loader>"
        .concat("<nvram>/var/lib/libvirt/qemu/nvram/web1_VARS.fd</nvram></os></domain>\n")
        .getBytes(StandardCharsets.UTF_8);
    static final AtomicInteger PREFIXES = new AtomicInteger();

    @TempDir
    static Path shared;
    static S3Proxy server;

    @TempDir
    Path tmp;

    @BeforeAll
    static void startServer() throws IOException {
        server = S3Proxy.start(Files.createDirectories(shared.resolve("s3"))).withDefaultCredentials();
        server.createBucket(BUCKET);
    }

    @AfterAll
    static void stopServer() {
        if (server != null) {
            server.close();
        }
    }

    static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    static byte[] disk(int seed) {
        byte[] b = random(CS, seed);
        java.util.Arrays.fill(b, CS / 2, CS, (byte) seed);
        return b;
    }

    /** A repository location: a directory, or a new prefix of the bucket with its cache under {@code cache}. */
    private RepositoryLocation location(boolean s3, String prefix, String cache) {
        if (!s3) {
            return new RepositoryLocation.Local(tmp.resolve("repo"));
        }
        return RepositoryLocations.parse("s3://" + BUCKET + "/" + prefix, server.endpoint().toString(), "us-east-1",
            null, tmp.resolve(cache), System.getenv());
    }

    private static OpenOptions opts(boolean encrypted) {
        OpenOptions o = OpenOptions.defaults();
        return encrypted ? o.withPassphrase(PASS) : o;
    }

    private static Repository init(RepositoryLocation loc, boolean encrypted) throws IOException {
        return Repository.init(loc, new RepositoryOptions(CS, encrypted ? Encryption.AES_256_GCM : Encryption.NONE, 3,
            1 << 20), encrypted ? PASS.toCharArray() : null);
    }

    /** A backup of 3 chunks (the same data for every backup of the disk) with the given attachments. */
    private static String backup(Repository r, String disk, Object... nameContent) throws Exception {
        try (BackupWriter w = r.beginBackup(BackupSpec.full("web1", disk, 3L * CS))) {
            for (int i = 0; i < 3; i++) {
                w.putChunk(i, disk(i), CS).get();
            }
            for (int i = 0; i < nameContent.length; i += 2) {
                w.attach((String) nameContent[i], (byte[]) nameContent[i + 1]);
            }
            return w.commit().id();
        }
    }

    @ParameterizedTest(name = "s3={0} encrypted={1}")
    @CsvSource({"false,false", "false,true", "true,false", "true,true"})
    void attachmentsRoundTripSurviveRebuildAndFreshCacheAndGoWithTheirBackup(boolean s3, boolean encrypted)
        throws Exception {
        String prefix = "rt" + PREFIXES.incrementAndGet();
        RepositoryLocation loc = location(s3, prefix, "cache");
        byte[] nvramA = random(300 * 1024, 1);
        byte[] nvramB = random(300 * 1024, 2);
        String a;
        String b;
        long chunksBefore;
        try (Repository r = init(loc, encrypted)) {
            a = backup(r, "vda", "nvram.fd", nvramA, "domain.xml", XML);
            b = backup(r, "vda", "domain.xml", XML, "nvram.fd", nvramB, "empty", new byte[0], "zeros",
                new byte[CS + 5]);
            assertEquals(List.of(new AttachmentInfo("domain.xml", XML.length), new AttachmentInfo("nvram.fd",
                nvramA.length)), r.attachments(a));
            assertArrayEquals(nvramA, r.readAttachment(a, "nvram.fd"));
            assertArrayEquals(XML, r.readAttachment(a, "domain.xml"));
            assertArrayEquals(nvramB, r.readAttachment(b, "nvram.fd"));
            assertArrayEquals(new byte[0], r.readAttachment(b, "empty"));
            assertArrayEquals(new byte[CS + 5], r.readAttachment(b, "zeros"));
            try (BackupReader br = r.openBackup(b)) {
                assertEquals(List.of("domain.xml", "nvram.fd", "empty", "zeros"),
                    br.attachments().stream().map(AttachmentInfo::name).toList(), "in the order attached");
            }
            assertThrows(NotFoundException.class, () -> r.readAttachment(a, "nope"));
            assertTrue(r.verify(VerifyOptions.all()).ok());
            assertTrue(r.verify(new VerifyOptions(List.of(b), 100, false)).ok());
            // 3 disk chunks (shared), the XML (shared), 5 pieces of each nvram; zero pieces are not stored
            chunksBefore = r.totals().chunks();
            assertEquals(3 + 1 + 5 + 5, chunksBefore);
        }

        RebuildReport rb = Repository.rebuildCatalog(loc, opts(encrypted));
        assertTrue(rb.problems().isEmpty(), rb.problems().toString());
        try (Repository r = Repository.open(loc, opts(encrypted))) {
            assertEquals(4, r.attachments(b).size(), "recorded again by the rebuild");
            assertArrayEquals(nvramA, r.readAttachment(a, "nvram.fd"));
        }
        if (s3) {
            try (Repository r = Repository.open(location(true, prefix, "fresh-cache"), opts(encrypted))) {
                assertEquals(List.of(new AttachmentInfo("domain.xml", XML.length), new AttachmentInfo("nvram.fd",
                    nvramA.length)), r.attachments(a), "a fresh cache lists them from the manifests");
                assertArrayEquals(nvramB, r.readAttachment(b, "nvram.fd"));
            }
        }

        try (Repository r = Repository.open(loc, opts(encrypted))) {
            r.deleteBackups(List.of(a), Duration.ZERO); // what forget does
            assertEquals(List.of(), r.attachments(a));
            r.gc(GcOptions.defaults().withRepackThreshold(100).withGrace(Duration.ZERO));
            assertEquals(chunksBefore - 5, r.totals().chunks(), "A's nvram is reclaimed; B's attachments are kept");
            assertArrayEquals(nvramB, r.readAttachment(b, "nvram.fd"));
            assertArrayEquals(XML, r.readAttachment(b, "domain.xml"));
            assertTrue(r.verify(VerifyOptions.all()).ok());
            assertThrows(RepositoryException.class, () -> r.readAttachment(a, "nvram.fd"));
        }
    }

    @ParameterizedTest(name = "encrypted={0}")
    @ValueSource(booleans = {false, true})
    void aDamagedAttachmentIsATypedErrorNamingTheBackupAndTheAttachment(boolean encrypted) throws Exception {
        RepositoryLocation loc = location(false, null, null);
        byte[] nvram = random(300 * 1024, 3);
        String id;
        try (Repository r = init(loc, encrypted)) {
            // an all-zero disk stores nothing: the only pack holds the nvram pieces, then the XML
            try (BackupWriter w = r.beginBackup(BackupSpec.full("web1", "vda", 2L * CS))) {
                w.putZero(0);
                w.putZero(1);
                w.attach("nvram.fd", nvram);
                w.attach("domain.xml", XML);
                id = w.commit().id();
            }
        }
        Path pack;
        try (Stream<Path> s = Files.walk(tmp.resolve("repo").resolve("packs"))) {
            pack = s.filter(p -> p.toString().endsWith(".pack")).findFirst().orElseThrow();
        }
        byte[] bytes = Files.readAllBytes(pack);
        bytes[32 + 52 + 100] ^= 0x40; // the payload of the first record: piece 0 of nvram.fd
        Files.write(pack, bytes);
        try (Repository r = Repository.open(loc, opts(encrypted))) {
            AttachmentCorruptException e = assertThrows(AttachmentCorruptException.class,
                () -> r.readAttachment(id, "nvram.fd"));
            assertEquals(id, e.backupId());
            assertEquals("nvram.fd", e.attachment());
            assertTrue(e.getMessage().contains("nvram.fd") && e.getMessage().contains(id), e.getMessage());
            assertInstanceOf(ChunkCorruptException.class, e.getCause());
            assertArrayEquals(XML, r.readAttachment(id, "domain.xml"), "the other attachment is intact");
            VerifyReport v = r.verify(VerifyOptions.all());
            assertFalse(v.ok());
            assertEquals(1, v.damagedChunks().size(), v.toString());
            VerifyReport.Use use = v.damagedChunks().get(0).uses().get(0);
            assertEquals(id, use.backupId());
            assertEquals("web1/vda, attachment nvram.fd", use.disk());
            assertEquals(0, use.diskOffset());
        }
    }

    @Test
    void anAbortedOrKilledWriterLeavesNoVisibleAttachment() throws Exception {
        RepositoryLocation loc = location(false, null, null);
        String aborted;
        try (Repository r = init(loc, false)) {
            try (BackupWriter w = r.beginBackup(BackupSpec.full(null, "att", 2L * CS))) {
                aborted = w.id();
                w.attach("nvram.fd", random(300 * 1024, 4));
                w.abort();
            }
            assertEquals(List.of(), r.attachments(aborted));
            assertTrue(r.listBackups().isEmpty());
        }
        String killed;
        try (Child c = Child.start(tmp.resolve("logs"), List.of(), "attach", tmp.resolve("repo").toString())) {
            c.awaitOutput("ATTACHED ", 60);
            killed = c.stdout().substring(c.stdout().indexOf("ATTACHED ") + 9).trim();
            c.kill();
        }
        try (Repository r = Repository.open(loc, OpenOptions.defaults())) {
            assertTrue(r.listBackups().stream().noneMatch(b -> b.id().equals(killed)
                && BackupInfo.COMPLETE.equals(b.state())), r.listBackups().toString());
            assertEquals(List.of(), r.attachments(killed));
            assertThrows(RepositoryException.class, () -> r.readAttachment(killed, "nvram.fd"));
            assertTrue(r.verify(VerifyOptions.all()).ok());
        }
        RebuildReport rb = Repository.rebuildCatalog(tmp.resolve("repo"), OpenOptions.defaults());
        try (Repository r = Repository.open(loc, OpenOptions.defaults())) {
            assertTrue(r.listBackups().isEmpty(), rb.toString());
        }
    }

    @Test
    void attachIsValidatedUpFrontAndTheBackupGoesOn() throws Exception {
        try (Repository r = init(location(false, null, null), false);
             BackupWriter w = r.beginBackup(BackupSpec.full(null, "vda", CS))) {
            for (String bad : new String[] {"", "a/b", "a b", "x".repeat(65), "ünï"}) {
                UsageException e = assertThrows(UsageException.class, () -> w.attach(bad, XML), bad);
                assertTrue(e.getMessage().contains("attachment name"), e.getMessage());
            }
            UsageException big = assertThrows(UsageException.class,
                () -> w.attach("big", new byte[Attachments.MAX_SIZE + 1]));
            assertTrue(big.getMessage().contains("at most 16777216"), big.getMessage());
            w.attach("x".repeat(64), XML);
            assertThrows(UsageException.class, () -> w.attach("x".repeat(64), XML), "duplicate");
            for (int i = 1; i < Attachments.MAX_COUNT; i++) {
                w.attach("a-" + i + ".b_c", new byte[] {(byte) i});
            }
            UsageException many = assertThrows(UsageException.class, () -> w.attach("one-more", XML));
            assertTrue(many.getMessage().contains("at most 16"), many.getMessage());
            w.putChunk(0, disk(1), CS).get();
            String id = w.commit().id();
            assertEquals(16, r.attachments(id).size());
            assertArrayEquals(new byte[] {7}, r.readAttachment(id, "a-7.b_c"));
            assertThrows(IllegalStateException.class, () -> w.attach("late", XML));
        }
    }
}
