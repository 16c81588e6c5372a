package io.jbackup.store;

import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.catalog.Catalog;
import io.jbackup.error.NotFoundException;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.RepositoryException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import java.io.IOException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Maintenance of a repository: deleting, protecting and pruning backups, gc and verify, under the maintenance lock
 * ({@code gc.lock} of this host, and in an object store the deletion lease every host takes: {@link DeletionLease}).
 */
final class RepositoryMaintenance {
    private static final Logger LOG = LoggerFactory.getLogger(RepositoryMaintenance.class);

    private final RepositoryContext ctx;
    private final ChunkReader reader;
    private final BackupLifecycle lifecycle;
    private final Catalog catalog;
    private final Storage storage;

    RepositoryMaintenance(RepositoryContext ctx, ChunkReader reader, BackupLifecycle lifecycle) {
        this.ctx = ctx;
        this.reader = reader;
        this.lifecycle = lifecycle;
        this.catalog = ctx.catalog();
        this.storage = ctx.storage();
    }

    /**
     * Deletes a complete or bad backup: its index file and catalog row, nothing else (every backup has its own full
     * index, so no other backup depends on it; gc later reclaims chunks nobody uses). Refuses protected backups.
     *
     * <p>Order (crash safety): the index is renamed to {@code indexes/ID.deleted} and the directory synced, then the
     * catalog row is deleted, then the file and the backup's markers. A crash in between is finished by the next
     * open ({@link #recover}); a backup is never half deleted, and restores that already opened the index go on.
     */
    public void deleteBackup(String backupId) throws IOException {
        ctx.checkOpen();
        ctx.requireKey();
        BackupInfo b = deletable(backupId, catalog.protectedBackups().keySet(), "");
        storage.beginDelete(backupId);
        removeDeleted(backupId);
        LOG.info("deleted backup {} of {}", backupId, b.diskLabel());
    }

    /**
     * Deletes the given backups ({@link #deleteBackup}) under the maintenance lock ({@code gc.lock}), as prune does.
     * Every id is checked first: if one is unknown, incomplete or protected, nothing is deleted.
     */
    @SuppressWarnings("try") // the lock is held by the try block
    public void deleteBackups(List<String> backupIds, Duration waitLock) throws IOException {
        ctx.checkOpen();
        ctx.requireKey();
        Set<String> prot = catalog.protectedBackups().keySet();
        for (String id : backupIds) {
            deletable(id, prot, "; nothing was deleted");
        }
        try (Maintenance m = maintenance("forget", waitLock)) {
            for (String id : backupIds) {
                deleteBackup(id);
            }
        }
    }

    /** The backup {@code backupId} if it may be deleted (known, complete or bad, not protected); else why not. */
    private BackupInfo deletable(String backupId, Set<String> protectedIds, String suffix) throws IOException {
        BackupInfo b = catalog.backup(backupId).orElseThrow(() -> new RepositoryException("no backup " + backupId
            + " in repository " + ctx.location() + "; list the backups with: jbackup list" + suffix));
        if (BackupInfo.INCOMPLETE.equals(b.state())) {
            throw new RepositoryException("backup " + backupId + " is incomplete (being written); it cannot be "
                + "deleted" + suffix);
        }
        if (protectedIds.contains(backupId)) {
            // a refusal of what was asked (exit 2), not a broken repository (exit 5)
            throw new io.jbackup.error.UsageException("backup " + backupId + " is protected; lift that first with: jbackup "
                + "unprotect " + backupId + suffix);
        }
        return b;
    }

    private void removeDeleted(String backupId) throws IOException {
        catalog.deleteBackup(backupId);
        storage.finishDelete(backupId);
    }

    /**
     * Protects a backup from {@link #prune} and {@link #deleteBackup} (or lifts the protection). Recorded in the
     * catalog and in a marker file {@code indexes/ID.keep}, so a rebuilt catalog keeps it.
     */
    public void setProtected(String backupId, boolean protect, String reason) throws IOException {
        ctx.checkOpen();
        ctx.requireKey();
        if (!catalog.setProtected(backupId, protect, reason)) {
            throw new NotFoundException("cannot " + (protect ? "protect" : "unprotect") + " backup " + backupId
                + ": no such complete backup");
        }
        String marker = io.jbackup.store.layout.RepositoryLayout.keepMarker(backupId);
        if (protect) {
            ObjectNode n = Json.MAPPER.createObjectNode();
            n.put("reason", reason == null ? "" : reason);
            n.put("protected", Instant.now().toString());
            storage.write(marker, Json.bytes(n));
        } else {
            storage.delete(marker);
        }
    }

    /**
     * Applies a retention policy to every disk (narrowed by {@code vm} and {@code disk} when not null) and, unless
     * {@code dryRun}, deletes the backups it does not keep ({@link #deleteBackup}). Takes the maintenance lock
     * ({@code gc.lock}) for its duration, so it never runs during a gc.
     */
    public PruneReport prune(RetentionPolicy policy, String vm, String disk, boolean dryRun, Duration waitLock)
        throws IOException {
        PruneReport r = prune(policy, b -> (vm == null || vm.equals(b.vm())) && (disk == null || disk.equals(b.disk())),
            dryRun, waitLock);
        if (r.disks().isEmpty() && (vm != null || disk != null)) {
            throw new NotFoundException("no backups of " + (vm == null ? "" : "vm " + vm + " ")
                + (disk == null ? "" : "disk " + disk + " ") + "in repository " + ctx.location()
                + "; list them with: jbackup list");
        }
        return r;
    }

    /** {@link #prune(RetentionPolicy, String, String, boolean, Duration)} for the backups {@code select} accepts. */
    @SuppressWarnings("try") // the lock is held by the try block
    public PruneReport prune(RetentionPolicy policy, java.util.function.Predicate<BackupInfo> select, boolean dryRun,
                             Duration waitLock) throws IOException {
        ctx.checkOpen();
        ctx.requireKey();
        Map<String, List<BackupInfo>> byDisk = new java.util.TreeMap<>();
        for (BackupInfo b : catalog.backups()) {
            if (!select.test(b)) {
                continue;
            }
            byDisk.computeIfAbsent((b.vm() == null ? "" : b.vm()) + "\0" + b.disk(), k -> new ArrayList<>()).add(b);
        }
        try (Maintenance m = dryRun ? null : maintenance("prune", waitLock)) {
            Set<String> prot = catalog.protectedBackups().keySet();
            List<PruneReport.Disk> out = new ArrayList<>();
            for (List<BackupInfo> l : byDisk.values()) {
                List<Retention.Decision> ds = Retention.apply(policy, l, prot);
                out.add(new PruneReport.Disk(l.get(0).vm(), l.get(0).disk(), ds));
                if (!dryRun) {
                    for (Retention.Decision d : ds) {
                        if (!d.keep()) {
                            deleteBackup(d.backup().id());
                        }
                    }
                }
            }
            PruneReport r = new PruneReport(policy.describe(), dryRun, out);
            LOG.info("prune ({}){}: {} kept, {} removed", policy.describe(), dryRun ? " dry run" : "", r.kept(),
                r.removed());
            return r;
        }
    }

    /**
     * Reclaims space: deletes chunks that no backup uses and rewrites packs that are mostly garbage. Runs with
     * backups going on (see {@link GarbageCollector}); takes the maintenance lock ({@code gc.lock}).
     */
    @SuppressWarnings("try") // the lock is held by the try block
    public GcReport gc(GcOptions options) throws IOException {
        ctx.checkOpen();
        ctx.requireKey();
        try (Maintenance m = maintenance("gc", options.waitLock())) {
            return new GarbageCollector(ctx, options).run();
        }
    }

    /** The maintenance lock, held by prune, forget and gc; closing releases it. */
    interface Maintenance extends AutoCloseable {
        @Override
        void close() throws IOException;
    }

    /**
     * Takes the maintenance lock: {@code gc.lock} of this host (one gc or prune at a time), and in an object store
     * also the deletion lease that every host takes before deleting anything ({@link DeletionLease}); with the lease
     * held, the catalog is refreshed, so the deletions see every backup committed before.
     */
    private Maintenance maintenance(String purpose, Duration wait) throws IOException {
        FileMutex m = FileMutex.acquire(ctx.dir().resolve(RepositoryContext.GC_LOCK), purpose, wait);
        if (!storage.remote()) {
            return m::close;
        }
        DeletionLease lease = null;
        try {
            lease = DeletionLease.acquire(storage.objects(), io.jbackup.store.layout.RepositoryLayout.DELETION_LEASE,
                purpose, DeletionLease.DEFAULT_TTL, wait);
            storage.guardDeletions(lease);
            RemoteCatalog.refresh(ctx);
        } catch (IOException | RuntimeException e) {
            storage.guardDeletions(null);
            if (lease != null) {
                lease.close();
            }
            m.close();
            throw e;
        }
        DeletionLease held = lease;
        return () -> {
            storage.guardDeletions(null);
            held.close();
            m.close();
        };
    }

    /**
     * Checks the selected backups' chunks; see {@link Verifier}. {@code repair} needs the exclusive lock, and takes
     * the maintenance lock: it deletes the packs it rewrites, which in an object store needs the deletion lease.
     */
    public VerifyReport verify(VerifyOptions options) throws IOException {
        ctx.checkOpen();
        ctx.requireKey();
        if (!options.repair()) {
            return new Verifier(ctx, reader, lifecycle, options).run();
        }
        if (ctx.lockMode() != LockMode.EXCLUSIVE) {
            throw new IllegalStateException("verify with repair needs the repository opened with the exclusive lock");
        }
        try (Maintenance m = maintenance("verify --repair", Duration.ZERO)) {
            return new Verifier(ctx, reader, lifecycle, options).run();
        }
    }
}
