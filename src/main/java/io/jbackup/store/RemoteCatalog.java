package io.jbackup.store;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.catalog.Catalog;
import io.jbackup.catalog.PackRow;
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
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The catalog of a repository in an object store: this host's SQLite catalog under its cache directory, a cache of
 * what the objects say, kept in step by {@link #refresh} each time the repository is opened with its key.
 *
 * <p>A refresh lists the manifests, the markers under {@code indexes/} and the packs, and fetches only what is new
 * since the last refresh: a manifest not yet in the catalog becomes a complete backup row; a backup row whose
 * manifest is gone (deleted on another host) is removed, with its cached index; {@code .bad} and {@code .keep}
 * markers set states and protections; a pack not yet registered has its footer read (ranged reads of its end) and
 * its chunks registered, which is how backups of other hosts deduplicate against each other. A registered pack
 * that is gone (another host's gc) is forgotten with its chunk rows, and the footers of every remaining pack are
 * registered again (idempotent), so chunks that a gc kept in another copy are found there.
 *
 * <p>A missing catalog is created and filled by the refresh; a damaged one (found at open: its header, or any page
 * {@code PRAGMA quick_check} reads) is moved aside and rebuilt the same way.
 */
final class RemoteCatalog {
    private static final Logger LOG = LoggerFactory.getLogger(RemoteCatalog.class);

    private RemoteCatalog() {
    }

    /** Opens, creates, or (when damaged) replaces the cache catalog of {@code storage}. */
    static Catalog open(Storage storage, RepositoryConfig config) throws IOException {
        Path file = storage.hostDir().resolve(SqliteCatalog.FILE_NAME);
        if (!Files.exists(file)) {
            LOG.info("no cached catalog of {} on this host ({}): building it from the objects in the bucket",
                storage.location(), file);
        }
        try {
            SqliteCatalog catalog = SqliteCatalog.open(file, config.id(), true);
            try {
                catalog.checkStructure(); // bytes damaged past the header only show in the pages that hold them
            } catch (RepositoryException e) {
                catalog.close();
                throw e;
            }
            return catalog;
        } catch (RepositoryException e) {
            String stamp = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss").withZone(ZoneOffset.UTC)
                .format(Instant.now());
            LOG.warn("the cached catalog {} of {} cannot be used ({}); moving it aside and rebuilding it from the "
                + "objects", file, storage.location(), e.getMessage());
            for (String suffix : new String[] {"", "-wal", "-shm"}) {
                Path f = file.resolveSibling(file.getFileName() + suffix);
                if (Files.exists(f)) {
                    Files.move(f, file.resolveSibling(file.getFileName() + ".damaged-" + stamp + suffix));
                }
            }
            return SqliteCatalog.open(file, config.id(), true);
        }
    }

    /** Brings the catalog of {@code repo} in step with its object store (see the class comment). */
    static void refresh(RepositoryContext repo) throws IOException {
        long t0 = System.nanoTime();
        Storage storage = repo.storage();
        Catalog catalog = repo.catalog();
        Set<String> manifests = new HashSet<>(storage.manifestIds());
        Map<String, BackupInfo> known = new HashMap<>();
        for (BackupInfo b : catalog.backups()) {
            known.put(b.id(), b);
        }
        int added = 0;
        int removed = 0;
        for (String id : manifests) {
            BackupInfo b = known.get(id);
            if (b != null && !BackupInfo.INCOMPLETE.equals(b.state())) {
                continue;
            }
            if (b != null) {
                continue; // being written by a process of this host: its own commit completes it
            }
            try {
                JsonNode body = Manifest.read(repo, id);
                String where = storage.describe(RepositoryLayout.manifest(id));
                List<Attachments.Entry> attached = Attachments.parse(body, where);
                catalog.insertBackup(IndexFile.info(body, Path.of(where)), body.path("uuid").asText(), null);
                if (!attached.isEmpty()) {
                    catalog.setAttachments(id, Attachments.infos(attached));
                }
                added++;
            } catch (RepositoryException e) {
                LOG.warn("{}", e.getMessage());
            }
        }
        for (BackupInfo b : known.values()) {
            if (!BackupInfo.INCOMPLETE.equals(b.state()) && !manifests.contains(b.id())) {
                catalog.deleteBackup(b.id());
                Files.deleteIfExists(RepositoryLayout.file(storage.hostDir(), RepositoryLayout.index(b.id())));
                removed++;
            }
        }
        syncMarkers(repo);
        int packs = syncPacks(repo, new HashSet<>(storage.packNames()));
        LOG.debug("catalog cache of {} refreshed in {} ms: {} backups added, {} removed, {} packs registered",
            storage.location(), (System.nanoTime() - t0) / 1_000_000, added, removed, packs);
    }

    /**
     * Warns when the catalog of {@code repo}, opened without the key (so not refreshed: manifests are authenticated
     * with it), lists other backups than the bucket holds: backups committed or deleted by other hosts since this
     * host last opened the repository with its key. Costs one listing of the manifests; silent when they agree.
     */
    static void warnIfStale(RepositoryContext repo) throws IOException {
        Set<String> manifests = new HashSet<>(repo.storage().manifestIds());
        int gone = 0;
        for (BackupInfo b : repo.catalog().backups()) {
            if (!BackupInfo.INCOMPLETE.equals(b.state()) && !manifests.remove(b.id())) {
                gone++;
            }
        }
        int added = manifests.size(); // manifests the catalog has no complete row of
        if (added == 0 && gone == 0) {
            return;
        }
        LOG.warn("this host's cache of {} is out of date, and without the passphrase it cannot be refreshed (the "
            + "bucket's manifests are authenticated with the key): {}{}{} since this host last opened it with the "
            + "passphrase; what follows is the cache. Run the command with JBACKUP_PASSPHRASE or --passphrase-file "
            + "FILE to see the bucket as it is", repo.storage().location(),
            added == 0 ? "" : Human.count(added, "backup") + " committed by other hosts " + (added == 1 ? "is" : "are")
                + " not shown",
            added == 0 || gone == 0 ? "" : ", and ",
            gone == 0 ? "" : Human.count(gone, "backup") + " shown " + (gone == 1 ? "was" : "were")
                + " deleted by other hosts");
    }

    /** Applies the {@code .bad} and {@code .keep} markers to the catalog. */
    private static void syncMarkers(RepositoryContext repo) throws IOException {
        Storage storage = repo.storage();
        Catalog catalog = repo.catalog();
        Set<String> bad = new HashSet<>(storage.indexEntries(RepositoryLayout.Kind.BAD_MARKER));
        Set<String> keep = new HashSet<>(storage.indexEntries(RepositoryLayout.Kind.KEEP_MARKER));
        Map<String, String> prot = catalog.protectedBackups();
        for (BackupInfo b : catalog.backups()) {
            if (BackupInfo.INCOMPLETE.equals(b.state())) {
                continue;
            }
            boolean isBad = BackupInfo.BAD.equals(b.state());
            if (bad.contains(b.id()) && !isBad) {
                catalog.setState(b.id(), BackupInfo.BAD, markerReason(repo, RepositoryLayout.badMarker(b.id()),
                    "reason", "marked bad"));
            } else if (!bad.contains(b.id()) && isBad) {
                catalog.setState(b.id(), BackupInfo.COMPLETE, null);
            }
            if (keep.contains(b.id()) && !prot.containsKey(b.id())) {
                catalog.setProtected(b.id(), true, markerReason(repo, RepositoryLayout.keepMarker(b.id()), "reason",
                    null));
            } else if (!keep.contains(b.id()) && prot.containsKey(b.id())) {
                catalog.setProtected(b.id(), false, null);
            }
        }
    }

    private static String markerReason(RepositoryContext repo, String key, String field, String fallback) {
        try {
            return repo.storage().read(key).map(b -> {
                try {
                    return Json.parse(b, repo.storage().describe(key)).path(field).asText(fallback);
                } catch (RepositoryException e) {
                    return fallback;
                }
            }).orElse(fallback);
        } catch (IOException e) {
            return fallback;
        }
    }

    /**
     * Registers the packs of {@code listed} that the catalog does not know, and forgets the registered ones that are
     * not listed; returns how many packs were registered.
     */
    static int syncPacks(RepositoryContext repo, Set<String> listed) throws IOException {
        Catalog catalog = repo.catalog();
        Set<String> registered = new HashSet<>();
        List<String> vanished = new ArrayList<>();
        for (PackRow p : catalog.packs()) {
            registered.add(p.name());
            if (!listed.contains(p.name())) {
                vanished.add(p.name());
            }
        }
        for (String name : vanished) {
            int rows = catalog.forgetPack(name);
            LOG.info("pack {} was deleted by a gc of another host; forgot its {} chunk rows", name, rows);
        }
        int n = 0;
        for (String name : listed) {
            if (!vanished.isEmpty() || !registered.contains(name)) {
                try (Storage.Ranged in = repo.storage().openPack(name)) {
                    PackReader.Contents c;
                    try {
                        c = PackReader.readFooter(in, name, repo::metaMac, repo.codec().encrypted());
                    } catch (RepositoryException damagedFooter) {
                        // as repair --rebuild-catalog does: the intact records still count (verify names the footer)
                        c = PackReader.scanRecords(in, name, repo.codec());
                        LOG.warn("{}; registered the {} intact records found by scanning it", damagedFooter.getMessage(),
                            c.entries().size());
                    }
                    catalog.addPack(name, c.fileSize(), c.entries());
                    n++;
                } catch (io.jbackup.objectstore.ObjectNotFoundException e) {
                    LOG.debug("pack {} vanished while the catalog was refreshed", name);
                } catch (RepositoryException e) {
                    LOG.warn("pack {} cannot be registered: {}", repo.storage().describePack(name), e.getMessage());
                }
            }
        }
        return n;
    }

    /** Marks complete the backup {@code id} of this host whose manifest was written before its process died. */
    static void completeFromManifest(RepositoryContext repo, String id) throws IOException {
        JsonNode body = Manifest.read(repo, id);
        BackupInfo b = IndexFile.info(body, Path.of(repo.storage().describe(RepositoryLayout.manifest(id))));
        repo.catalog().completeBackup(id, b.completed() == null ? Instant.now() : b.completed(), b.stats());
    }
}
