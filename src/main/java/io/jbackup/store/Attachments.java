package io.jbackup.store;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.error.UsageException;
import io.jbackup.model.AttachmentInfo;
import io.jbackup.model.RepositoryException;

import java.io.IOException;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HexFormat;
import java.util.List;
import java.util.regex.Pattern;

/**
 * Backup attachments: small files stored with a backup that are not part of its disk image (a libvirt domain's XML,
 * its NVRAM file). Written with {@link BackupWriter#attach}, listed with {@link Repository#attachments} and read
 * with {@link Repository#readAttachment}.
 *
 * <p><b>Storage.</b> An attachment's content is cut into pieces of the backup's chunk size (the last one shorter)
 * and each piece is stored as an ordinary chunk: content-addressed, compressed, encrypted in an encrypted
 * repository, deduplicated, in the backup's packs. An all-zero piece is not stored (zero digest), as on a disk.
 * The backup's index metadata (authenticated by the index's file MAC, and copied into the manifest in an object
 * store) lists the attachments in the order they were attached:
 *
 * <pre>
 * "attachments": [
 *   {"name": "domain.xml", "size": 4312, "chunks": ["&lt;64 hex digits&gt;", ...]},
 *   ...
 * ]
 * </pre>
 *
 * <ul>
 *   <li>{@code name}: 1 to {@value #MAX_NAME} characters of {@code [A-Za-z0-9._-]}, unique within the backup;</li>
 *   <li>{@code size}: the content's length in bytes, 0 to {@value #MAX_SIZE};</li>
 *   <li>{@code chunks}: ceil(size / chunkSize) chunk digests (32 zero bytes: an all-zero piece), piece {@code i}
 *       holding bytes {@code [i·chunkSize, min(size, (i+1)·chunkSize))}.</li>
 * </ul>
 * The key is absent when a backup has no attachments, so such an index is byte-for-byte what older versions wrote.
 * At most {@value #MAX_COUNT} attachments per backup.
 *
 * <p><b>References.</b> {@link IndexReader#forEachReference} visits these digests after the disk's entries,
 * so gc marks them, verify reads and checks them, the catalog rebuild and the object-store commit check find them
 * with no code of their own. A backup's attachments are deleted with it (its index goes, then gc reclaims the
 * chunks nothing else uses). Reading checks every piece like any chunk (CRC32C, GCM tag, length, digest) and the
 * total length; a damaged piece is an {@link AttachmentCorruptException} naming the backup and the attachment.
 *
 * <p>The catalog keeps each backup's attachment names and sizes ({@code attachments} table), filled at commit, by
 * {@code repair --rebuild-catalog} from the index and by the refresh of an object store's cache from the manifest,
 * so {@code show} lists them without the passphrase.
 */
final class Attachments {
    static final int MAX_COUNT = 16;
    static final int MAX_NAME = 64;
    static final int MAX_SIZE = 16 << 20;
    static final String KEY = "attachments";
    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9._-]{1," + MAX_NAME + "}");

    private Attachments() {
    }

    /** One attachment as the index metadata records it. */
    record Entry(String name, long size, List<byte[]> chunks) {
        AttachmentInfo info() {
            return new AttachmentInfo(name, size);
        }
    }

    /** Checks a new attachment against those already attached ({@code existing} names). */
    static void validate(String backupId, String name, byte[] content, Collection<String> existing) {
        if (name == null || !NAME.matcher(name).matches()) {
            throw new UsageException("attachment name '" + name + "' is invalid: use 1 to " + MAX_NAME
                + " characters of A-Z, a-z, 0-9, '.', '_' and '-'");
        }
        if (content == null) {
            throw new UsageException("attachment " + name + " has no content");
        }
        if (content.length > MAX_SIZE) {
            throw new UsageException("attachment " + name + " is " + content.length + " bytes (at most " + MAX_SIZE
                + ", 16 MiB)");
        }
        if (existing.contains(name)) {
            throw new UsageException("backup " + backupId + " already has an attachment named " + name);
        }
        if (existing.size() >= MAX_COUNT) {
            throw new UsageException("backup " + backupId + " already has " + MAX_COUNT + " attachments (at most "
                + MAX_COUNT + "); cannot attach " + name);
        }
    }

    /** Number of pieces (chunks) of an attachment of {@code size} bytes. */
    static int pieces(long size, int chunkSize) {
        return (int) ((size + chunkSize - 1) / chunkSize);
    }

    /** The metadata array for {@code entries}. */
    static ArrayNode toJson(List<Entry> entries) {
        ArrayNode a = Json.MAPPER.createArrayNode();
        for (Entry e : entries) {
            ObjectNode n = a.addObject();
            n.put("name", e.name());
            n.put("size", e.size());
            ArrayNode c = n.putArray("chunks");
            for (byte[] d : e.chunks()) {
                c.add(ChunkId.hex(d));
            }
        }
        return a;
    }

    /**
     * The attachments an index's (or manifest's) metadata lists, checked against the format above; empty without
     * the key. {@code where} names the file in errors.
     */
    static List<Entry> parse(JsonNode metadata, String where) throws RepositoryException {
        JsonNode a = metadata.get(KEY);
        if (a == null || a.isNull()) {
            return List.of();
        }
        int chunkSize = metadata.path("chunkSize").asInt();
        List<Entry> out = new ArrayList<>();
        List<String> names = new ArrayList<>();
        if (!a.isArray() || a.size() > MAX_COUNT || chunkSize <= 0) {
            throw invalid(where, "is not an array of at most " + MAX_COUNT);
        }
        for (JsonNode n : a) {
            String name = n.path("name").asText(null);
            long size = n.path("size").asLong(-1);
            JsonNode c = n.get("chunks");
            if (name == null || !NAME.matcher(name).matches() || names.contains(name) || !n.path("size").isIntegralNumber()
                || size < 0 || size > MAX_SIZE || c == null || !c.isArray() || c.size() != pieces(size, chunkSize)) {
                throw invalid(where, "has an invalid entry " + n);
            }
            List<byte[]> chunks = new ArrayList<>(c.size());
            for (JsonNode d : c) {
                String hex = d.asText("");
                if (hex.length() != 2 * ChunkId.LENGTH) {
                    throw invalid(where, "entry " + name + " has an invalid digest '" + hex + "'");
                }
                try {
                    chunks.add(HexFormat.of().parseHex(hex));
                } catch (IllegalArgumentException e) {
                    throw invalid(where, "entry " + name + " has an invalid digest '" + hex + "'");
                }
            }
            names.add(name);
            out.add(new Entry(name, size, List.copyOf(chunks)));
        }
        return List.copyOf(out);
    }

    private static RepositoryException invalid(String where, String what) {
        return new IndexCorruptException("the attachment list of " + where + " " + what);
    }

    /** Names and sizes of {@code entries}, by name. */
    static List<AttachmentInfo> infos(List<Entry> entries) {
        return entries.stream().map(Entry::info)
            .sorted(java.util.Comparator.comparing(AttachmentInfo::name)).toList();
    }

    /** The chunk digests of {@code entries}, concatenated in order (what {@link IndexReader#forEachReference} visits). */
    static byte[] digests(List<Entry> entries) {
        int n = entries.stream().mapToInt(a -> a.chunks().size()).sum();
        byte[] buf = new byte[n * ChunkId.LENGTH];
        int off = 0;
        for (Entry a : entries) {
            for (byte[] d : a.chunks()) {
                System.arraycopy(d, 0, buf, off, ChunkId.LENGTH);
                off += ChunkId.LENGTH;
            }
        }
        return buf;
    }

    /**
     * The attachment holding piece {@code k} of {@link #digests}, with the piece's byte offset in it; null past the
     * end.
     */
    static java.util.Map.Entry<String, Long> at(List<Entry> entries, long k, int chunkSize) {
        for (Entry a : entries) {
            if (k < a.chunks().size()) {
                return java.util.Map.entry(a.name(), k * chunkSize);
            }
            k -= a.chunks().size();
        }
        return null;
    }

    /** Reads and checks one attachment of a backup; every piece is verified like any chunk. */
    static byte[] read(ChunkReader reader, String backupId, int chunkSize, Entry e) throws IOException {
        byte[] out = new byte[(int) e.size()];
        for (int i = 0; i < e.chunks().size(); i++) {
            int off = i * chunkSize;
            int len = (int) Math.min(chunkSize, e.size() - off);
            byte[] d = e.chunks().get(i);
            if (ChunkId.isZeroDigest(d)) {
                continue;
            }
            byte[] piece;
            try {
                piece = reader.readChunk(d, len, backupId, -1);
            } catch (ChunkCorruptException x) {
                throw new AttachmentCorruptException(backupId, e.name(), "piece " + i + " (bytes " + off + ".."
                    + (off + len) + ") is damaged: " + x.getMessage(), x);
            } catch (RepositoryException x) {
                throw new AttachmentCorruptException(backupId, e.name(), "piece " + i + " (bytes " + off + ".."
                    + (off + len) + ") cannot be read: " + x.getMessage(), x);
            }
            if (piece.length != len) {
                throw new AttachmentCorruptException(backupId, e.name(), "piece " + i + " is " + piece.length
                    + " bytes, not " + len, null);
            }
            System.arraycopy(piece, 0, out, off, len);
        }
        return out;
    }
}
