package io.jbackup.store;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.time.Instant;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;

/**
 * The index file of one backup, {@code indexes/<backup id>.idx}: the complete, immutable map from chunk position
 * to chunk digest. An incremental backup starts from a copy of its parent's entries and replaces the positions it
 * writes, so any backup restores by reading each of its chunks once, with no chain to replay, and deleting a backup
 * never breaks another. All integers are big-endian.
 *
 * <pre>
 * offset        size  field
 *  0             8    magic "JBKIDX01"
 *  8             4    format version (1)
 * 12             4    flags: bit 0 = the MACs below are HMAC-SHA256 under the metadata subkey (encrypted
 *                     repository); otherwise SHA-256
 * 16             8    chunk count N = ceil(image size / chunk size), at most 2^32
 * 24             4    chunk size (a power of two, 64 KiB .. 4 MiB)
 * 28             4    metadata length M (at most 1 MiB)
 * 32            32    entries MAC: over the N × 32 entry bytes
 * 64        N × 32    entries: the digest of the chunk at each position; 32 zero bytes = an all-zero chunk
 * 64 + 32N       M    metadata, UTF-8 JSON: id, uuid, repository, vm, disk, type, parent, created, completed,
 *                     imageSize, chunkSize, labels, note, source, stats, and attachments when there are any
 *                     (name, size and chunk digests of each: see {@link Attachments})
 * 64 + 32N + M  32    file MAC: over bytes [0, 64) and the metadata (the entries are covered by the entries MAC)
 * </pre>
 *
 * The file is built under a temporary name ({@code tmp/<owner>/<n>/<id>.idx}, entries written in place by position; a
 * full backup's file starts sparse, i.e. all zero chunks, and zero entries are written only into blocks that may hold
 * a non-zero one, so zero runs stay holes: see {@link Draft}), then finished (entries MAC, metadata, preamble, file MAC),
 * fsynced and renamed into {@code indexes/}: the rename is the backup's commit point. In an encrypted repository the
 * metadata (names, labels, note, sizes, counts) is authenticated but not encrypted; the catalog holds it in
 * plaintext too.
 */
final class IndexFile {
    static final long MAGIC = 0x4A424B4944583031L; // "JBKIDX01"
    static final int VERSION = 1;
    static final int PREAMBLE_SIZE = 64;
    static final int MAC_SIZE = 32;
    static final int FLAG_KEYED = 1;
    static final int MAX_METADATA = 1 << 20;
    static final long MAX_CHUNKS = 1L << 32;
    /** Indexes with at most this many entry bytes are held in memory by readers; bigger ones are read by position. */
    static final int IN_MEMORY_ENTRY_BYTES = 8 << 20;
    static final String DIR = "indexes";
    static final String SUFFIX = ".idx";
    /** The digest a salvaged reader gives for a position its damaged file no longer holds (never a real digest). */
    static final byte[] LOST = lost();
    private static final int IO_BLOCK = 1 << 20;
    /** Zero entries for {@link Draft#putZeros} (never written to). */
    private static final byte[] ZERO_BLOCK = new byte[IO_BLOCK];

    private IndexFile() {
    }

    private static byte[] lost() {
        byte[] b = new byte[ChunkId.LENGTH];
        Arrays.fill(b, (byte) 0xff);
        return b;
    }

    /** Whether the index file's header says its MACs are keyed; false if it cannot be read. */
    static boolean isKeyed(Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(16);
            FileSync.readFully(ch, b, 0, file);
            return b.getLong(0) == MAGIC && (b.getInt(12) & FLAG_KEYED) != 0;
        } catch (IOException e) {
            return false;
        }
    }

    static Path path(Path repoDir, String backupId) {
        return repoDir.resolve(DIR).resolve(backupId + SUFFIX);
    }

    static long entryOffset(long index) {
        return PREAMBLE_SIZE + index * ChunkId.LENGTH;
    }

    // --------------------------------------------------------------------------------------------------- metadata

    static ObjectNode metadata(BackupInfo b, String uuid, String repositoryId) {
        ObjectNode n = Json.MAPPER.createObjectNode();
        n.put("id", b.id());
        n.put("uuid", uuid);
        n.put("repository", repositoryId);
        if (b.vm() != null) {
            n.put("vm", b.vm());
        }
        n.put("disk", b.disk());
        n.put("type", b.type());
        if (b.parentId() != null) {
            n.put("parent", b.parentId());
        }
        n.put("created", b.created().toString());
        if (b.completed() != null) {
            n.put("completed", b.completed().toString());
        }
        n.put("imageSize", b.imageSize());
        n.put("chunkSize", b.chunkSize());
        n.set("labels", Json.map(b.labels()));
        if (b.note() != null) {
            n.put("note", b.note());
        }
        n.set("source", Json.map(b.source()));
        BackupStats s = b.stats();
        ObjectNode st = n.putObject("stats");
        st.put("chunksTotal", s.chunksTotal());
        st.put("chunksNew", s.chunksNew());
        st.put("chunksDedup", s.chunksDedup());
        st.put("chunksZero", s.chunksZero());
        st.put("bytesNew", s.bytesNew());
        st.put("bytesDedup", s.bytesDedup());
        st.put("bytesZero", s.bytesZero());
        st.put("bytesStored", s.bytesStored());
        return n;
    }

    /** The backup described by an index's metadata (state complete). */
    static BackupInfo info(JsonNode n, Path file) throws RepositoryException {
        try {
            JsonNode st = n.path("stats");
            BackupStats stats = new BackupStats(st.path("chunksTotal").asLong(), st.path("chunksNew").asLong(),
                st.path("chunksDedup").asLong(), st.path("chunksZero").asLong(), st.path("bytesNew").asLong(),
                st.path("bytesDedup").asLong(), st.path("bytesZero").asLong(), st.path("bytesStored").asLong());
            String id = n.path("id").asText();
            String disk = n.path("disk").asText();
            if (id.isEmpty() || disk.isEmpty()) {
                throw new IllegalArgumentException("id or disk missing");
            }
            return new BackupInfo(id, n.hasNonNull("vm") ? n.get("vm").asText() : null, disk,
                n.path("type").asText(), n.hasNonNull("parent") ? n.get("parent").asText() : null,
                Instant.parse(n.path("created").asText()),
                n.hasNonNull("completed") ? Instant.parse(n.get("completed").asText()) : null,
                n.path("imageSize").asLong(), n.path("chunkSize").asInt(), BackupInfo.COMPLETE,
                Json.toMap(n.get("labels")), n.hasNonNull("note") ? n.get("note").asText() : null,
                Json.toMap(n.get("source")), stats);
        } catch (RuntimeException e) {
            throw new RepositoryException("index " + file + " has invalid metadata: " + e.getMessage(), e);
        }
    }

    // ------------------------------------------------------------------------------------------------------ draft

    /**
     * An index being written under a temporary name. Entry writes are thread-safe (positional). The file starts
     * sparse, and zero entries are written only into blocks of {@value #IO_BLOCK} entry bytes that may hold a
     * non-zero entry: runs of zero chunks cost no writes and leave holes (work per run, not per chunk).
     */
    static final class Draft implements Closeable {
        final Path tmp;
        final long chunkCount;
        final int chunkSize;
        private final FileChannel ch;
        /** One bit per block of entry bytes, set before any non-zero entry is written into that block. */
        private final java.util.concurrent.atomic.AtomicLongArray touched;

        Draft(Path tmp, long chunkCount, int chunkSize) throws IOException {
            this.tmp = tmp;
            this.chunkCount = chunkCount;
            this.chunkSize = chunkSize;
            this.ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                StandardOpenOption.WRITE);
            // sparse: every entry reads as the zero digest until written
            FileSync.writeFully(ch, ByteBuffer.allocate(PREAMBLE_SIZE), 0);
            if (chunkCount > 0) {
                FileSync.writeFully(ch, ByteBuffer.allocate(1), entryOffset(chunkCount) - 1);
            }
            long blocks = (chunkCount * ChunkId.LENGTH + IO_BLOCK - 1) / IO_BLOCK;
            this.touched = new java.util.concurrent.atomic.AtomicLongArray((int) ((blocks + 63) / 64));
        }

        private static long blockOf(long index) {
            return index * ChunkId.LENGTH / IO_BLOCK;
        }

        private void touch(long block) {
            int i = (int) (block >>> 6);
            long bit = 1L << (block & 63);
            if ((touched.get(i) & bit) == 0) {
                touched.getAndAccumulate(i, bit, (a, b) -> a | b);
            }
        }

        private boolean isTouched(long block) {
            return (touched.get((int) (block >>> 6)) & (1L << (block & 63))) != 0;
        }

        /** Copies every entry of {@code parent} (same chunk count), checking the parent's entries MAC on the way. */
        void copyFrom(Reader parent) throws IOException {
            if (parent.chunkCount() != chunkCount) {
                throw new IllegalArgumentException("parent has " + parent.chunkCount() + " chunks, not " + chunkCount);
            }
            parent.forEachBlock((first, buf, len) -> {
                // blocks of zero entries stay holes
                if (java.util.Arrays.mismatch(buf, 0, len, ZERO_BLOCK, 0, len) >= 0) {
                    for (long b = blockOf(first); b <= blockOf(first + len / ChunkId.LENGTH - 1); b++) {
                        touch(b);
                    }
                    FileSync.writeFully(ch, ByteBuffer.wrap(buf, 0, len), entryOffset(first));
                }
            });
        }

        /** Sets the digest at {@code index}. */
        void put(long index, byte[] digest) throws IOException {
            long block = blockOf(index);
            if (!isTouched(block)) {
                if (ChunkId.isZeroDigest(digest)) {
                    return; // the entry is still a hole
                }
                touch(block);
            }
            FileSync.writeFully(ch, ByteBuffer.wrap(digest, 0, ChunkId.LENGTH), entryOffset(index));
        }

        /** Sets the zero digest at {@code count} positions from {@code first}, a block of entries per write. */
        void putZeros(long first, long count) throws IOException {
            long pos = first * ChunkId.LENGTH; // relative to the first entry
            long end = (first + count) * ChunkId.LENGTH;
            while (pos < end) {
                long block = pos / IO_BLOCK;
                long stop = Math.min(end, (block + 1) * IO_BLOCK);
                if (isTouched(block)) {
                    FileSync.writeFully(ch, ByteBuffer.wrap(ZERO_BLOCK, 0, (int) (stop - pos)), PREAMBLE_SIZE + pos);
                }
                pos = stop;
            }
        }

        /** Reads the digest at {@code index} back (tests and diagnostics). */
        byte[] get(long index) throws IOException {
            ByteBuffer b = ByteBuffer.allocate(ChunkId.LENGTH);
            FileSync.readFully(ch, b, entryOffset(index), tmp);
            return b.array();
        }

        /** Writes the entries MAC, metadata, preamble and file MAC, then fsyncs. The file is then ready to rename. */
        void finish(byte[] metadata, Supplier<MetaMac> macs) throws IOException {
            if (metadata.length > MAX_METADATA) {
                throw new RepositoryException("backup metadata is " + metadata.length + " bytes (at most " + MAX_METADATA
                    + "): shorten the labels or the note");
            }
            MetaMac entriesMac = macs.get();
            ByteBuffer buf = ByteBuffer.allocate((int) Math.min(IO_BLOCK, Math.max(ChunkId.LENGTH,
                chunkCount * ChunkId.LENGTH)));
            long end = entryOffset(chunkCount);
            for (long pos = entryOffset(0); pos < end; ) {
                buf.clear().limit((int) Math.min(buf.capacity(), end - pos));
                FileSync.readFully(ch, buf, pos, tmp);
                buf.flip();
                pos += buf.remaining();
                entriesMac.update(buf);
            }
            MetaMac fileMac = macs.get();
            ByteBuffer pre = ByteBuffer.allocate(PREAMBLE_SIZE);
            pre.putLong(MAGIC).putInt(VERSION).putInt(fileMac.keyed() ? FLAG_KEYED : 0).putLong(chunkCount)
                .putInt(chunkSize).putInt(metadata.length).put(entriesMac.finish());
            byte[] preamble = pre.array();
            fileMac.update(preamble).update(metadata);
            FileSync.writeFully(ch, ByteBuffer.wrap(metadata), end);
            FileSync.writeFully(ch, ByteBuffer.wrap(fileMac.finish()), end + metadata.length);
            FileSync.writeFully(ch, ByteBuffer.wrap(preamble), 0);
            ch.force(true);
        }

        @Override
        public void close() throws IOException {
            ch.close();
        }

        /** Closes and deletes the temporary file. */
        void delete() {
            try {
                ch.close();
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // best effort: the tmp directory is cleaned when its owner is gone
            }
        }
    }

    // ----------------------------------------------------------------------------------------------------- reader

    /** Receives consecutive entries: {@code buf[0, len)} holds the digests of positions {@code first ...}. */
    @FunctionalInterface
    interface BlockVisitor {
        void visit(long first, byte[] buf, int len) throws IOException;
    }

    /** A verified index file. Thread-safe. */
    static final class Reader implements Closeable {
        final Path file;
        private final FileChannel ch;
        private final long chunkCount;
        private final int chunkSize;
        private final JsonNode metadata;
        private final byte[] entries; // null when read by position
        private final long present; // entries the file holds: chunkCount, unless salvaged from a truncated file

        private Reader(Path file, FileChannel ch, long chunkCount, int chunkSize, JsonNode metadata, byte[] entries) {
            this(file, ch, chunkCount, chunkSize, metadata, entries, chunkCount);
        }

        private Reader(Path file, FileChannel ch, long chunkCount, int chunkSize, JsonNode metadata, byte[] entries,
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
         * as {@link #LOST}.
         */
        static Reader salvage(Path file, long chunkCount, int chunkSize, JsonNode metadata) throws IOException {
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
                return new Reader(file, ch, chunkCount, chunkSize, metadata, entries, present);
            } catch (IOException | RuntimeException e) {
                ch.close();
                throw e;
            }
        }

        /**
         * Opens and verifies an index: bounds, file MAC, and entries MAC (reading every entry once).
         * {@code keyed} says whether the repository is encrypted, so an unauthenticated index is refused there.
         */
        static Reader open(Path file, Supplier<MetaMac> macs, boolean keyed) throws IOException {
            FileChannel ch;
            try {
                ch = FileChannel.open(file, StandardOpenOption.READ);
            } catch (NoSuchFileException e) {
                throw new RepositoryException("index file " + file + " is missing; if the catalog is out of date, "
                    + "rebuild it with: jbackup repair --rebuild-catalog", e);
            }
            try {
                Reader r = verify(file, ch, macs, keyed);
                return r;
            } catch (IOException | RuntimeException e) {
                ch.close();
                throw e;
            }
        }

        private static Reader verify(Path file, FileChannel ch, Supplier<MetaMac> macs, boolean keyed)
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
            Reader r = new Reader(file, ch, count, chunkSize, metadata, entries);
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
}
