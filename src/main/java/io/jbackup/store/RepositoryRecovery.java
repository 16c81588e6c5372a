package io.jbackup.store;

import io.jbackup.catalog.Catalog;
import io.jbackup.catalog.PackRow;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.RepositoryException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.HashSet;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * Crash recovery when a repository opens (see {@link Repository}): incomplete backups of dead owners are completed
 * (their index, or in an object store their manifest, was written) or forgotten; their {@code tmp/} directories are
 * removed; deletions a crash interrupted are finished; sealed packs that missed their catalog rows are registered.
 */
final class RepositoryRecovery {
    private static final Logger LOG = LoggerFactory.getLogger(RepositoryRecovery.class);

    private final RepositoryContext ctx;
    private final Catalog catalog;
    private final Storage storage;
    private final Path dir;

    RepositoryRecovery(RepositoryContext ctx) {
        this.ctx = ctx;
        this.catalog = ctx.catalog();
        this.storage = ctx.storage();
        this.dir = ctx.dir();
    }

    /** Cleans up after dead owners (all owners when exclusive); see the class comment. */
    void recover() throws IOException {
        boolean exclusive = ctx.lockMode() == LockMode.EXCLUSIVE;
        boolean crashed = false;
        for (Map.Entry<String, String> e : catalog.incompleteBackups().entrySet()) {
            Optional<Owner> owner = Owner.parse(e.getValue());
            boolean mine = owner.isPresent() && owner.get().equals(Owner.current());
            if (mine && exclusive || !mine && (exclusive || owner.isPresent() && owner.get().knownDead())) {
                crashed |= !mine;
                finishOrForget(e.getKey(), e.getValue());
            }
        }
        Path tmp = dir.resolve(RepositoryContext.TMP_DIR);
        if (Files.isDirectory(tmp)) {
            try (DirectoryStream<Path> s = Files.newDirectoryStream(tmp)) {
                for (Path p : s) {
                    String name = p.getFileName().toString();
                    Optional<Owner> o = Owner.parseToken(name);
                    boolean mine = name.equals(Owner.current().token());
                    if (!mine && (exclusive || o.isPresent() && o.get().knownDead())) {
                        // routine after a killed or interrupted run: only -v tells
                        LOG.info("removing {} left by {} (an interrupted backup; its sealed packs are kept)", p,
                            o.map(Owner::id).orElse("an unknown process"));
                        FileSync.deleteTree(p);
                        crashed = true;
                    }
                }
            }
        }
        finishDeletions();
        if (crashed || exclusive) {
            registerOrphanPacks();
        }
    }

    /** Completes deletions a crash interrupted: {@code indexes/ID.deleted} files (see {@link #deleteBackup}). */
    private void finishDeletions() throws IOException {
        if (storage.remote()) {
            return; // a deletion there removes the manifest first: what is left is garbage for gc
        }
        for (String id : storage.indexEntries(io.jbackup.store.layout.RepositoryLayout.Kind.DELETED_INDEX)) {
            LOG.warn("finishing the deletion of backup {} that an interrupted prune began", id);
            catalog.deleteBackup(id);
            storage.finishDelete(id);
        }
    }

    private void finishOrForget(String id, String owner) throws IOException {
        if (storage.remote()) {
            if (storage.exists(io.jbackup.store.layout.RepositoryLayout.manifest(id))) {
                RemoteCatalog.completeFromManifest(ctx, id);
                LOG.warn("backup {} was committed (manifest written) when its process {} died; marked it complete",
                    id, owner);
                return;
            }
            LOG.warn("removing incomplete backup {} left by {} (chunks in uploaded packs are kept and reused)", id,
                owner);
            catalog.deleteBackup(id);
            return;
        }
        Path idx = IndexFile.path(dir, id);
        if (Files.exists(idx)) {
            try (IndexReader r = IndexReader.open(idx, ctx::metaMac, ctx.encrypted())) {
                BackupInfo b = IndexFile.info(r.metadata(), idx);
                catalog.completeBackup(id, b.completed() == null ? Instant.now() : b.completed(), b.stats());
                LOG.warn("backup {} was committed (index written) when its process {} died; marked it complete", id,
                    owner);
                return;
            } catch (RepositoryException e) {
                LOG.warn("backup {}: its index is unreadable ({}); forgetting the backup", id, e.getMessage());
                Files.move(idx, idx.resolveSibling(idx.getFileName() + ".damaged"));
            }
        }
        LOG.warn("removing incomplete backup {} left by {} (chunks in sealed packs are kept and reused)", id, owner);
        catalog.deleteBackup(id);
    }

    /** Registers sealed packs that are not in the catalog (a crash between pack rename and catalog rows). */
    int registerOrphanPacks() throws IOException {
        Set<String> known = catalog.packs().stream().map(PackRow::name).collect(Collectors.toCollection(HashSet::new));
        int added = 0;
        for (String name : storage.packNames()) {
            if (known.contains(name)) {
                continue;
            }
            String file = storage.describePack(name);
            try (Storage.Ranged in = storage.openPack(name)) {
                PackReader.Contents c = PackReader.readFooter(in, name, ctx::metaMac, ctx.encrypted());
                catalog.addPack(name, c.fileSize(), c.entries());
                added++;
                LOG.info("registered pack {} ({} chunks) that was sealed but not yet in the catalog", name,
                    c.entries().size());
            } catch (RepositoryException e) {
                LOG.warn("pack {} is not in the catalog and cannot be registered: {}", file, e.getMessage());
            }
        }
        return added;
    }
}
