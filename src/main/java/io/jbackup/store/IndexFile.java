package io.jbackup.store;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.Arrays;

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
 * a non-zero one, so zero runs stay holes: see {@link IndexDraft}), then finished (entries MAC, metadata, preamble,
 * file MAC), fsynced and renamed into {@code indexes/}: the rename is the backup's commit point. In an encrypted
 * repository the metadata (names, labels, note, sizes, counts) is authenticated but not encrypted; the catalog holds it
 * in plaintext too.
 *
 * <p>This class holds the format's constants and the metadata mapping; {@link IndexDraft} writes an index and
 * {@link IndexReader} opens, verifies and reads one.
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
    /** Entry bytes per read or write of a block of entries (and per zero-run block of an {@link IndexDraft}). */
    static final int IO_BLOCK = 1 << 20;

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
}
