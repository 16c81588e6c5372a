package io.jbackup.store;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.catalog.SqliteCatalog;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.RepositoryException;
import io.jbackup.store.layout.RepositoryLayout;
import io.jbackup.text.Human;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code jbackup repair --rebuild-catalog}: a new catalog from the repository's files alone, under the exclusive
 * lock. Every pack is registered from its footer (or, if the footer is damaged, from a scan of its intact records);
 * every index file becomes a complete backup (bad if it has a {@code .bad} marker, protected if it has a
 * {@code .keep} marker); temporary files are removed;
 * finally each backup is checked to reference only chunks that are now registered.
 *
 * <p>In an object store the catalog rebuilt is this host's cache ({@link RemoteCatalog}), in its cache directory,
 * from the bucket: the backups are those with a manifest (an index object without one is a commit that never
 * finished, which gc removes), each read from its index object (cached on the way).
 */
final class CatalogRebuilder {
    private static final Logger LOG = LoggerFactory.getLogger(CatalogRebuilder.class);

    /** Runs once the lock is held, before the new catalog is created. */
    @FunctionalInterface
    interface Step {
        void run(Path hostDir) throws IOException;
    }

    private CatalogRebuilder() {
    }

    static RebuildReport rebuild(RepositoryLocation location, OpenOptions opts) throws IOException {
        String[] moved = new String[1];
        Repository repo = RepositoryOpener.openForRebuild(location, opts, hostDir -> moved[0] = moveAside(hostDir));
        Path dir = repo.dir();
        Storage storage = repo.storage();
        List<String> problems = new ArrayList<>();
        int packs = 0;
        long chunks = 0;
        int backups = 0;
        int bad = 0;
        try {
            long run = repo.startRun("repair --rebuild-catalog");
            FileSync.deleteTree(dir.resolve(Repository.TMP_DIR));
            Files.createDirectories(dir.resolve(Repository.TMP_DIR));
            for (String name : storage.packNames()) {
                PackReader.Contents c;
                try (Storage.Ranged in = storage.openPack(name)) {
                    try {
                        c = PackReader.readFooter(in, name, repo::metaMac, repo.codec().encrypted());
                    } catch (RepositoryException e) {
                        c = PackReader.scanRecords(in, name, repo.codec());
                        problems.add(e.getMessage() + "; registered the " + c.entries().size()
                            + " intact records found by scanning it");
                    }
                }
                if (!c.entries().isEmpty()) {
                    repo.catalog().addPack(name, c.fileSize(), c.entries());
                    packs++;
                    chunks += c.entries().size();
                }
            }
            PrefixSet known = new PrefixSet();
            repo.catalog().forEachChunk((digest, loc) -> known.addDigest(digest, 0));
            known.seal();
            List<Path> files = new ArrayList<>();
            for (String id : storage.remote() ? storage.manifestIds() : storage.indexIds()) {
                files.add(storage.indexFile(id));
            }
            for (Path f : files) {
                try (IndexReader r = IndexReader.open(f, repo::metaMac, repo.codec().encrypted())) {
                    BackupInfo b = IndexFile.info(r.metadata(), f);
                    String expectedName = b.id() + IndexFile.SUFFIX;
                    if (!f.getFileName().toString().equals(expectedName)) {
                        problems.add("index " + f + " describes backup " + b.id() + "; skipped (rename it to "
                            + expectedName + ")");
                        continue;
                    }
                    JsonNode m = r.metadata();
                    List<Attachments.Entry> attached = r.attachments();
                    repo.catalog().insertBackup(b, m.path("uuid").asText(), null);
                    if (!attached.isEmpty()) {
                        repo.catalog().setAttachments(b.id(), Attachments.infos(attached));
                    }
                    backups++;
                    if (storage.exists(RepositoryLayout.badMarker(b.id()))) {
                        repo.catalog().setState(b.id(), BackupInfo.BAD,
                            markerReason(storage, RepositoryLayout.badMarker(b.id()), "marked bad"));
                        bad++;
                    }
                    if (storage.exists(RepositoryLayout.keepMarker(b.id()))) {
                        repo.catalog().setProtected(b.id(), true,
                            markerReason(storage, RepositoryLayout.keepMarker(b.id()), null));
                    }
                    long[] missing = {0};
                    r.forEachReference((first, buf, len) -> {
                        for (int off = 0; off < len; off += ChunkId.LENGTH) {
                            boolean zero = java.util.Arrays.mismatch(buf, off, off + ChunkId.LENGTH, ChunkId.ZERO, 0,
                                ChunkId.LENGTH) < 0;
                            if (!zero && !known.containsDigest(buf, off)) {
                                missing[0]++;
                            }
                        }
                    });
                    if (missing[0] > 0) {
                        problems.add("backup " + b.id() + " (" + b.diskLabel() + ") references "
                            + Human.count(missing[0], "chunk") + " found in no pack; restoring it will fail there (see jbackup verify)");
                    }
                } catch (RepositoryException e) {
                    problems.add(e.getMessage() + "; skipped");
                }
            }
            for (String p : problems) {
                LOG.warn("{}", p);
            }
            repo.finishRun(run, problems.isEmpty() ? "ok" : "problems", Human.count(problems.size(), "problem"));
            LOG.info("catalog rebuilt: {} packs, {} chunks, {} backups ({} bad)", packs, chunks, backups, bad);
        } finally {
            repo.close();
        }
        return new RebuildReport(packs, chunks, backups, bad, List.copyOf(problems), moved[0]);
    }

    /** The "reason" of marker {@code key}, or {@code fallback} when it has none or cannot be read. */
    private static String markerReason(Storage storage, String key, String fallback) throws IOException {
        byte[] b = storage.read(key).orElse(null);
        if (b == null) {
            return fallback;
        }
        try {
            return Json.parse(b, storage.describe(key)).path("reason").asText(fallback);
        } catch (RepositoryException e) {
            LOG.warn("{}: {}", storage.describe(key), e.getMessage());
            return fallback;
        }
    }

    /** Moves {@code catalog.db} (and its WAL files) to {@code catalog.db.old-TIMESTAMP}; returns that name or null. */
    private static String moveAside(Path dir) throws IOException {
        Path db = dir.resolve(SqliteCatalog.FILE_NAME);
        String stamp = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss").withZone(ZoneOffset.UTC).format(Instant.now());
        String target = null;
        for (String suffix : new String[] {"", "-wal", "-shm"}) {
            Path f = dir.resolve(SqliteCatalog.FILE_NAME + suffix);
            if (Files.exists(f)) {
                Path to = dir.resolve(SqliteCatalog.FILE_NAME + ".old-" + stamp + suffix);
                Files.move(f, to);
                if (suffix.isEmpty()) {
                    target = to.toString();
                }
            }
        }
        if (target != null || Files.exists(db)) {
            FileSync.syncDir(dir);
        }
        return target;
    }
}
