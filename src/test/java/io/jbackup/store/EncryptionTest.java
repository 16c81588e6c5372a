package io.jbackup.store;

import io.jbackup.catalog.ChunkLocation;
import io.jbackup.model.RepositoryException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.HexFormat;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import java.util.zip.CRC32C;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Tag("reliability")
class EncryptionTest {
    static final int CS = 64 * 1024;
    static final String PASS = "correct horse battery staple";

    @TempDir
    Path tmp;

    /** Plain bytes with a marker that must never appear in a pack of an encrypted repository. */
    static byte[] marked(int seed) {
        byte[] b = Data.chunk(seed, CS);
        byte[] marker = "SECRET-MARKER-0123456789".getBytes();
        for (int off = 0; off + marker.length < CS; off += 4096) {
            System.arraycopy(marker, 0, b, off, marker.length);
        }
        return b;
    }

    private String writeOne(Repository repo) throws Exception {
        try (BackupWriter w = repo.beginBackup(BackupSpec.full("vm", "vda", 3L * CS))) {
            w.putChunk(0, marked(1), CS);
            w.putChunk(1, marked(2), CS);
            w.putChunk(2, marked(1), CS);
            return w.commit().id();
        }
    }

    @Test
    void encryptedRepositoryRoundTripsAndHidesContent() throws Exception {
        Path dir = tmp.resolve("repo");
        String id;
        // level 0: stored uncompressed, so only encryption can hide the marker
        try (Repository repo = Repository.init(dir, new RepositoryOptions(CS, Encryption.AES_256_GCM, 0),
            PASS.toCharArray())) {
            id = writeOne(repo);
        }
        try (Repository repo = Repository.open(dir, OpenOptions.defaults().withPassphrase(PASS))) {
            assertEquals(Encryption.AES_256_GCM, repo.config().encryption());
            try (BackupReader r = repo.openBackup(id)) {
                assertArrayEquals(marked(1), r.readChunk(0));
                assertArrayEquals(marked(2), r.readChunk(1));
                assertArrayEquals(r.digest(0), r.digest(2), "equal data still deduplicates");
                assertFalse(java.util.Arrays.equals(Data.sha256(marked(1)), r.digest(0)),
                    "chunk ids are keyed HMACs, not plain SHA-256");
            }
            assertEquals(2, repo.catalog().chunkCount());
        }
        byte[] marker = "SECRET-MARKER".getBytes();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path f : s.filter(Files::isRegularFile).toList()) {
                byte[] content = Files.readAllBytes(f);
                assertEquals(-1, indexOf(content, marker), "plaintext found in " + f);
            }
        }
        String key = KeyManager.export(dir, null);
        assertTrue(key.contains("\"sealedKey\"") && key.contains("\"scrypt\""), key);
    }

    @Test
    void wrongPassphraseIsRefusedAndChangesNothing() throws Exception {
        Path dir = tmp.resolve("repo");
        try (Repository repo = Repository.init(dir, new RepositoryOptions(CS, Encryption.AES_256_GCM, 1),
            PASS.toCharArray())) {
            writeOne(repo);
        }
        Map<String, String> before = snapshot(dir);
        WrongPassphraseException e = assertThrows(WrongPassphraseException.class,
            () -> Repository.open(dir, OpenOptions.defaults().withPassphrase("wrong")));
        assertTrue(e.getMessage().contains("wrong passphrase for repository " + dir)
            && e.getMessage().contains("keys/repository.key"), e.getMessage());
        RepositoryException none = assertThrows(RepositoryException.class,
            () -> Repository.open(dir, OpenOptions.defaults()));
        assertTrue(none.getMessage().contains("JBACKUP_PASSPHRASE"), none.getMessage());
        assertEquals(before, snapshot(dir), "nothing changed");
        Repository.open(dir, OpenOptions.defaults().withPassphrase(PASS)).close();
    }

    @Test
    void tamperedRecordFailsTheGcmTagAndTamperedIndexFailsItsMac() throws Exception {
        Path dir = tmp.resolve("repo");
        try (Repository repo = Repository.init(dir, new RepositoryOptions(CS, Encryption.AES_256_GCM, 1),
            PASS.toCharArray())) {
            String id = writeOne(repo);
            byte[] digest;
            try (BackupReader r = repo.openBackup(id)) {
                digest = r.digest(1);
            }
            ChunkLocation loc = repo.catalog().findChunk(digest);
            Path pack = PackFormat.path(dir, loc.pack());
            // flip a ciphertext byte and fix the CRC, so only the GCM tag can notice
            try (FileChannel ch = FileChannel.open(pack, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
                ByteBuffer rec = ByteBuffer.allocate(loc.length());
                ch.read(rec, loc.offset());
                byte[] b = rec.array();
                b[PackFormat.RECORD_HEADER_SIZE + 20] ^= 0x01;
                CRC32C crc = new CRC32C();
                crc.update(b, 0, 48);
                crc.update(b, 52, b.length - 52);
                ByteBuffer.wrap(b).putInt(48, (int) crc.getValue());
                ch.write(ByteBuffer.wrap(b), loc.offset());
            }
            try (BackupReader r = repo.openBackup(id)) {
                ChunkCorruptException e = assertThrows(ChunkCorruptException.class, () -> r.readChunk(1));
                assertTrue(e.problem().contains("authentication tag"), e.getMessage());
                assertEquals((long) CS, e.diskOffset());
                assertEquals(id, e.backupId());
                assertArrayEquals(marked(1), r.readChunk(0), "other chunks still read");
            }
            // an index altered by someone without the key
            Path idx = IndexFile.path(dir, id);
            byte[] b = Files.readAllBytes(idx);
            int pos = new String(b, java.nio.charset.StandardCharsets.ISO_8859_1).indexOf("\"vda\"");
            b[pos + 1] = 'x';
            Files.write(idx, b);
            RepositoryException e = assertThrows(RepositoryException.class, () -> repo.openBackup(id));
            assertTrue(e.getMessage().contains("MAC"), e.getMessage());
        }
    }

    @Test
    void openedWithoutItsKeyTheRepositoryListsButRefusesEverythingThatNeedsTheKey() throws Exception {
        Path dir = tmp.resolve("repo");
        String id = initWithOne(dir);
        Map<String, String> before = data(dir);
        OpenOptions keyless = OpenOptions.defaults().withKeyOptional(true);
        try (Repository r = Repository.open(dir, keyless)) {
            assertFalse(r.hasKey());
            assertEquals(id, r.listBackups().get(0).id());
            assertEquals(id, r.resolve("vm", "vda", "latest").id());
            assertEquals(2, r.totals().chunks());
            for (Map.Entry<String, org.junit.jupiter.api.function.Executable> e : Map.<String,
                org.junit.jupiter.api.function.Executable>of(
                "beginBackup", () -> r.beginBackup(BackupSpec.full("vm", "vdb", CS)),
                "openBackup", () -> r.openBackup(id),
                "verify", () -> r.verify(VerifyOptions.all()),
                "gc", () -> r.gc(GcOptions.defaults()),
                "markBad", () -> r.markBad(id, "x"),
                "setProtected", () -> r.setProtected(id, true, "x"),
                "deleteBackup", () -> r.deleteBackup(id)).entrySet()) {
                PassphraseRequiredException x = assertThrows(PassphraseRequiredException.class, e.getValue(),
                    e.getKey());
                assertTrue(x.getMessage().contains("JBACKUP_PASSPHRASE"), x.getMessage());
            }
        }
        assertEquals(before, data(dir), "nothing written without the key: no plaintext chunk, no unkeyed index");
        // a plain repository ignores the option; a given passphrase is still checked
        assertThrows(WrongPassphraseException.class,
            () -> Repository.open(dir, keyless.withPassphrase("wrong")).close());
        try (Repository r = Repository.open(dir, keyless.withPassphrase(PASS))) {
            assertTrue(r.hasKey());
            try (BackupReader br = r.openBackup(id)) {
                assertArrayEquals(marked(2), br.readChunk(1));
            }
        }
    }

    @Test
    void everyKeySlotOpensAndNoneOpensAnAlteredConfig() throws Exception {
        Path dir = tmp.resolve("repo");
        String id = initWithOne(dir);
        String added;
        try (KeyManager km = KeyManager.open(dir, PASS::toCharArray, java.time.Duration.ZERO)) {
            assertEquals("repository", km.currentId());
            added = km.add("second".toCharArray(), null).id();
        }
        for (String p : new String[] {PASS, "second"}) {
            try (Repository r = Repository.open(dir, OpenOptions.defaults().withPassphrase(p));
                 BackupReader br = r.openBackup(id)) {
                assertArrayEquals(marked(1), br.readChunk(0));
            }
        }
        // the config MAC still guards the config, whichever key opens it
        Path config = dir.resolve("config.json");
        byte[] original = Files.readAllBytes(config);
        com.fasterxml.jackson.databind.node.ObjectNode edited =
            (com.fasterxml.jackson.databind.node.ObjectNode) Json.MAPPER.readTree(original);
        edited.put("packSize", 1 << 20);
        Files.write(config, Json.MAPPER.writeValueAsBytes(edited));
        assertFalse(java.util.Arrays.equals(original, Files.readAllBytes(config)));
        for (String p : new String[] {PASS, "second"}) {
            RepositoryException x = assertThrows(RepositoryException.class,
                () -> Repository.open(dir, OpenOptions.defaults().withPassphrase(p)).close());
            assertTrue(x.getMessage().contains("fails its MAC"), x.getMessage());
            x = assertThrows(RepositoryException.class,
                () -> KeyManager.open(dir, p::toCharArray, java.time.Duration.ZERO).close());
            assertTrue(x.getMessage().contains("fails its MAC"), x.getMessage());
        }
        // a downgrade is refused while any slot is there, also when init's slot is gone and no index exists
        Files.write(config, original);
        try (KeyManager km = KeyManager.open(dir, "second"::toCharArray, java.time.Duration.ZERO)) {
            km.remove("repository");
        }
        Files.delete(IndexFile.path(dir, id));
        edited = (com.fasterxml.jackson.databind.node.ObjectNode) Json.MAPPER.readTree(original);
        edited.put("encryption", "none");
        edited.remove("mac");
        Files.write(config, Json.MAPPER.writeValueAsBytes(edited));
        RepositoryException down = assertThrows(RepositoryException.class,
            () -> Repository.open(dir, OpenOptions.defaults()).close());
        assertTrue(down.getMessage().contains("keys/" + added + ".key exists") && down.getMessage().contains("plaintext"),
            down.getMessage());
    }

    /** An encrypted repository (passphrase PASS) with one backup ({@link #writeOne}); returns its id. */
    private String initWithOne(Path dir) throws Exception {
        try (Repository repo = Repository.init(dir, new RepositoryOptions(CS, Encryption.AES_256_GCM, 1),
            PASS.toCharArray())) {
            return writeOne(repo);
        }
    }

    /** The files a key-less open must never change: config, keys, packs, indexes, tmp. */
    private static Map<String, String> data(Path dir) throws Exception {
        Map<String, String> m = new TreeMap<>(snapshot(dir));
        m.keySet().removeIf(k -> k.startsWith("catalog.db") || k.startsWith("locks") || k.equals("lock"));
        return m;
    }

    private static Map<String, String> snapshot(Path dir) throws Exception {
        Map<String, String> m = new TreeMap<>();
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path f : s.toList()) {
                m.put(dir.relativize(f).toString(), Files.isRegularFile(f)
                    ? HexFormat.of().formatHex(Data.sha256(Files.readAllBytes(f))) + "@" + Files.getLastModifiedTime(f)
                    : "dir");
            }
        }
        return m;
    }

    static int indexOf(byte[] hay, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= hay.length; i++) {
            for (int k = 0; k < needle.length; k++) {
                if (hay[i + k] != needle[k]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }
}
