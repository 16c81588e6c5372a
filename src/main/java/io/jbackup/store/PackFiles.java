package io.jbackup.store;

import io.jbackup.model.RepositoryException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Reads records of sealed packs. Local packs: open read channels, at most {@value #MAX_OPEN} at a time (least
 * recently used closed first); a read that races with an eviction reopens the file. Remote packs: one ranged read of
 * the object store per call (a short answer is retried by the store, then reported as a truncated pack).
 */
final class PackFiles implements AutoCloseable {
    static final int MAX_OPEN = 64;
    private final Storage storage;
    private final Path repoDir;
    private final LinkedHashMap<String, FileChannel> open = new LinkedHashMap<>(16, 0.75f, true);
    private boolean closed;

    PackFiles(Storage storage) {
        this.storage = storage;
        this.repoDir = storage.hostDir();
    }

    /** Reads exactly {@code dst.remaining()} bytes of pack {@code name} at {@code pos}. */
    void read(String name, ByteBuffer dst, long pos) throws IOException {
        if (storage.remote()) {
            synchronized (open) {
                if (closed) {
                    throw new RepositoryException("repository " + storage.location() + " is closed");
                }
            }
            try {
                storage.readRange(io.jbackup.store.layout.RepositoryLayout.pack(name), dst, pos);
            } catch (io.jbackup.objectstore.ObjectNotFoundException e) {
                throw new RepositoryException("pack " + storage.describePack(name) + " is missing but the catalog "
                    + "lists chunks in it; run jbackup verify to see which backups are affected",
                    new NoSuchFileException(storage.describePack(name)));
            }
            return;
        }
        int start = dst.position();
        for (int attempt = 0; ; attempt++) {
            FileChannel ch = channel(name);
            try {
                FileSync.readFully(ch, dst, pos + (dst.position() - start), PackFormat.path(repoDir, name));
                return;
            } catch (ClosedChannelException e) {
                if (attempt >= 3) {
                    throw e;
                }
                // evicted meanwhile: reopen and read the rest
            }
        }
    }

    private FileChannel channel(String name) throws IOException {
        synchronized (open) {
            if (closed) {
                throw new RepositoryException("repository " + repoDir + " is closed");
            }
            FileChannel ch = open.get(name);
            if (ch != null && ch.isOpen()) {
                return ch;
            }
            Path file = PackFormat.path(repoDir, name);
            try {
                ch = FileChannel.open(file, StandardOpenOption.READ);
            } catch (NoSuchFileException e) {
                throw new RepositoryException("pack file " + file + " is missing but the catalog lists chunks in it; "
                    + "run jbackup verify to see which backups are affected", e);
            }
            open.put(name, ch);
            if (open.size() > MAX_OPEN) {
                Iterator<Map.Entry<String, FileChannel>> it = open.entrySet().iterator();
                FileChannel eldest = it.next().getValue();
                it.remove();
                closeQuietly(eldest);
            }
            return ch;
        }
    }

    /** Closes the channel of a pack (before it is replaced or removed). */
    void forget(String name) {
        synchronized (open) {
            FileChannel ch = open.remove(name);
            if (ch != null) {
                closeQuietly(ch);
            }
        }
    }

    private static void closeQuietly(FileChannel ch) {
        try {
            ch.close();
        } catch (IOException ignored) {
            // read-only channel: nothing to lose
        }
    }

    @Override
    public void close() {
        synchronized (open) {
            closed = true;
            open.values().forEach(PackFiles::closeQuietly);
            open.clear();
        }
    }
}
