package io.jbackup.engine;

import io.jbackup.model.BackupInfo;
import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.server.ChunkRuns;
import io.jbackup.nbd.server.ExtentSource;
import io.jbackup.store.BackupReader;
import java.util.Arrays;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;

/**
 * The meta contexts a served backup offers besides {@code base:allocation}, computed from the indexes alone:
 * <ul>
 *   <li>{@code qemu:allocation-depth}: 1 for data chunks, 0 for zero chunks (never stored), so jbackup's own client
 *       plans a backup of a served backup as it plans one of a qcow2 export;</li>
 *   <li>{@code qemu:dirty-bitmap:ID2} for every older complete backup {@code ID2} of the same disk with the same
 *       chunk size: dirty ({@link NbdConstants#STATE_DIRTY}) over every chunk whose digest differs between the two
 *       indexes (and beyond the older image's end). Copying the dirty extents of {@code DISK@ID} over a restore of
 *       {@code ID2} gives a restore of {@code ID}, which is how {@code incremental --bitmap ID2} replicates a
 *       repository over NBD.</li>
 * </ul>
 * A bitmap is computed once per pair of backups, on first use, on {@code executor} (one digest comparison per
 * chunk), and kept in the caller's {@code bitmaps} map for every later export of the pair.
 * Extents: {@link ChunkRuns}, bounded per call; callers continue from where the last one ends.
 */
final class BackupContexts {

    /** Opens (or shares) the reader of a backup. */
    interface Readers {
        BackupReader reader(String id) throws java.io.IOException;
    }

    private BackupContexts() {
    }

    /**
     * The contexts of {@code backup} read by {@code reader}; {@code all} is every backup of the repository (the
     * older complete ones of the same disk become bitmaps).
     */
    static Map<String, ExtentSource> of(BackupInfo backup, BackupReader reader, List<BackupInfo> all,
                                        Readers readers, Executor executor,
                                        Map<String, CompletableFuture<BitSet>> bitmaps) {
        Map<String, ExtentSource> m = new LinkedHashMap<>();
        m.put(NbdConstants.CONTEXT_ALLOCATION_DEPTH, (off, len) -> CompletableFuture.completedFuture(
            ChunkRuns.of(reader.imageSize(), reader.chunkSize(), off, len, i -> !reader.isZero(i), 1)));
        for (BackupInfo older : all) {
            if (!older.isComplete() || older.id().equals(backup.id())
                || !older.created().isBefore(backup.created())
                || !java.util.Objects.equals(older.vm(), backup.vm()) || !older.disk().equals(backup.disk())
                || older.chunkSize() != backup.chunkSize()) {
                continue;
            }
            m.put(NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX + older.id(), new Bitmap(reader, older.id(), readers,
                executor, bitmaps, backup.id() + ">" + older.id()));
        }
        return m;
    }

    /** Dirty chunks of one backup against an older one, computed on first use. */
    private static final class Bitmap implements ExtentSource {
        private final BackupReader reader;
        private final String olderId;
        private final Readers readers;
        private final Executor executor;
        private final Map<String, CompletableFuture<BitSet>> bitmaps;
        private final String key;

        Bitmap(BackupReader reader, String olderId, Readers readers, Executor executor,
               Map<String, CompletableFuture<BitSet>> bitmaps, String key) {
            this.reader = reader;
            this.olderId = olderId;
            this.readers = readers;
            this.executor = executor;
            this.bitmaps = bitmaps;
            this.key = key;
        }

        private CompletableFuture<BitSet> dirty() {
            CompletableFuture<BitSet> f = bitmaps.computeIfAbsent(key, k -> CompletableFuture.supplyAsync(() -> {
                try {
                    return diff(reader, readers.reader(olderId));
                } catch (java.io.IOException e) {
                    throw new java.util.concurrent.CompletionException(e);
                }
            }, executor));
            f.whenComplete((v, e) -> {
                if (e != null) {
                    bitmaps.remove(key, f); // a failure is not kept: the next query tries again
                }
            });
            return f;
        }

        @Override
        public CompletableFuture<List<Extent>> extents(long offset, long length) {
            return dirty().thenApply(d -> ChunkRuns.of(reader.imageSize(), reader.chunkSize(), offset, length, i -> d.get((int) i),
                NbdConstants.STATE_DIRTY));
        }
    }

    /** The chunks of {@code now} that differ from {@code older} (all chunks past the older image's end). */
    static BitSet diff(BackupReader now, BackupReader older) {
        long n = now.chunkCount();
        long common = Math.min(n, older.chunkCount());
        BitSet d = new BitSet((int) Math.min(n, Integer.MAX_VALUE));
        for (long i = 0; i < n; i++) {
            boolean changed = i >= common || now.isZero(i) != older.isZero(i)
                || (!now.isZero(i) && !Arrays.equals(now.digest(i), older.digest(i)))
                || (i == n - 1 && now.chunkLength(i) != older.chunkLength(i));
            if (changed) {
                d.set((int) i);
            }
        }
        return d;
    }
}
