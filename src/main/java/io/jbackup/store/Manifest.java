package io.jbackup.store;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.catalog.PackRow;
import io.jbackup.model.RepositoryException;
import io.jbackup.store.layout.RepositoryLayout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Set;

/**
 * The manifest of a complete backup in an object store: {@code manifests/ID.json}, written after the backup's packs
 * and its index. Its existence is what makes the backup complete there: readers list manifests, so they never see a
 * backup whose packs or index are missing. Format (JSON object, at most {@value #MAX_SIZE} bytes):
 *
 * <pre>
 * format   "jbackup-manifest"
 * version  1
 * body     the backup's metadata as JSON text: the index's metadata ({@link IndexFile#metadata}: id, vm, disk, type,
 *          parent, created, completed, sizes, labels, note, source, stats) plus "indexSize" (bytes of the index)
 * mac      hex of {@link MetaMac} over "jbackup-manifest-1\n" followed by the UTF-8 bytes of body: SHA-256 in a
 *          plain repository, HMAC-SHA256 under the metadata key in an encrypted one
 * </pre>
 *
 * A manifest whose MAC fails, or whose body names another backup, is refused by name: a host never lists a backup
 * it cannot trust.
 */
final class Manifest {
    private static final Logger LOG = LoggerFactory.getLogger(Manifest.class);
    static final String FORMAT = "jbackup-manifest";
    static final int MAX_SIZE = 1 << 20;
    private static final byte[] DOMAIN = "jbackup-manifest-1\n".getBytes(StandardCharsets.US_ASCII);

    private Manifest() {
    }

    /** Writes the manifest of the backup whose index metadata is {@code metadata}: the commit point. */
    static void write(RepositoryContext repo, ObjectNode metadata, long indexSize) throws IOException {
        ObjectNode body = metadata.deepCopy();
        body.put("indexSize", indexSize);
        String text = new String(Json.bytes(body), StandardCharsets.UTF_8);
        ObjectNode m = Json.MAPPER.createObjectNode();
        m.put("format", FORMAT);
        m.put("version", 1);
        m.put("body", text);
        m.put("mac", HexFormat.of().formatHex(mac(repo, text)));
        repo.storage().write(RepositoryLayout.manifest(metadata.path("id").asText()), Json.bytes(m));
    }

    /** The verified metadata of backup {@code id}'s manifest; a missing, oversized or forged one is refused. */
    static JsonNode read(RepositoryContext repo, String id) throws IOException {
        String key = RepositoryLayout.manifest(id);
        String what = repo.storage().describe(key);
        byte[] bytes = repo.storage().read(key).orElseThrow(() -> new RepositoryException("manifest " + what
            + " is missing"));
        if (bytes.length > MAX_SIZE) {
            throw new RepositoryException("manifest " + what + " is " + bytes.length + " bytes (at most " + MAX_SIZE
                + "); it is not a jbackup manifest");
        }
        JsonNode m = Json.parse(bytes, what);
        if (!FORMAT.equals(m.path("format").asText()) || m.path("version").asInt() != 1 || !m.path("body").isTextual()) {
            throw new RepositoryException("manifest " + what + " is not a version 1 jbackup manifest");
        }
        String text = m.path("body").asText();
        byte[] expected = mac(repo, text);
        byte[] given;
        try {
            given = HexFormat.of().parseHex(m.path("mac").asText());
        } catch (IllegalArgumentException e) {
            given = new byte[0];
        }
        if (!MessageDigest.isEqual(expected, given)) {
            throw new RepositoryException("manifest " + what + " fails its " + (repo.config().encryption()
                == Encryption.NONE ? "checksum" : "MAC") + " (damaged, or not written with this repository's key); "
                + "the backup is not listed; run jbackup verify on another host, or delete the object");
        }
        JsonNode body = Json.parse(text.getBytes(StandardCharsets.UTF_8), what);
        if (!id.equals(body.path("id").asText()) || !repo.config().id().equals(body.path("repository").asText())) {
            throw new RepositoryException("manifest " + what + " describes backup " + body.path("id").asText()
                + " of repository " + body.path("repository").asText() + "; the backup is not listed");
        }
        return body;
    }

    private static byte[] mac(RepositoryContext repo, String body) {
        return repo.metaMac().update(DOMAIN).update(body.getBytes(StandardCharsets.UTF_8)).finish();
    }

    /**
     * Before the manifest of {@code writer}'s backup is written: checks that every chunk it uses still exists,
     * in case a gc on another host deleted packs since this host refreshed its catalog. When no registered pack
     * vanished (the common case, one listing), there is nothing more to do. Otherwise the catalog forgets the
     * vanished packs, registers the new ones (a gc's repacked copies) and looks up every chunk of the index; if
     * one is gone, the backup fails cleanly (its index object is removed; nothing else changes) and the next run
     * stores those chunks again.
     */
    static void checkReusedPacks(RepositoryContext repo, PackedBackupWriter writer) throws IOException {
        Storage storage = repo.storage();
        Set<String> listed = new HashSet<>(storage.packNames());
        List<String> vanished = new ArrayList<>();
        for (PackRow p : repo.catalog().packs()) {
            if (!listed.contains(p.name())) {
                vanished.add(p.name());
            }
        }
        if (vanished.isEmpty()) {
            return;
        }
        LOG.info("backup {}: {} packs were deleted by a gc while it ran; checking that its chunks still exist",
            writer.id(), vanished.size());
        RemoteCatalog.syncPacks(repo, listed);
        long[] missing = {0};
        try (IndexReader r = IndexReader.open(storage.indexFile(writer.id()), repo::metaMac,
                repo.codec().encrypted())) {
            r.forEachReference((first, buf, len) -> {
                List<byte[]> batch = new ArrayList<>();
                for (int off = 0; off < len; off += ChunkId.LENGTH) {
                    byte[] d = java.util.Arrays.copyOfRange(buf, off, off + ChunkId.LENGTH);
                    if (!java.util.Arrays.equals(d, ChunkId.ZERO)) {
                        batch.add(d);
                    }
                }
                BitSet known = repo.catalog().hasChunks(batch);
                missing[0] += batch.size() - known.cardinality();
            });
        }
        if (missing[0] > 0) {
            throw new GcCollisionException("backup " + writer.id() + " reuses " + missing[0] + " chunks that a gc on "
                + "another host deleted while the backup ran; nothing was lost and no backup changed: run the backup "
                + "again, it stores those chunks anew");
        }
    }
}
