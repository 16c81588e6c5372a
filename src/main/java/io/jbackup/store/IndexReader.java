package io.jbackup.store;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.model.RepositoryException;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;

import static io.jbackup.store.IndexFile.FLAG_KEYED;
import static io.jbackup.store.IndexFile.IN_MEMORY_ENTRY_BYTES;
import static io.jbackup.store.IndexFile.IO_BLOCK;
import static io.jbackup.store.IndexFile.LOST;
import static io.jbackup.store.IndexFile.MAC_SIZE;
import static io.jbackup.store.IndexFile.MAGIC;
import static io.jbackup.store.IndexFile.MAX_CHUNKS;
import static io.jbackup.store.IndexFile.MAX_METADATA;
import static io.jbackup.store.IndexFile.PREAMBLE_SIZE;
import static io.jbackup.store.IndexFile.VERSION;
import static io.jbackup.store.IndexFile.entryOffset;

/** A verified index file. Thread-safe. */
final class IndexReader implements Closeable {
    /** Receives consecutive entries: {@code buf[0, len)} holds the digests of positions {@code first ...}. */
    @FunctionalInterface
    interface BlockVisitor {
        void visit(long first, byte[] buf, int len) throws IOException;
    }

    final Path file;
    private final FileChannel ch;
    private final long chunkCount;
    private final int chunkSize;
    private final JsonNode metadata;
    private final byte[] entries; // null when read by position
    private final long present; // entries the file holds: chunkCount, unless salvaged from a truncated file

    private IndexReader(Path file, FileChannel ch, long chunkCount, int chunkSize, JsonNode metadata, byte[] entries) {
        this(file, ch, chunkCount, chunkSize, metadata, entries, chunkCount);
    }

    private IndexReader(Path file, FileChannel ch, long chunkCount, int chunkSize, JsonNode metadata, byte[] entries,
                   long present) {
        this.file = file;
        this.ch = ch;
        this.chunkCount = chunkCount;
        this.chunkSize = chunkSize;
        this.metadata = metadata;
        this.entries = entries;
        this.present = present;
    }

    /**
     * Opens an index that failed {@link #open} to salvage what it can ({@code restore --ignore-errors}), trusting
     * nothing in the file but the entry positions: the chunk count and size come from the catalog. Entries the
     * file still holds are returned as they are (a reader verifies every chunk against its digest, so a damaged
     * entry names a chunk that is in no pack and fails there); positions past the end of a truncated file read
     * as {@link IndexFile#LOST}.
     */
    static IndexReader salvage(Path file, long chunkCount, int chunkSize, JsonNode metadata) throws IOException {
        FileChannel ch = FileChannel.open(file, StandardOpenOption.READ);
        try {
            long present = Math.max(0, Math.min(chunkCount, (ch.size() - PREAMBLE_SIZE) / ChunkId.LENGTH));
            long entryBytes = chunkCount * ChunkId.LENGTH;
            byte[] entries = null;
            if (entryBytes <= IN_MEMORY_ENTRY_BYTES) {
                entries = new byte[(int) entryBytes];
                FileSync.readFully(ch, ByteBuffer.wrap(entries, 0, (int) (present * ChunkId.LENGTH)), PREAMBLE_SIZE,
                    file);
                for (long i = present; i < chunkCount; i++) {
                    System.arraycopy(LOST, 0, entries, (int) (i * ChunkId.LENGTH), ChunkId.LENGTH);
                }
            }
            return new IndexReader(file, ch, chunkCount, chunkSize, metadata, entries, present);
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    /**
     * Opens and verifies an index: bounds, file MAC, and entries MAC (reading every entry once).
     * {@code keyed} says whether the repository is encrypted, so an unauthenticated index is refused there.
     */
    static IndexReader open(Path file, Supplier<MetaMac> macs, boolean keyed) throws IOException {
        FileChannel ch;
        try {
            ch = FileChannel.open(file, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            // damage, as verify reports it (exit 6), unless this host's catalog is out of date
            throw new IndexCorruptException("index file " + file + " is missing, so the backup cannot be read; if "
                + "another host deleted the backup, rebuild this host's catalog with: jbackup repair "
                + "--rebuild-catalog; otherwise run jbackup verify to list what else is damaged", e);
        }
        try {
            IndexReader r = verify(file, ch, macs, keyed);
            return r;
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    private static IndexReader verify(Path file, FileChannel ch, Supplier<MetaMac> macs, boolean keyed)
        throws IOException {
        long size = ch.size();
        if (size < PREAMBLE_SIZE + MAC_SIZE) {
            throw corrupt(file, "is " + size + " bytes, shorter than an empty index (96)");
        }
        ByteBuffer pre = ByteBuffer.allocate(PREAMBLE_SIZE);
        FileSync.readFully(ch, pre, 0, file);
        pre.flip();
        long magic = pre.getLong();
        int version = pre.getInt();
        int flags = pre.getInt();
        long count = pre.getLong();
        int chunkSize = pre.getInt();
        int metaLen = pre.getInt();
        byte[] entriesMac = new byte[MAC_SIZE];
        pre.get(entriesMac);
        if (magic != MAGIC) {
            throw corrupt(file, String.format("has magic 0x%016x (expected 0x%016x)", magic, MAGIC));
        }
        if (version != VERSION) {
            throw new RepositoryException("index " + file + " has format version " + version + "; this jbackup reads "
                + "version " + VERSION);
        }
        if (((flags & FLAG_KEYED) != 0) != keyed) {
            throw corrupt(file, keyed ? "is not authenticated with the repository key, but the repository is "
                + "encrypted" : "is keyed, but the repository is not encrypted");
        }
        if (count < 0 || count > MAX_CHUNKS || chunkSize < RepositoryOptions.MIN_CHUNK_SIZE
            || chunkSize > RepositoryOptions.MAX_CHUNK_SIZE || Integer.bitCount(chunkSize) != 1
            || metaLen < 0 || metaLen > MAX_METADATA) {
            throw corrupt(file, "has out-of-range header fields (chunk count " + count + ", chunk size "
                + chunkSize + ", metadata length " + metaLen + ")");
        }
        long expected = entryOffset(count) + metaLen + MAC_SIZE;
        if (size != expected) {
            throw corrupt(file, "is " + size + " bytes; its header says " + expected);
        }
        ByteBuffer tail = ByteBuffer.allocate(metaLen + MAC_SIZE);
        FileSync.readFully(ch, tail, entryOffset(count), file);
        byte[] meta = Arrays.copyOfRange(tail.array(), 0, metaLen);
        byte[] storedMac = Arrays.copyOfRange(tail.array(), metaLen, metaLen + MAC_SIZE);
        byte[] actualMac = macs.get().update(pre.array()).update(meta).finish();
        if (!MessageDigest.isEqual(storedMac, actualMac)) {
            throw corrupt(file, "fails its file " + (keyed ? "MAC (wrong key or altered file)" : "checksum"));
        }
        JsonNode metadata = Json.parse(meta, file);
        long entryBytes = count * ChunkId.LENGTH;
        byte[] entries = entryBytes <= IN_MEMORY_ENTRY_BYTES ? new byte[(int) entryBytes] : null;
        IndexReader r = new IndexReader(file, ch, count, chunkSize, metadata, entries);
        MetaMac em = macs.get();
        r.scan((first, buf, len) -> {
            em.update(buf, 0, len);
            if (entries != null) {
                System.arraycopy(buf, 0, entries, (int) (first * ChunkId.LENGTH), len);
            }
        });
        if (!MessageDigest.isEqual(entriesMac, em.finish())) {
            throw corrupt(file, "fails its entries " + (keyed ? "MAC" : "checksum") + "; the chunk map is damaged");
        }
        long imageSize = metadata.path("imageSize").asLong(-1);
        if (imageSize < 0 || (imageSize + chunkSize - 1) / chunkSize != count
            || metadata.path("chunkSize").asInt() != chunkSize) {
            throw corrupt(file, "metadata (image size " + imageSize + ", chunk size "
                + metadata.path("chunkSize").asInt() + ") disagrees with its header (" + count + " chunks of "
                + chunkSize + ")");
        }
        return r;
    }

    private static RepositoryException corrupt(Path file, String what) {
        return new IndexCorruptException("index " + file + " " + what + "; the backup cannot be read from it "
            + "(run jbackup verify; restore --ignore-errors salvages what the file still holds)");
    }

    long chunkCount() {
        return chunkCount;
    }

    int chunkSize() {
        return chunkSize;
    }

    JsonNode metadata() {
        return metadata;
    }

    /** Copies the digest at {@code index} into {@code out[0, 32)}. */
    void digest(long index, byte[] out) throws IOException {
        if (index < 0 || index >= chunkCount) {
            throw new IndexOutOfBoundsException("chunk " + index + " out of range (0.." + (chunkCount - 1) + ")");
        }
        if (entries != null) {
            System.arraycopy(entries, (int) (index * ChunkId.LENGTH), out, 0, ChunkId.LENGTH);
        } else if (index >= present) {
            System.arraycopy(LOST, 0, out, 0, ChunkId.LENGTH);
        } else {
            FileSync.readFully(ch, ByteBuffer.wrap(out, 0, ChunkId.LENGTH), entryOffset(index), file);
        }
    }

    /** Visits every entry in order, a block at a time (bounded memory). */
    void forEachBlock(BlockVisitor v) throws IOException {
        if (entries != null) {
            for (int off = 0; off < entries.length; off += IO_BLOCK) {
                int len = Math.min(IO_BLOCK, entries.length - off);
                byte[] b = Arrays.copyOfRange(entries, off, off + len);
                v.visit(off / ChunkId.LENGTH, b, len);
            }
        } else {
            scan(v);
        }
    }

    /**
     * Every chunk the backup references: the entries ({@link #forEachBlock}), then the chunks of its attachments
     * ({@link Attachments}) as one more block at positions {@code chunkCount ...}, in attachment order. gc marks,
     * verify reads and the rebuild checks what this visits.
     */
    void forEachReference(BlockVisitor v) throws IOException {
        forEachBlock(v);
        byte[] buf = Attachments.digests(attachments());
        if (buf.length > 0) {
            v.visit(chunkCount, buf, buf.length);
        }
    }

    /** The attachments the metadata lists (none for a salvaged index). */
    List<Attachments.Entry> attachments() throws RepositoryException {
        return Attachments.parse(metadata, file.toString());
    }

    private void scan(BlockVisitor v) throws IOException {
        long total = chunkCount * ChunkId.LENGTH;
        byte[] buf = new byte[(int) Math.min(IO_BLOCK, Math.max(total, 1))];
        for (long done = 0; done < total; ) {
            int len = (int) Math.min(buf.length, total - done);
            FileSync.readFully(ch, ByteBuffer.wrap(buf, 0, len), PREAMBLE_SIZE + done, file);
            v.visit(done / ChunkId.LENGTH, buf, len);
            done += len;
        }
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }
}
