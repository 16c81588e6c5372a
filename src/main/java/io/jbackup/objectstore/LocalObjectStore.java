package io.jbackup.objectstore;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.security.DigestOutputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The object-store port on a local directory: key {@code a/b/c} is the file {@code DIR/a/b/c}.
 *
 * <p>Every write goes to a temporary file next to its target ({@code .NAME.tmp-RANDOM}), is fsynced, renamed over
 * the target (atomic on POSIX) and the directory fsynced: a reader never sees a partial object, and a crash leaves
 * either the old object or the new one. Temporary files have dot-names, which no key can have, so they are never
 * listed or read.
 *
 * <p>Conditional writes check and rename under a lock: a JVM-wide lock per directory plus an OS lock on
 * {@code DIR/.objectstore.lock} against other processes. The version of an object is the SHA-256 of its content.
 */
public final class LocalObjectStore implements ObjectStore {
    static final String LOCK_FILE = ".objectstore.lock";
    private static final ConcurrentHashMap<Path, ReentrantLock> LOCKS = new ConcurrentHashMap<>();
    private static final SecureRandom RANDOM = new SecureRandom();

    private final Path root;
    private final int pageSize;

    private LocalObjectStore(Path root, int pageSize) {
        this.root = root;
        this.pageSize = pageSize;
    }

    /**
     * Opens the store on the existing directory {@code root}, listing at most {@code pageSize} keys a page.
     *
     * @throws StoreNotFoundException when {@code root} is not a directory
     */
    public static LocalObjectStore open(Path root, int pageSize) throws IOException {
        if (pageSize < 1) {
            throw new IllegalArgumentException("page size " + pageSize + " < 1");
        }
        if (!Files.isDirectory(root)) {
            throw new StoreNotFoundException("no directory " + root, null);
        }
        return new LocalObjectStore(root.toRealPath(), pageSize);
    }

    /** {@link #open(Path, int)} with pages of 1000 keys. */
    public static LocalObjectStore open(Path root) throws IOException {
        return open(root, 1000);
    }

    /** The file that holds {@code key}. */
    public Path file(String key) {
        return root.resolve(ObjectKeys.check(key));
    }

    @Override
    public void put(String key, ObjectSource data) throws IOException {
        Path target = file(key);
        Staged staged = stage(target, data);
        try {
            commit(staged, target);
        } finally {
            Files.deleteIfExists(staged.tmp);
        }
    }

    @Override
    public Optional<ObjectVersion> create(String key, ObjectSource data) throws IOException {
        return commitIf(key, data, Files::notExists);
    }

    @Override
    public Optional<ObjectVersion> replace(String key, ObjectVersion expected, ObjectSource data) throws IOException {
        return commitIf(key, data, target -> getVersioned(key).map(o -> o.version().equals(expected)).orElse(false));
    }

    /** The condition of a conditional write, checked under the lock. */
    private interface Condition {
        boolean holds(Path target) throws IOException;
    }

    /** Stages {@code data}, then renames it into place under the lock if {@code condition} holds there. */
    @SuppressWarnings("try") // the lock is held by the try block
    private Optional<ObjectVersion> commitIf(String key, ObjectSource data, Condition condition) throws IOException {
        Path target = file(key);
        Staged staged = stage(target, data);
        try (Locked l = lock()) {
            if (!condition.holds(target)) {
                return Optional.empty();
            }
            commit(staged, target);
            return Optional.of(staged.version);
        } finally {
            Files.deleteIfExists(staged.tmp);
        }
    }

    @Override
    public Optional<VersionedObject> getVersioned(String key) throws IOException {
        try {
            byte[] data = Files.readAllBytes(file(key));
            return Optional.of(new VersionedObject(data, new ObjectVersion(hex(sha256().digest(data)))));
        } catch (NoSuchFileException e) {
            return Optional.empty();
        } catch (AccessDeniedException e) {
            throw denied(e);
        }
    }

    @Override
    public byte[] get(String key, long offset, int length) throws IOException {
        if (offset < 0 || length < 0) {
            throw new IllegalArgumentException("offset " + offset + ", length " + length);
        }
        try (FileChannel ch = FileChannel.open(file(key), StandardOpenOption.READ)) {
            long size = ch.size();
            int n = (int) Math.max(0, Math.min(length, size - offset));
            ByteBuffer buf = ByteBuffer.allocate(n);
            while (buf.hasRemaining()) {
                if (ch.read(buf, offset + buf.position()) < 0) {
                    break;
                }
            }
            return buf.position() == n ? buf.array() : Arrays.copyOf(buf.array(), buf.position());
        } catch (NoSuchFileException e) {
            throw new ObjectNotFoundException(describe(), key);
        } catch (AccessDeniedException e) {
            throw denied(e);
        }
    }

    @Override
    public Optional<ObjectInfo> stat(String key) throws IOException {
        try {
            BasicFileAttributes a = Files.readAttributes(file(key), BasicFileAttributes.class);
            return a.isRegularFile() ? Optional.of(new ObjectInfo(key, a.size(), a.lastModifiedTime().toInstant()))
                : Optional.empty();
        } catch (NoSuchFileException e) {
            return Optional.empty();
        }
    }

    /**
     * Walks the directories the prefix can reach, keeping the {@code pageSize} smallest keys after
     * {@code startAfter}: a page costs one walk, and memory for one page.
     */
    @Override
    public ListPage list(String prefix, String startAfter) throws IOException {
        ObjectKeys.checkPrefix(prefix);
        int slash = prefix.lastIndexOf('/');
        String base = slash < 0 ? "" : prefix.substring(0, slash);
        TreeMap<String, Path> page = new TreeMap<>(ObjectStores.KEY_ORDER);
        boolean[] truncated = {false};
        walk(base.isEmpty() ? root : root.resolve(base), base, prefix, startAfter, page, truncated);
        List<ObjectInfo> out = new ArrayList<>(page.size());
        for (var e : page.entrySet()) {
            try {
                BasicFileAttributes a = Files.readAttributes(e.getValue(), BasicFileAttributes.class);
                out.add(new ObjectInfo(e.getKey(), a.size(), a.lastModifiedTime().toInstant()));
            } catch (NoSuchFileException gone) {
                // deleted since the walk: a listing is a snapshot of some moment per key
            }
        }
        return new ListPage(out, truncated[0]);
    }

    private void walk(Path dir, String dirKey, String prefix, String startAfter, TreeMap<String, Path> page,
            boolean[] truncated) throws IOException {
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            for (Path p : s) {
                String name = p.getFileName().toString();
                if (name.startsWith(".")) {
                    continue;
                }
                String key = dirKey.isEmpty() ? name : dirKey + "/" + name;
                if (Files.isDirectory(p)) {
                    String sub = key + "/";
                    boolean reachable = sub.startsWith(prefix) || prefix.startsWith(sub);
                    if (reachable) {
                        walk(p, key, prefix, startAfter, page, truncated);
                    }
                } else if (key.startsWith(prefix) && (startAfter == null
                        || ObjectStores.KEY_ORDER.compare(key, startAfter) > 0)) {
                    page.put(key, p);
                    if (page.size() > pageSize) {
                        page.pollLastEntry();
                        truncated[0] = true;
                    }
                }
            }
        } catch (NoSuchFileException e) {
            // nothing under this prefix
        } catch (AccessDeniedException e) {
            throw denied(e);
        }
    }

    @Override
    public void delete(String key) throws IOException {
        try {
            Files.deleteIfExists(file(key));
        } catch (AccessDeniedException e) {
            throw denied(e);
        }
    }

    @Override
    public int pageSize() {
        return pageSize;
    }

    @Override
    public String describe() {
        return root.toString();
    }

    @Override
    public void close() {
    }

    private record Staged(Path tmp, ObjectVersion version) {
    }

    /** Writes {@code data} to a fresh temporary file next to {@code target} and fsyncs it. */
    private Staged stage(Path target, ObjectSource data) throws IOException {
        Path dir = target.getParent();
        try {
            Files.createDirectories(dir);
        } catch (FileAlreadyExistsException e) {
            throw new ObjectStoreException("cannot store " + root.relativize(target) + " in " + root + ": "
                + root.relativize(e.getFile() == null ? dir : Path.of(e.getFile())) + " is an object, not a prefix", e);
        } catch (AccessDeniedException e) {
            throw denied(e);
        }
        byte[] r = new byte[8];
        RANDOM.nextBytes(r);
        Path tmp = dir.resolve("." + target.getFileName() + ".tmp-" + HexFormat.of().formatHex(r));
        MessageDigest md = sha256();
        long expected = data.length();
        long written;
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
             InputStream in = data.open()) {
            OutputStream out = new DigestOutputStream(Channels.newOutputStream(ch), md);
            written = copy(in, out, expected + 1);
            out.flush();
            ch.force(true);
        } catch (IOException | RuntimeException e) {
            Files.deleteIfExists(tmp);
            if (e instanceof AccessDeniedException a) {
                throw denied(a);
            }
            throw e;
        }
        if (written != expected) {
            Files.deleteIfExists(tmp);
            throw new ObjectStoreException("the content of " + root.relativize(target) + " was " + written
                + (written > expected ? " bytes or more" : " bytes") + ", not the " + expected
                + " announced: it changed while it was stored");
        }
        return new Staged(tmp, new ObjectVersion(hex(md.digest())));
    }

    /** Copies at most {@code limit} bytes: a source longer than it announced is not read to its end. */
    private static long copy(InputStream in, OutputStream out, long limit) throws IOException {
        byte[] buf = new byte[64 << 10];
        long total = 0;
        int n;
        while (total < limit && (n = in.read(buf, 0, (int) Math.min(buf.length, limit - total))) > 0) {
            out.write(buf, 0, n);
            total += n;
        }
        return total;
    }

    /** Renames the staged file over {@code target} and fsyncs the directory. */
    private static void commit(Staged staged, Path target) throws IOException {
        Files.move(staged.tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        try (FileChannel d = FileChannel.open(target.getParent(), StandardOpenOption.READ)) {
            d.force(true);
        }
    }

    private final class Locked implements AutoCloseable {
        private final ReentrantLock jvm;
        private final FileChannel channel;
        private final FileLock os;

        Locked() throws IOException {
            jvm = LOCKS.computeIfAbsent(root, r -> new ReentrantLock());
            jvm.lock();
            FileChannel ch = null;
            try {
                ch = FileChannel.open(root.resolve(LOCK_FILE), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
                os = ch.lock();
                channel = ch;
            } catch (IOException | RuntimeException e) {
                if (ch != null) {
                    ch.close();
                }
                jvm.unlock();
                throw e;
            }
        }

        @Override
        public void close() throws IOException {
            try {
                os.release();
                channel.close();
            } finally {
                jvm.unlock();
            }
        }
    }

    private Locked lock() throws IOException {
        return new Locked();
    }

    private StoreAccessDeniedException denied(AccessDeniedException e) {
        return new StoreAccessDeniedException("no permission on " + e.getFile() + " (store " + root + ")", e);
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }
}
