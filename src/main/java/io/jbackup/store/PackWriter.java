package io.jbackup.store;

import io.jbackup.catalog.ChunkRow;
import io.jbackup.model.RepositoryException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * One pack being written (format: {@link PackFormat}). Records are appended at the end under the owning writer's
 * lock, through a {@link StagedFileWriter} (whole blocks with O_DIRECT); {@link #seal} writes the footer, fsyncs, publishes the pack ({@link Storage#publishPack}: a rename into
 * {@code packs/} and a directory fsync, or an upload to the object store) and registers the chunks in the catalog,
 * in that order. Any thread may seal a pack (a backup that deduplicated against
 * a chunk still in another writer's open pack seals that pack before committing); the first caller does the work,
 * later ones wait for its outcome.
 *
 * <p>A failed append poisons the pack: it is never sealed, so no backup can commit a reference to a chunk that did
 * not reach the disk.
 */
final class PackWriter {
    private static final SecureRandom RANDOM = new SecureRandom();

    final String name;
    private final RepositoryContext repo;
    private final Object lock;
    private final Path tmpFile;
    private final StagedFileWriter out;
    private final byte[] header;
    private final List<ChunkRow> entries = new ArrayList<>();
    private final AtomicBoolean sealing = new AtomicBoolean();
    private final CompletableFuture<Void> sealed = new CompletableFuture<>();
    private long size;
    private boolean closed;
    private boolean relocate;
    private IOException poison;

    /** Creates the pack's temporary file in {@code tmpDir}; {@code lock} guards appends and closing. */
    PackWriter(RepositoryContext repo, Path tmpDir, Object lock) throws IOException {
        byte[] id = new byte[16];
        RANDOM.nextBytes(id);
        this.name = HexFormat.of().formatHex(id);
        this.repo = repo;
        this.lock = lock;
        this.tmpFile = tmpDir.resolve(name + PackFormat.SUFFIX);
        this.header = ByteBuffer.allocate(PackFormat.HEADER_SIZE).putInt(PackFormat.MAGIC)
            .putShort((short) PackFormat.VERSION)
            .putShort((short) (repo.codec().encrypted() ? PackFormat.FLAG_ENCRYPTED : 0)).put(id).putLong(0).array();
        // O_DIRECT where the pack stays; a pack for an object store is read back at once for the upload
        this.out = new StagedFileWriter(tmpFile, !repo.storage().remote());
        out.write(header, 0, header.length);
        this.size = PackFormat.HEADER_SIZE;
    }

    /**
     * Appends a record of {@code len} bytes: all of it in {@code rec}, or, when {@code body} is not null, its header
     * in {@code rec} and its payload in {@code body} ({@link ChunkCodec#encodeParts}). The caller holds
     * {@code lock}. Returns false (and writes nothing) if the pack is closed.
     */
    boolean append(byte[] id, byte[] rec, byte[] body, int len, int rawLen) throws IOException {
        assert Thread.holdsLock(lock);
        if (closed) {
            return false;
        }
        try {
            if (body == null) {
                out.write(rec, 0, len);
            } else {
                out.write(rec, 0, PackFormat.RECORD_HEADER_SIZE);
                out.write(body, 0, len - PackFormat.RECORD_HEADER_SIZE);
            }
        } catch (IOException e) {
            poison = e;
            closed = true;
            throw e;
        }
        entries.add(new ChunkRow(id, size, len, rawLen));
        size += len;
        return true;
    }

    /**
     * Makes {@link #seal} point existing chunk rows at this pack ({@link io.jbackup.catalog.Catalog#relocate})
     * instead of registering only new digests: gc's repacking.
     */
    PackWriter relocating() {
        relocate = true;
        return this;
    }

    /** Bytes written so far; the caller holds {@code lock}. */
    long size() {
        return size;
    }

    /** Whether appends are refused (sealing or sealed, or poisoned); the caller holds {@code lock}. */
    boolean closed() {
        return closed;
    }

    /** Completes when the pack is sealed and registered. */
    CompletableFuture<Void> sealedFuture() {
        return sealed;
    }

    /** Seals the pack (idempotent); returns once it is registered in the catalog or throws why it could not be. */
    void seal() throws IOException {
        if (!sealing.compareAndSet(false, true)) {
            try {
                sealed.join();
                return;
            } catch (CompletionException e) {
                throw new RepositoryException("pack " + name + " could not be sealed: " + e.getCause().getMessage(),
                    e.getCause());
            }
        }
        List<ChunkRow> rows;
        IOException poisoned;
        synchronized (lock) {
            closed = true;
            rows = List.copyOf(entries);
            entries.clear();
            poisoned = poison;
        }
        boolean renamed = false;
        try {
            if (poisoned != null) {
                throw new RepositoryException("pack " + tmpFile + " lost a write: " + poisoned.getMessage(), poisoned);
            }
            if (rows.isEmpty()) {
                out.close();
                Files.deleteIfExists(tmpFile);
                sealed.complete(null);
                return;
            }
            ByteBuffer footer = ByteBuffer.allocate(rows.size() * PackFormat.FOOTER_ENTRY_SIZE + PackFormat.TRAILER_SIZE);
            for (ChunkRow r : rows) {
                footer.put(r.digest()).putLong(r.offset()).putInt(r.length()).putInt(r.rawLength());
            }
            int trailerStart = footer.position();
            footer.putLong(size).putInt(rows.size()).putInt(0);
            MetaMac mac = repo.metaMac();
            mac.update(header).update(footer.array(), 0, footer.position());
            footer.put(mac.finish()).putLong(0).putLong(PackFormat.TRAILER_MAGIC);
            assert footer.position() == trailerStart + PackFormat.TRAILER_SIZE;
            footer.flip();
            long fileSize = size + footer.remaining();
            out.write(footer);
            out.flush();
            if (out.size() != fileSize) {
                throw new IllegalStateException("pack " + tmpFile + " holds " + out.size() + " bytes, expected "
                    + fileSize);
            }
            CrashPoints.reached("pack-written");
            out.force();
            out.close();
            repo.storage().publishPack(tmpFile, name);
            renamed = true;
            CrashPoints.reached("pack-synced");
            if (relocate) {
                repo.catalog().relocate(name, fileSize, rows);
            } else {
                repo.catalog().addPack(name, fileSize, rows);
            }
            CrashPoints.reached("pack-registered");
            sealed.complete(null);
        } catch (IOException | RuntimeException e) {
            try {
                out.close();
                if (!renamed) {
                    Files.deleteIfExists(tmpFile);
                }
            } catch (IOException suppressed) {
                e.addSuppressed(suppressed);
            }
            sealed.completeExceptionally(e);
            throw e;
        } finally {
            repo.unpend(rows, this);
        }
    }
}
