package io.jbackup.store;

import io.jbackup.catalog.ChunkLocation;
import io.jbackup.error.NotFoundException;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.RepositoryException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;

/**
 * {@code jbackup verify}: reads chunk records and checks each one fully (CRC32C, GCM tag, decompression, length,
 * digest), checks index files (MACs, bounds) and that every chunk they reference is in the catalog, then names each
 * damaged chunk with the backups and disk offsets that use it.
 *
 * <p>Order, in bounded memory: (1) open the selected indexes and collect the prefixes of the chunks they use (only
 * when backups are selected); (2) stream the catalog's chunks in pack order, remembering every prefix and checking
 * the selected (or sampled) chunks on the worker pool; (3) look for referenced chunks missing from the catalog;
 * (4) if anything is damaged, scan every index for positions that use a damaged chunk. Memory: 8 bytes per chunk in
 * the catalog (plus per referenced chunk when backups are selected).
 */
final class Verifier {
    private static final Logger LOG = LoggerFactory.getLogger(Verifier.class);
    static final int MAX_USES_LISTED = 100;

    private final RepositoryContext repo;
    private final ChunkReader reader;
    private final BackupLifecycle backups;
    private final VerifyOptions options;
    private final AtomicLong quarantined = new AtomicLong();

    private record Damage(String pack, long offset, String problem) {
    }

    Verifier(RepositoryContext repo, ChunkReader reader, BackupLifecycle backups, VerifyOptions options) {
        this.repo = repo;
        this.reader = reader;
        this.backups = backups;
        this.options = options;
    }

    VerifyReport run() throws IOException {
        List<BackupInfo> all = backups.listBackups();
        List<BackupInfo> selected = new ArrayList<>();
        if (options.backupIds().isEmpty()) {
            for (BackupInfo b : all) {
                if (!BackupInfo.INCOMPLETE.equals(b.state())) {
                    selected.add(b);
                }
            }
        } else {
            for (String id : options.backupIds()) {
                BackupInfo b = backups.backup(id).orElseThrow(() -> new RepositoryException("no backup " + id
                    + " to verify; list the backups with: jbackup list"));
                if (BackupInfo.INCOMPLETE.equals(b.state())) {
                    throw new RepositoryException("backup " + id + " is incomplete; there is nothing to verify yet");
                }
                selected.add(b);
            }
        }
        boolean everything = options.backupIds().isEmpty();
        List<VerifyReport.DamagedIndex> damagedIndexes = new ArrayList<>();
        PrefixSet referenced = everything ? null : new PrefixSet();
        List<BackupInfo> readable = new ArrayList<>();
        Map<String, Path> intactCopies = new LinkedHashMap<>();
        for (BackupInfo b : selected) {
            // the index as stored (in a bucket: the object, not this host's cached copy)
            Path file = repo.storage().storedIndexFile(b.id());
            boolean intact = false;
            try (IndexReader r = IndexReader.open(file, repo::metaMac, repo.codec().encrypted())) {
                readable.add(b);
                if (referenced != null) {
                    r.forEachReference((first, buf, len) -> {
                        for (int off = 0; off < len; off += ChunkId.LENGTH) {
                            if (!isZero(buf, off)) {
                                referenced.addDigest(buf, off);
                            }
                        }
                    });
                }
                intact = true;
            } catch (RepositoryException e) {
                String stored = repo.storage().describe(io.jbackup.store.layout.RepositoryLayout.index(b.id()));
                damagedIndexes.add(new VerifyReport.DamagedIndex(b.id(), stored,
                    e.getMessage().replace(file.toString(), stored)));
                Path cached = repo.storage().cachedIndexFile(b.id());
                if (cached != null && intactIndex(cached)) {
                    intactCopies.put(b.id(), cached);
                }
            } finally {
                repo.storage().releaseStoredIndex(file, b.id(), intact);
            }
        }
        if (referenced != null) {
            referenced.seal();
        }

        // (1b) chunks quarantined earlier: intact again (e.g. the pack was put back from a copy) → back in use
        int reinstated = 0;
        for (Map.Entry<byte[], io.jbackup.catalog.Catalog.DamagedChunk> e : repo.catalog().damagedChunks().entrySet()) {
            ChunkLocation at = e.getValue().location();
            if (repo.storage().packExists(at.pack())) {
                try {
                    reader.readRecord(at, e.getKey(), at.rawLength(), null, -1);
                    if (repo.catalog().reinstate(e.getKey())) {
                        reinstated++;
                    }
                } catch (RepositoryException stillDamaged) {
                    LOG.debug("chunk {} is still damaged: {}", ChunkId.hex(e.getKey()), stillDamaged.getMessage());
                }
            }
        }
        if (reinstated > 0) {
            LOG.info("{} chunks found damaged earlier read intact now; they are in use again", reinstated);
        }

        // (2) check chunk records in pack order
        PrefixSet known = new PrefixSet();
        Map<String, Damage> damaged = new ConcurrentHashMap<>();
        AtomicLong checked = new AtomicLong();
        AtomicLong bytes = new AtomicLong();
        long seed = new SecureRandom().nextLong();
        double fraction = options.samplePercent() / 100.0;
        Semaphore inFlight = new Semaphore(2 * repo.workerThreads());
        IOException[] aborted = new IOException[1];
        repo.catalog().forEachChunk((digest, loc) -> {
            long prefix = ChunkId.prefix(digest, 0);
            known.add(prefix);
            if (referenced != null && !referenced.contains(prefix)) {
                return;
            }
            if (fraction < 1.0 && (mix(prefix ^ seed) >>> 11) * 0x1.0p-53 >= fraction) {
                return;
            }
            inFlight.acquireUninterruptibly();
            repo.pool().execute(() -> {
                try {
                    check(digest, loc, damaged);
                    checked.incrementAndGet();
                    bytes.addAndGet(loc.rawLength());
                } catch (IOException e) {
                    synchronized (aborted) {
                        if (aborted[0] == null) {
                            aborted[0] = e;
                        }
                    }
                } finally {
                    inFlight.release();
                }
            });
        });
        inFlight.acquireUninterruptibly(2 * repo.workerThreads());
        if (aborted[0] != null) {
            throw aborted[0];
        }
        known.seal();

        // (3) referenced chunks missing from the catalog: quarantined earlier (damaged), or unknown
        Set<String> missing = new LinkedHashSet<>();
        for (BackupInfo b : readable) {
            try (IndexReader r = IndexReader.open(repo.storage().indexFile(b.id()), repo::metaMac,
                repo.codec().encrypted())) {
                r.forEachReference((first, buf, len) -> {
                    for (int off = 0; off < len; off += ChunkId.LENGTH) {
                        if (!isZero(buf, off) && !known.containsDigest(buf, off)) {
                            missing.add(HexFormat.of().formatHex(buf, off, off + ChunkId.LENGTH));
                        }
                    }
                });
            }
        }
        for (String hex : missing) {
            if (damaged.containsKey(hex)) {
                continue;
            }
            byte[] digest = HexFormat.of().parseHex(hex);
            if (repo.catalog().findChunk(digest) != null) {
                continue; // stored meanwhile (a backup running during verify)
            }
            var q = repo.catalog().damagedChunk(digest);
            damaged.put(hex, q.map(d -> new Damage(repo.storage().describePack(d.location().pack()),
                d.location().offset(), d.problem() + " (found " + d.found() + ")"))
                .orElse(new Damage(null, -1, "missing: not in the catalog")));
        }

        // (3b) pack footers, when the whole repository is verified: only a rebuild of the catalog reads them
        List<VerifyReport.DamagedPack> damagedPacks = new ArrayList<>();
        if (everything && options.samplePercent() >= 100) {
            for (io.jbackup.catalog.PackRow p : repo.catalog().packs()) {
                if (!repo.storage().packExists(p.name())) {
                    continue; // its chunks are reported missing above
                }
                try (Storage.Ranged in = repo.storage().openPack(p.name())) {
                    PackReader.readFooter(in, p.name(), repo::metaMac, repo.codec().encrypted());
                } catch (RepositoryException e) {
                    damagedPacks.add(new VerifyReport.DamagedPack(repo.storage().describePack(p.name()),
                        e.getMessage()));
                }
            }
        }

        // (4) who uses the damaged chunks
        Map<String, List<VerifyReport.Use>> uses = new LinkedHashMap<>();
        Map<String, long[]> useCounts = new LinkedHashMap<>();
        Set<String> affected = new LinkedHashSet<>();
        if (!damaged.isEmpty()) {
            for (BackupInfo b : all) {
                if (BackupInfo.INCOMPLETE.equals(b.state())) {
                    continue;
                }
                try (IndexReader r = IndexReader.open(repo.storage().indexFile(b.id()), repo::metaMac,
                    repo.codec().encrypted())) {
                    r.forEachReference((first, buf, len) -> {
                        for (int off = 0; off < len; off += ChunkId.LENGTH) {
                            if (isZero(buf, off)) {
                                continue;
                            }
                            String hex = HexFormat.of().formatHex(buf, off, off + ChunkId.LENGTH);
                            if (damaged.containsKey(hex)) {
                                long pos = first + off / ChunkId.LENGTH;
                                List<VerifyReport.Use> l = uses.computeIfAbsent(hex, k -> new ArrayList<>());
                                if (l.size() < MAX_USES_LISTED) {
                                    var att = pos < r.chunkCount() ? null
                                        : Attachments.at(r.attachments(), pos - r.chunkCount(), r.chunkSize());
                                    l.add(att == null ? new VerifyReport.Use(b.id(), b.diskLabel(), pos * b.chunkSize())
                                        : new VerifyReport.Use(b.id(), b.diskLabel() + ", attachment " + att.getKey(),
                                        att.getValue()));
                                }
                                useCounts.computeIfAbsent(hex, k -> new long[1])[0]++;
                                affected.add(b.id());
                            }
                        }
                    });
                } catch (RepositoryException e) {
                    LOG.debug("index of {} unreadable while listing uses: {}", b.id(), e.getMessage());
                }
            }
        }
        List<VerifyReport.DamagedChunk> chunks = new ArrayList<>();
        damaged.entrySet().stream().sorted(Map.Entry.comparingByKey()).forEach(e -> chunks.add(
            new VerifyReport.DamagedChunk(e.getKey(), e.getValue().pack(), e.getValue().offset(),
                e.getValue().problem(), List.copyOf(uses.getOrDefault(e.getKey(), List.of())),
                useCounts.getOrDefault(e.getKey(), new long[1])[0])));

        // repair
        List<String> markedBad = new ArrayList<>();
        int rewritten = 0;
        if (options.repair()) {
            for (VerifyReport.DamagedPack p : damagedPacks) {
                rewritten += rewritePack(Repository.packName(Path.of(p.pack()))) ? 1 : 0;
            }
        }
        if (options.repair() && (!chunks.isEmpty() || !damagedIndexes.isEmpty())) {
            Map<String, String> reasons = new LinkedHashMap<>();
            for (VerifyReport.DamagedChunk c : chunks) {
                for (VerifyReport.Use u : c.uses()) {
                    reasons.putIfAbsent(u.backupId(), "verify: chunk " + c.digest().substring(0, 16) + " at disk offset "
                        + u.diskOffset() + " is damaged (" + c.problem() + ")");
                }
            }
            for (String id : affected) {
                reasons.putIfAbsent(id, "verify: uses a damaged chunk");
            }
            for (VerifyReport.DamagedIndex d : damagedIndexes) {
                Path copy = intactCopies.get(d.backupId());
                if (copy != null) { // this host's cached copy is intact: put it back in the bucket
                    repo.storage().reuploadIndex(copy, d.backupId());
                    LOG.info("index of backup {} was damaged in the repository; put back this host's intact copy",
                        d.backupId());
                    continue;
                }
                reasons.putIfAbsent(d.backupId(), "verify: index damaged (" + d.problem() + ")");
            }
            for (Map.Entry<String, String> e : reasons.entrySet()) {
                if (repo.storage().indexExists(e.getKey()) || backups.backup(e.getKey()).isPresent()) {
                    try {
                        backups.markBad(e.getKey(), e.getValue());
                        markedBad.add(e.getKey());
                    } catch (RepositoryException | NotFoundException ex) {
                        LOG.warn("cannot mark {} bad: {}", e.getKey(), ex.getMessage());
                    }
                }
            }
        }
        if (chunks.isEmpty() && damagedIndexes.isEmpty() && !readable.isEmpty()) {
            repo.catalog().setVerified(readable.stream().map(BackupInfo::id).toList(), java.time.Instant.now(),
                options.samplePercent());
        }
        return new VerifyReport(readable.size(), checked.get(), bytes.get(), chunks, damagedIndexes,
            List.copyOf(damagedPacks), markedBad, quarantined.get(), rewritten);
    }

    /** Whether the index file {@code f} opens: its bounds, file MAC and entries MAC verify. */
    private boolean intactIndex(Path f) {
        try (IndexReader r = IndexReader.open(f, repo::metaMac, repo.codec().encrypted())) {
            return r != null;
        } catch (IOException e) {
            return false;
        }
    }

    /**
     * Copies the intact records of a pack whose footer is damaged into a new pack (sealed and registered like gc's
     * repacking, {@link io.jbackup.catalog.Catalog#relocate}), then deletes the old pack. Damaged records were
     * quarantined when they were checked and are not copied. Needs the exclusive lock (repair).
     */
    private boolean rewritePack(String name) throws IOException {
        var catalog = repo.catalog();
        List<io.jbackup.catalog.ChunkRow> rows = catalog.chunksOfPack(name);
        Object lock = new Object();
        PackWriter out = rows.isEmpty() ? null : new PackWriter(repo, repo.tmpDir(), lock).relocating();
        ChunkCodec codec = repo.codec();
        ChunkCodec.Scratch s = codec.borrow();
        try {
            for (io.jbackup.catalog.ChunkRow row : rows) {
                ChunkLocation at = new ChunkLocation(name, row.offset(), row.length(), row.rawLength());
                try {
                    reader.readRecord(at, row.digest(), row.rawLength(), null, -1);
                } catch (ChunkCorruptException e) {
                    reader.quarantine(row.digest(), at, e.problem());
                    continue;
                }
                byte[] rec = s.record(row.length());
                repo.packFiles().read(name, java.nio.ByteBuffer.wrap(rec, 0, row.length()), row.offset());
                synchronized (lock) {
                    out.append(row.digest(), rec, null, row.length(), row.rawLength());
                }
            }
        } finally {
            codec.release(s);
        }
        if (out != null) {
            out.seal();
        }
        catalog.releasePack(name);
        repo.packFiles().forget(name);
        repo.storage().deletePack(name);
        catalog.deletePack(name);
        LOG.warn("pack {} had a damaged footer: its {} intact records were copied into pack {} and it was deleted",
            name, rows.size(), out == null ? "(none)" : out.name);
        return true;
    }

    private void check(byte[] digest, ChunkLocation listed, Map<String, Damage> damaged) throws IOException {
        ChunkLocation loc = listed;
        if (!repo.storage().packExists(loc.pack())) {
            // a gc running meanwhile may have repacked the chunk (new location) or deleted it as garbage (none)
            loc = repo.catalog().findChunk(digest);
            if (loc == null) {
                return;
            }
        }
        try {
            reader.readRecord(loc, digest, loc.rawLength(), null, -1);
        } catch (ChunkCorruptException e) {
            damaged.put(ChunkId.hex(digest), new Damage(repo.storage().describePack(loc.pack()),
                loc.offset(), e.problem()));
            // out of deduplication at once, so the next backup that meets the data stores it again
            if (repo.catalog().quarantine(digest, loc, e.problem())) {
                quarantined.incrementAndGet();
            }
        } catch (RepositoryException e) {
            // e.g. the pack file is missing
            damaged.put(ChunkId.hex(digest), new Damage(repo.storage().describePack(loc.pack()),
                loc.offset(), e.getMessage()));
        }
    }

    private static boolean isZero(byte[] buf, int off) {
        return Arrays.mismatch(buf, off, off + ChunkId.LENGTH, ChunkId.ZERO, 0, ChunkId.LENGTH) < 0;
    }

    /** SplitMix64 finaliser: a well-mixed 64-bit value for sampling. */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        return z ^ (z >>> 31);
    }
}
