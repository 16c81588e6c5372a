package io.jbackup.objectstore;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The rules every {@link ObjectStore} keeps, run against each implementation by a subclass
 * ({@link LocalObjectStoreTest}, {@link S3ObjectStoreTest}).
 */
abstract class ObjectStoreContract {
    static final int PAGE = 7;
    static final int THREADS = 8;

    @TempDir
    Path tmp;

    ObjectStore store;

    /** A fresh, empty store that lists {@code pageSize} keys a page; the subclass closes what it opened. */
    abstract ObjectStore open(int pageSize) throws Exception;

    /** An object size that takes the store's path for large objects (multipart on S3). */
    abstract int largeSize();

    /**
     * Whether the server lists only complete objects. s3proxy's filesystem backend writes an upload to a temporary
     * file {@code KEY-UUID} next to its target, which listings show while it is written, and leaves it behind when
     * the upload fails; AWS S3, Ceph RGW and MinIO list complete objects only. Such names never parse as repository
     * objects ({@code RepositoryLayout}), so readers ignore them. The key itself stays invisible either way.
     */
    boolean listsCompleteObjectsOnly() {
        return true;
    }

    /**
     * Whether the server evaluates {@code If-None-Match}/{@code If-Match} atomically with the write (AWS S3, Ceph
     * RGW, MinIO, and the local store do). s3proxy checks, then writes: two racing writers can both succeed. Against
     * such a server the race tests check only what the client controls: somebody wins, and the object holds a
     * winner's bytes (a client that took its own retried write's 412 for a loss would make everybody lose).
     */
    boolean atomicConditionalWrites() {
        return true;
    }

    /** How many rounds of the conditional-write races run. */
    int raceRounds() {
        return 10;
    }

    @BeforeEach
    void openStore() throws Exception {
        store = open(PAGE);
    }

    @AfterEach
    void closeStore() throws Exception {
        store.close();
    }

    static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static byte[] random(int n, long seed) {
        byte[] b = new byte[n];
        new Random(seed).nextBytes(b);
        return b;
    }

    static String sha256(byte[] b) throws Exception {
        return HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(b));
    }

    @Test
    void putThenGetWholeAndOverwrite() throws Exception {
        store.put("a/b/one", bytes("first"));
        assertArrayEquals(bytes("first"), store.get("a/b/one"));
        store.put("a/b/one", bytes("second, longer"));
        assertArrayEquals(bytes("second, longer"), store.get("a/b/one"));
        assertEquals(14, store.stat("a/b/one").orElseThrow().size());
    }

    @Test
    void rangedGetInsideAcrossAndPastTheEnd() throws Exception {
        byte[] data = random(10_000, 1);
        store.put("r", data);
        assertArrayEquals(Arrays.copyOfRange(data, 100, 1100), store.get("r", 100, 1000));
        assertArrayEquals(Arrays.copyOfRange(data, 9_990, 10_000), store.get("r", 9_990, 1000), "short at the end");
        assertArrayEquals(new byte[0], store.get("r", 10_000, 10), "at the end");
        assertArrayEquals(new byte[0], store.get("r", 50_000, 10), "past the end");
        assertArrayEquals(new byte[0], store.get("r", 5, 0), "zero length");
        assertArrayEquals(data, store.get("r", 0, Integer.MAX_VALUE), "everything");
    }

    @Test
    void zeroLengthObject() throws Exception {
        store.put("empty", new byte[0]);
        assertArrayEquals(new byte[0], store.get("empty"));
        assertArrayEquals(new byte[0], store.get("empty", 0, 10));
        assertEquals(0, store.stat("empty").orElseThrow().size());
        assertEquals(List.of("empty"), keys(store.listAll("")));
    }

    @Test
    void missingObjectIsTypedNotFound() throws Exception {
        ObjectNotFoundException e = assertThrows(ObjectNotFoundException.class, () -> store.get("no/such"));
        assertEquals("no/such", e.key());
        assertThrows(ObjectNotFoundException.class, () -> store.get("no/such", 0, 10));
        assertThrows(ObjectNotFoundException.class, () -> store.get("no/such", 0, 0));
        assertTrue(store.getVersioned("no/such").isEmpty());
        assertTrue(store.stat("no/such").isEmpty());
    }

    @Test
    void putIfAbsentWritesOnlyOnce() throws Exception {
        assertTrue(store.putIfAbsent("once", bytes("A")));
        assertFalse(store.putIfAbsent("once", bytes("B")));
        assertArrayEquals(bytes("A"), store.get("once"));
    }

    @Test
    void listByPrefixInPages() throws Exception {
        List<String> expected = new ArrayList<>();
        for (int i = 0; i < 40; i++) {
            String k = "p/" + String.format("%02x", i * 7 % 256).charAt(0) + "/k" + i;
            store.put(k, bytes(k));
            expected.add(k);
        }
        store.put("q/other", bytes("q/other"));
        store.put("pa", bytes("x"));
        expected.sort(ObjectStores.KEY_ORDER);

        List<String> paged = new ArrayList<>();
        String after = null;
        int pages = 0;
        ListPage page;
        do {
            page = store.list("p/", after);
            assertTrue(page.objects().size() <= PAGE, "page of " + page.objects().size());
            paged.addAll(keys(page.objects()));
            after = paged.get(paged.size() - 1);
            pages++;
        } while (page.truncated());
        assertEquals(expected, paged);
        assertTrue(pages >= 40 / PAGE, pages + " pages");
        assertEquals(expected, keys(store.listAll("p/")));
        assertEquals(List.of("pa"), keys(store.listAll("pa")));
        List<String> all = keys(store.listAll(""));
        assertEquals(42, all.size());
        assertTrue(all.contains("q/other"));
        assertEquals(expected.stream().filter(k -> k.startsWith("p/1")).toList(), keys(store.listAll("p/1")));
        assertEquals(List.of(), keys(store.listAll("nothing/")));
        assertEquals(bytes("q/other").length, store.listAll("q/").get(0).size());
    }

    @Test
    void deleteIsIdempotent() throws Exception {
        store.delete("never/was");
        store.put("d/x", bytes("x"));
        store.delete("d/x");
        store.delete("d/x");
        assertThrows(ObjectNotFoundException.class, () -> store.get("d/x"));
        assertEquals(List.of(), keys(store.listAll("d/")));
    }

    @Test
    void invalidKeysAreRefused() {
        for (String k : List.of("", "/abs", "a//b", "a/", "../up", "a/./b", ".hidden", "a/.tmp")) {
            assertThrows(IllegalArgumentException.class, () -> store.put(k, bytes("x")), k);
        }
    }

    /** An object being written is invisible: no stat, no get, not listed, until the write completes. */
    @Test
    void aWriteInProgressIsInvisible() throws Exception {
        byte[] data = random(256 << 10, 2);
        CountDownLatch half = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        ObjectSource slow = new ObjectSource() {
            @Override
            public long length() {
                return data.length;
            }

            @Override
            public InputStream open() {
                return new InputStream() {
                    int pos;

                    @Override
                    public int read() {
                        byte[] one = new byte[1];
                        return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
                    }

                    @Override
                    public int read(byte[] b, int off, int len) {
                        if (pos >= data.length) {
                            return -1;
                        }
                        if (pos >= data.length / 2) {
                            half.countDown();
                            try {
                                release.await();
                            } catch (InterruptedException e) {
                                Thread.currentThread().interrupt();
                            }
                        }
                        int stop = pos < data.length / 2 ? data.length / 2 : data.length;
                        int n = Math.min(len, Math.max(1, stop - pos));
                        System.arraycopy(data, pos, b, off, n);
                        pos += n;
                        return n;
                    }
                };
            }
        };
        ExecutorService ex = Executors.newSingleThreadExecutor();
        try {
            Future<?> put = ex.submit(() -> {
                store.put("w/obj", slow);
                return null;
            });
            assertTrue(half.await(30, TimeUnit.SECONDS));
            assertTrue(store.stat("w/obj").isEmpty());
            assertThrows(ObjectNotFoundException.class, () -> store.get("w/obj"));
            assertListing(List.of());
            release.countDown();
            put.get(60, TimeUnit.SECONDS);
            assertEquals(sha256(data), sha256(store.get("w/obj")));
            assertListing(List.of("w/obj"));
        } finally {
            release.countDown();
            ex.shutdownNow();
        }
    }

    /** Readers racing a writer that replaces an object see the old or the new content, whole. */
    @Test
    void readersNeverSeeAPartialObject() throws Exception {
        byte[] a = random(512 << 10, 3);
        byte[] b = random(512 << 10, 4);
        String ha = sha256(a);
        String hb = sha256(b);
        store.put("atomic", a);
        AtomicBoolean stop = new AtomicBoolean();
        AtomicReference<String> bad = new AtomicReference<>();
        ExecutorService ex = Executors.newFixedThreadPool(2);
        try {
            Future<?> reader = ex.submit(() -> {
                while (!stop.get()) {
                    String h = sha256(store.get("atomic"));
                    if (!h.equals(ha) && !h.equals(hb)) {
                        bad.set(h);
                    }
                    List<String> listed = keys(store.listAll(""));
                    if (!listed.contains("atomic") || listsCompleteObjectsOnly() && listed.size() != 1) {
                        bad.set("listed " + listed);
                    }
                }
                return null;
            });
            for (int i = 0; i < 20; i++) {
                store.put("atomic", i % 2 == 0 ? b : a);
            }
            stop.set(true);
            reader.get(60, TimeUnit.SECONDS);
        } finally {
            stop.set(true);
            ex.shutdownNow();
        }
        assertNull(bad.get());
    }

    @Test
    void failedWriteLeavesNothing() throws Exception {
        ObjectSource broken = new ObjectSource() {
            @Override
            public long length() {
                return 1000;
            }

            @Override
            public InputStream open() {
                return new InputStream() {
                    int n;

                    @Override
                    public int read() throws IOException {
                        if (n++ >= 500) {
                            throw new IOException("source broke");
                        }
                        return 7;
                    }

                    @Override
                    public int read(byte[] b, int off, int len) throws IOException {
                        b[off] = (byte) read();
                        return 1;
                    }
                };
            }
        };
        assertThrows(IOException.class, () -> store.put("f/broken", broken));
        assertTrue(store.stat("f/broken").isEmpty());
        assertListing(List.of());
    }

    @Test
    void versionsFollowTheContent() throws Exception {
        ObjectVersion v1 = store.create("v", ObjectSource.of(bytes("one"))).orElseThrow();
        assertEquals(v1, store.getVersioned("v").orElseThrow().version());
        ObjectVersion v2 = store.replace("v", v1, ObjectSource.of(bytes("two"))).orElseThrow();
        assertNotEquals(v1, v2);
        VersionedObject now = store.getVersioned("v").orElseThrow();
        assertEquals(v2, now.version());
        assertArrayEquals(bytes("two"), now.data());
        assertTrue(store.replace("v", v1, ObjectSource.of(bytes("stale"))).isEmpty(), "a stale version loses");
        assertArrayEquals(bytes("two"), store.get("v"));
        assertTrue(store.replace("gone", v2, ObjectSource.of(bytes("x"))).isEmpty(), "no object, no replace");
        assertTrue(store.stat("gone").isEmpty());
    }

    /** Several threads create the same key at once: exactly one wins, and the object holds its bytes. */
    @Test
    void conditionalCreateRaceHasOneWinner() throws Exception {
        race("create", key -> null, (key, v0, mine) -> store.create(key, mine));
    }

    /** Several threads replace the same version at once: exactly one wins. */
    @Test
    void conditionalReplaceRaceHasOneWinner() throws Exception {
        race("replace", key -> store.create(key, ObjectSource.of(bytes("initial"))).orElseThrow(),
            (key, v0, mine) -> store.replace(key, v0, mine));
    }

    interface RoundSetup {
        ObjectVersion prepare(String key) throws Exception;
    }

    interface ConditionalWrite {
        Optional<ObjectVersion> write(String key, ObjectVersion v0, ObjectSource mine) throws Exception;
    }

    /** {@link #raceRounds()} rounds of {@link #THREADS} threads writing {@code "thread N"} at once. */
    private void race(String name, RoundSetup setup, ConditionalWrite write) throws Exception {
        ExecutorService ex = Executors.newFixedThreadPool(THREADS);
        try {
            for (int round = 0; round < raceRounds(); round++) {
                String key = "lease/" + name + "-" + round;
                ObjectVersion v0 = setup.prepare(key);
                CyclicBarrier start = new CyclicBarrier(THREADS);
                List<Future<Optional<ObjectVersion>>> results = new ArrayList<>();
                for (int t = 0; t < THREADS; t++) {
                    ObjectSource mine = ObjectSource.of(bytes("thread " + t));
                    results.add(ex.submit(() -> {
                        start.await();
                        return write.write(key, v0, mine);
                    }));
                }
                assertOneWinner(key, results);
            }
        } finally {
            ex.shutdownNow();
        }
    }

    private void assertOneWinner(String key, List<Future<Optional<ObjectVersion>>> results) throws Exception {
        List<Integer> winners = new ArrayList<>();
        for (int t = 0; t < results.size(); t++) {
            if (results.get(t).get(60, TimeUnit.SECONDS).isPresent()) {
                winners.add(t);
            }
        }
        assertFalse(winners.isEmpty(), key + ": nobody won");
        if (atomicConditionalWrites()) {
            assertEquals(1, winners.size(), key + ": threads " + winners + " won");
        }
        VersionedObject o = store.getVersioned(key).orElseThrow();
        String holder = new String(o.data(), StandardCharsets.UTF_8);
        assertTrue(winners.contains(Integer.parseInt(holder.substring("thread ".length()))),
            key + " holds the bytes of a loser: " + holder + ", winners " + winners);
        if (winners.size() == 1) {
            assertEquals(results.get(winners.get(0)).get().orElseThrow(), o.version(), key);
        }
    }

    /** The listing of the whole store is {@code expected}, apart from a server's temporary files (see above). */
    private void assertListing(List<String> expected) throws Exception {
        List<String> listed = keys(store.listAll(""));
        if (listsCompleteObjectsOnly()) {
            assertEquals(expected, listed);
        } else {
            String uuid = "-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}";
            assertEquals(expected, listed.stream().filter(k -> !k.matches(".*" + uuid)).toList(),
                "listing without s3proxy's temporary files");
        }
    }

    @Test
    void largeObjectFromAFile() throws Exception {
        byte[] data = random(largeSize(), 5);
        Path file = tmp.resolve("large");
        Files.write(file, data);
        store.put("big/one", file);
        assertEquals(sha256(data), sha256(store.get("big/one")));
        assertEquals(data.length, store.stat("big/one").orElseThrow().size());
        int at = (5 << 20) - 1000;
        assertArrayEquals(Arrays.copyOfRange(data, at, at + 3000), store.get("big/one", at, 3000), "across 5 MiB");
        assertTrue(store.putIfAbsent("big/two", ObjectSource.of(file)));
        assertFalse(store.putIfAbsent("big/two", ObjectSource.of(bytes("small"))));
        assertEquals(sha256(data), sha256(store.get("big/two")));
    }

    static List<String> keys(List<ObjectInfo> objects) {
        return objects.stream().map(ObjectInfo::key).toList();
    }
}
