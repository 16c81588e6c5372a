package io.jbackup.store;

import io.jbackup.catalog.Catalog;
import io.jbackup.catalog.ChunkRow;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.RepositoryException;
import io.jbackup.text.Human;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

/**
 * {@code jbackup gc}: mark and sweep, then repack, while backups may be running. The caller holds the maintenance
 * lock ({@code gc.lock}, so one gc or prune at a time) and the repository lock <em>shared</em>, like backups.
 *
 * <p><b>Algorithm.</b>
 * <ol>
 *   <li><b>Roll back</b> a gc that died: condemned rows left in {@code gc_condemned} go back to {@code chunks}.</li>
 *   <li><b>Snapshot</b>: P = the highest pack id. Only chunks of packs up to P are candidates; packs registered
 *       later (by running backups) are never touched. The candidates' 64-bit digest prefixes go into a sorted
 *       array with a bitset beside it.</li>
 *   <li><b>Mark</b>: every {@code indexes/*.idx} file (complete and bad backups, and one whose owner died after
 *       renaming it) is read; each digest found among the candidates sets its bit. A damaged index stops gc:
 *       it must see every backup's chunks.</li>
 *   <li><b>Condemn</b> (sweep): candidates whose bit is clear move from {@code chunks} to {@code gc_condemned}, in
 *       batches. From then on no backup deduplicates against them (they store the data again), while reads still
 *       find them.</li>
 *   <li><b>Wait</b> for every backup that was incomplete when condemning ended: it may have looked a condemned
 *       chunk up before it was condemned. Backups that begin later cannot reference condemned chunks: the catalog
 *       no longer offers them, and an incremental copies only its parent's entries, which are marked (or
 *       re-marked below).</li>
 *   <li><b>Re-mark</b>: index files that appeared since the mark are read; condemned chunks they use are
 *       resurrected.</li>
 *   <li><b>Delete and repack</b>: a pack (up to P) with no live chunk is deleted; one whose live record bytes
 *       are below the threshold has its live records checked and copied into new packs, sealed like a backup's
 *       (footer, fsync, rename, directory fsync), then its chunk rows point at the copies
 *       ({@link Catalog#relocate}) and the old pack is deleted. Deleting a pack: its condemned rows are dropped,
 *       then the file, then the pack row.</li>
 * </ol>
 *
 * <p><b>Crash safety.</b> Killed before deleting anything, gc leaves condemned rows, which reads still find and the
 * next gc rolls back. Killed while repacking, it leaves a sealed pack that is registered (then the old pack is
 * garbage for the next gc) or not (then it is an orphan that the next exclusive open or crash recovery registers,
 * and garbage again). Readers that looked up a chunk just before it moved retry once at its new location.
 *
 * <p><b>Memory</b>: 8 bytes (prefix) + 1 bit per candidate chunk, so about 8.1 MB per million unique chunks (a TiB
 * of unique data in 1 MiB chunks), plus one index block (1 MiB) and one chunk record at a time. Not a set of full
 * digests, and nothing per backup × chunk. Two candidates sharing a 64-bit prefix can only make gc keep garbage,
 * never delete a live chunk.
 */
final class GarbageCollector {
    private static final Logger LOG = LoggerFactory.getLogger(GarbageCollector.class);
    private static final int BATCH = 10_000;
    private static final long POLL_MILLIS = 200;

    private final RepositoryContext repo;
    private final GcOptions options;
    private final Catalog catalog;
    private PrefixSet candidates;
    private BitSet live;
    private final Set<String> marked = new HashSet<>();
    /** In an object store: packs younger than the grace period, never deleted or repacked. */
    private final Set<String> young = new HashSet<>();
    private long indexesRead;

    GarbageCollector(RepositoryContext repo, GcOptions options) {
        this.repo = repo;
        this.options = options;
        this.catalog = repo.catalog();
    }

    private void phase(String text) {
        LOG.info("gc: {}", text);
        options.progress().accept(text);
    }

    GcReport run() throws IOException {
        // sealed packs that never got their catalog rows (the catalog failed, e.g. on a full disk): register them,
        // so that what nobody uses is reclaimed below (a pack a running backup is sealing right now is registered
        // twice, harmlessly: rows are inserted if absent; its chunks are protected like any running backup's)
        int orphans = new RepositoryRecovery(repo).registerOrphanPacks();
        if (orphans > 0) {
            LOG.warn("gc: registered {} that were missing from the catalog", Human.count(orphans, "sealed pack"));
        }
        if (repo.storage().remote()) {
            sparePackAndIndexesInGrace();
        }
        int rolledBack = catalog.resurrectAll();
        if (rolledBack > 0) {
            LOG.warn("gc: a previous gc did not finish; gave {} condemned chunks back their catalog rows", rolledBack);
        }
        long packBytesBefore = catalog.totals().packBytes();
        long chunksBefore = catalog.chunkCount();
        long maxPackId = catalog.maxPackId();

        phase("snapshot: " + Human.count(chunksBefore, "chunk") + " in packs up to #" + maxPackId);
        candidates = new PrefixSet();
        catalog.forEachChunkUpTo(maxPackId, (d, loc) -> candidates.addDigest(d, 0));
        candidates.seal();
        live = new BitSet(candidates.size());

        phase("mark: reading index files");
        markNewIndexes(null);

        // sweep: condemn (or, dry, count) unmarked candidates
        Map<String, long[]> deadPerPack = new HashMap<>();
        List<byte[]> batch = new ArrayList<>();
        long[] condemned = {0};
        catalog.forEachChunkUpTo(maxPackId, (d, loc) -> {
            int i = candidates.indexOf(ChunkId.prefix(d, 0));
            if (i < 0 || live.get(i)) {
                return;
            }
            condemned[0]++;
            long[] dead = deadPerPack.computeIfAbsent(loc.pack(), k -> new long[2]);
            dead[0]++;
            dead[1] += loc.length();
            if (!options.dryRun()) {
                batch.add(d);
                if (batch.size() >= BATCH) {
                    catalog.condemn(batch);
                    batch.clear();
                }
            }
        });
        if (!batch.isEmpty()) {
            catalog.condemn(batch);
            batch.clear();
        }
        phase("sweep: " + condemned[0] + " of " + Human.count(chunksBefore, "chunk") + " used by no backup");
        if (options.dryRun()) {
            return dryRunReport(maxPackId, chunksBefore, condemned[0], deadPerPack, packBytesBefore);
        }

        try {
            return afterCondemn(maxPackId, chunksBefore, condemned[0], packBytesBefore);
        } catch (IOException | RuntimeException e) {
            // whatever failed, no condemned chunk stays unfindable for dedup: deleted packs took theirs along
            try {
                catalog.resurrectAll();
            } catch (IOException | RuntimeException suppressed) {
                e.addSuppressed(suppressed);
            }
            throw e;
        }
    }

    /**
     * In an object store, other hosts' running backups are not in this catalog: their packs (uploaded, no manifest
     * yet) are spared while younger than the grace period, and so are index objects without a manifest (a commit
     * in progress); older index objects without a manifest are left by commits that died, and are deleted.
     */
    private void sparePackAndIndexesInGrace() throws IOException {
        java.time.Instant cutoff = java.time.Instant.now().minus(options.grace());
        for (io.jbackup.objectstore.ObjectInfo o : repo.storage().packObjects()) {
            if (o.lastModified().isAfter(cutoff)) {
                io.jbackup.store.layout.RepositoryLayout.parse(o.key()).ifPresent(e -> young.add(e.name()));
            }
        }
        Set<String> manifests = new HashSet<>(repo.storage().manifestIds());
        int orphans = 0;
        for (io.jbackup.objectstore.ObjectInfo o : repo.storage().objects()
                .listAll(io.jbackup.store.layout.RepositoryLayout.INDEXES)) {
            var e = io.jbackup.store.layout.RepositoryLayout.parse(o.key());
            if (e.isEmpty() || e.get().kind() != io.jbackup.store.layout.RepositoryLayout.Kind.INDEX
                || manifests.contains(e.get().name()) || o.lastModified().isAfter(cutoff) || options.dryRun()) {
                continue;
            }
            repo.storage().deleteOrphanIndex(e.get().name());
            orphans++;
        }
        if (!young.isEmpty() || orphans > 0) {
            phase("grace: " + Human.count(young.size(), "pack") + " younger than " + Human.duration(options.grace())
                + " spared (they may belong to backups running on other hosts); " + Human.count(orphans,
                "index object") + " of dead commits deleted");
        }
    }

    private GcReport afterCondemn(long maxPackId, long chunksBefore, long condemnedCount, long packBytesBefore)
        throws IOException {
        long[] condemned = {condemnedCount};
        int waited;
        try {
            waited = waitForRunningBackups();
        } catch (DeferredException e) {
            int back = catalog.resurrectAll();
            phase("deferred: " + e.getMessage() + "; gave " + back + " condemned chunks back, nothing deleted");
            return new GcReport(indexesRead, chunksBefore, condemned[0], back, 0, 0, 0, 0, 0, 0, packBytesBefore,
                packBytesBefore, 0, 0, true, false);
        }

        List<byte[]> resurrect = new ArrayList<>();
        markNewIndexes(resurrect);
        long resurrected = resurrect.isEmpty() ? 0 : catalog.resurrect(resurrect);
        if (resurrected > 0) {
            phase("re-mark: " + resurrected + " condemned chunks are used by backups that finished meanwhile; kept");
        }

        // delete and repack
        long[] deleted = {0};
        long freed = 0;
        int packsDeleted = 0;
        int packsRepacked = 0;
        List<Catalog.PackUsage> sparse = new ArrayList<>();
        for (Catalog.PackUsage u : catalog.packUsage(maxPackId, PackFormat.HEADER_SIZE, PackFormat.FOOTER_ENTRY_SIZE,
            PackFormat.TRAILER_SIZE)) {
            if (young.contains(u.name())) {
                continue;
            }
            if (u.liveChunks() == 0) {
                deletePack(u.name());
                freed += u.size();
                deleted[0] += u.chunkCount();
                packsDeleted++;
            } else if (u.liveBytes() * 100 < (long) options.repackThresholdPercent() * u.recordBytes()) {
                sparse.add(u);
            }
        }
        Repacker rp = new Repacker();
        for (Catalog.PackUsage u : sparse) {
            rp.copy(u);
        }
        rp.finish();
        for (Catalog.PackUsage u : rp.done) {
            deletePack(u.name());
            freed += u.size();
            deleted[0] += u.chunkCount() - u.liveChunks();
            packsDeleted++;
            packsRepacked++;
        }
        long left = catalog.condemnedCount();
        if (left > 0) {
            // condemned chunks of packs kept (e.g. below the threshold): give the rows back, they stay garbage
            // for a later gc rather than unfindable records
            catalog.resurrectAll();
        }
        long after = catalog.totals().packBytes();
        // the records deleted that were not unused chunks: copies of chunks whose catalog row names another pack
        long duplicates = Math.max(0, deleted[0] - (condemned[0] - resurrected - left));
        GcReport r = new GcReport(indexesRead, chunksBefore, condemned[0], resurrected, deleted[0], duplicates,
            packsDeleted, packsRepacked, rp.written, rp.copied, packBytesBefore, after, freed - rp.writtenBytes, waited,
            false, false);
        phase(String.format("done: %d packs deleted (%d repacked into %d), %d chunk records deleted (%d of them "
                + "duplicate copies), %d bytes reclaimed", packsDeleted, packsRepacked, rp.written, deleted[0],
            duplicates, r.bytesReclaimed()));
        return r;
    }

    private GcReport dryRunReport(long maxPackId, long chunksBefore, long condemned, Map<String, long[]> deadPerPack,
                                  long packBytesBefore) throws IOException {
        long freed = 0;
        long copied = 0;
        long deleted = 0;
        long condemnedKept = condemned; // condemned chunks in the packs that stay, less those that go below
        int packsDeleted = 0;
        int repacked = 0;
        for (Catalog.PackUsage u : catalog.packUsage(maxPackId, PackFormat.HEADER_SIZE, PackFormat.FOOTER_ENTRY_SIZE,
            PackFormat.TRAILER_SIZE)) {
            if (young.contains(u.name())) {
                continue;
            }
            long[] dead = deadPerPack.getOrDefault(u.name(), new long[2]);
            long liveChunks = u.liveChunks() - dead[0];
            long liveBytes = u.liveBytes() - dead[1];
            if (liveChunks <= 0) {
                freed += u.size();
                deleted += u.chunkCount();
                condemnedKept -= dead[0];
                packsDeleted++;
            } else if (liveBytes * 100 < (long) options.repackThresholdPercent() * u.recordBytes()) {
                freed += u.size() - liveBytes - liveChunks * PackFormat.FOOTER_ENTRY_SIZE;
                copied += liveBytes;
                deleted += u.chunkCount() - liveChunks;
                condemnedKept -= dead[0];
                packsDeleted++;
                repacked++;
            }
        }
        phase("dry run: would delete " + Human.count(packsDeleted, "pack") + " (" + repacked + " repacked) and reclaim "
            + "about " + Human.bytes(freed));
        long duplicates = Math.max(0, deleted - (condemned - condemnedKept));
        return new GcReport(indexesRead, chunksBefore, condemned, 0, deleted, duplicates, packsDeleted, repacked, 0,
            copied, packBytesBefore, packBytesBefore - freed, freed, 0, false, true);
    }

    /**
     * Reads index files not read yet and sets the bits of the candidates they use. With {@code resurrect}, collects
     * condemned digests they use (the re-mark).
     */
    private void markNewIndexes(List<byte[]> resurrect) throws IOException {
        for (String id : repo.storage().indexIds()) {
            String name = id;
            if (!marked.add(name)) {
                continue;
            }
            Path f = repo.storage().indexFile(id);
            IndexReader r;
            try {
                r = IndexReader.open(f, repo::metaMac, repo.codec().encrypted());
            } catch (RepositoryException e) {
                if (!Files.exists(f)) {
                    continue; // deleted meanwhile (a prune does not run during gc, but a crash recovery may finish one)
                }
                throw new RepositoryException("gc stopped: " + e.getMessage() + ". gc must see the chunks of every "
                    + "backup; run jbackup verify, then delete or move away the damaged backup's index", e);
            }
            try (r) {
                indexesRead++;
                r.forEachReference((first, buf, len) -> {
                    for (int off = 0; off < len; off += ChunkId.LENGTH) {
                        int i = candidates.indexOf(ChunkId.prefix(buf, off));
                        if (i < 0 || live.get(i)) {
                            continue;
                        }
                        live.set(i);
                        if (resurrect != null) {
                            byte[] d = java.util.Arrays.copyOfRange(buf, off, off + ChunkId.LENGTH);
                            // a chunk stored again meanwhile has a live row: its condemned copy stays garbage
                            if (catalog.isCondemned(d) && !catalog.hasChunk(d)) {
                                resurrect.add(d);
                            }
                        }
                    }
                });
            }
        }
    }

    /** Thrown when running backups outlast {@link GcOptions#maxWait()}. */
    private static final class DeferredException extends Exception {
        private static final long serialVersionUID = 1L;

        DeferredException(String m) {
            super(m);
        }
    }

    /** Waits until every backup incomplete now is complete, gone, or owned by a dead process. */
    private int waitForRunningBackups() throws IOException, DeferredException {
        Map<String, String> running = catalog.incompleteBackups();
        if (running.isEmpty()) {
            return 0;
        }
        phase("wait: " + Human.count(running.size(), "backup") + " running (" + String.join(", ", running.keySet())
            + "); their chunks are decided once they finish");
        long deadline = System.nanoTime() + Math.min(options.maxWait().toNanos(), Long.MAX_VALUE / 4);
        Map<String, String> left = new HashMap<>(running);
        while (true) {
            left.entrySet().removeIf(e -> {
                try {
                    Optional<BackupInfo> b = catalog.backup(e.getKey());
                    if (b.isEmpty() || !BackupInfo.INCOMPLETE.equals(b.get().state())) {
                        return true;
                    }
                } catch (RepositoryException ex) {
                    throw new IllegalStateException(ex);
                }
                Optional<Owner> o = Owner.parse(e.getValue());
                return o.isPresent() && o.get().knownDead();
            });
            if (left.isEmpty()) {
                return running.size();
            }
            if (System.nanoTime() > deadline) {
                throw new DeferredException((left.size() == 1 ? "backup " : "backups ") + String.join(", ", left.keySet()) + " still running after "
                    + options.maxWait().toSeconds() + " s");
            }
            try {
                Thread.sleep(POLL_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while waiting for running backups");
            }
        }
    }

    /** Deletes a pack with no live chunk: its condemned rows, then the file, then its row. */
    private void deletePack(String name) throws IOException {
        catalog.releasePack(name);
        repo.packFiles().forget(name);
        repo.storage().deletePack(name);
        catalog.deletePack(name);
        LOG.debug("gc: deleted pack {}", name);
    }

    /** Copies live records of sparse packs into new packs, sealed and relocated one new pack at a time. */
    private final class Repacker {
        final Object lock = new Object();
        final List<Catalog.PackUsage> done = new ArrayList<>();
        final List<Catalog.PackUsage> pendingSources = new ArrayList<>();
        PackWriter out;
        int written;
        long writtenBytes;
        long copied;

        void copy(Catalog.PackUsage u) throws IOException {
            List<ChunkRow> rows = catalog.chunksOfPack(u.name());
            boolean complete = true;
            ChunkCodec codec = repo.codec();
            ChunkCodec.Scratch s = codec.borrow();
            try {
                for (ChunkRow row : rows) {
                    byte[] rec = s.record(row.length());
                    repo.packFiles().read(u.name(), ByteBuffer.wrap(rec, 0, row.length()), row.offset());
                    try {
                        codec.decode(s, rec, row.length(), row.digest(), row.rawLength());
                    } catch (ChunkCodec.RecordException e) {
                        LOG.warn("gc: chunk {} in pack {} at offset {} is damaged ({}); pack kept, run jbackup "
                            + "verify", ChunkId.hex(row.digest()), u.name(), row.offset(), e.getMessage());
                        complete = false;
                        continue;
                    }
                    synchronized (lock) {
                        if (out == null) {
                            out = new PackWriter(repo, repo.tmpDir(), lock).relocating();
                        }
                        out.append(row.digest(), rec, null, row.length(), row.rawLength());
                        copied += row.length();
                    }
                    if (sizeOut() >= repo.config().packSize()) {
                        sealOut();
                    }
                }
            } finally {
                codec.release(s);
            }
            if (complete) {
                pendingSources.add(u);
            }
        }

        private long sizeOut() {
            synchronized (lock) {
                return out == null ? 0 : out.size();
            }
        }

        private void sealOut() throws IOException {
            PackWriter p;
            synchronized (lock) {
                p = out;
                out = null;
            }
            if (p != null) {
                p.seal();
                written++;
                long size = repo.storage().packSize(p.name);
                if (size > 0) {
                    writtenBytes += size;
                }
            }
            // sources copied so far are now fully relocated (except those still being copied: none, one at a time)
            done.addAll(pendingSources);
            pendingSources.clear();
        }

        void finish() throws IOException {
            sealOut();
        }
    }

    /** For tests: how long gc would wait at most. */
    Duration maxWait() {
        return options.maxWait();
    }
}
