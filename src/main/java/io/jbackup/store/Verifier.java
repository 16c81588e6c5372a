package io.jbackup.store;

import io.jbackup.catalog.ChunkLocation;
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

    private final Repository repo;
    private final VerifyOptions options;

    private record Damage(String pack, long offset, String problem) {
    }

    Verifier(Repository repo, VerifyOptions options) {
        this.repo = repo;
        this.options = options;
    }

    VerifyReport run() throws IOException {
        List<BackupInfo> all = repo.listBackups();
        List<BackupInfo> selected = new ArrayList<>();
        if (options.backupIds().isEmpty()) {
            for (BackupInfo b : all) {
                if (!BackupInfo.INCOMPLETE.equals(b.state())) {
                    selected.add(b);
                }
            }
        } else {
            for (String id : options.backupIds()) {
                BackupInfo b = repo.backup(id).orElseThrow(() -> new RepositoryException("no backup " + id
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
        for (BackupInfo b : selected) {
            Path file = IndexFile.path(repo.dir(), b.id());
            try (IndexFile.Reader r = IndexFile.Reader.open(file, repo::metaMac, repo.codec().encrypted())) {
                readable.add(b);
                if (referenced != null) {
                    r.forEachBlock((first, buf, len) -> {
                        for (int off = 0; off < len; off += ChunkId.LENGTH) {
                            if (!isZero(buf, off)) {
                                referenced.addDigest(buf, off);
                            }
                        }
                    });
                }
            } catch (RepositoryException e) {
                damagedIndexes.add(new VerifyReport.DamagedIndex(b.id(), file.toString(), e.getMessage()));
            }
        }
        if (referenced != null) {
            referenced.seal();
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

        // (3) referenced chunks missing from the catalog
        for (BackupInfo b : readable) {
            try (IndexFile.Reader r = IndexFile.Reader.open(IndexFile.path(repo.dir(), b.id()), repo::metaMac,
                repo.codec().encrypted())) {
                r.forEachBlock((first, buf, len) -> {
                    for (int off = 0; off < len; off += ChunkId.LENGTH) {
                        if (!isZero(buf, off) && !known.containsDigest(buf, off)) {
                            damaged.putIfAbsent(HexFormat.of().formatHex(buf, off, off + ChunkId.LENGTH),
                                new Damage(null, -1, "missing: not in the catalog"));
                        }
                    }
                });
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
                try (IndexFile.Reader r = IndexFile.Reader.open(IndexFile.path(repo.dir(), b.id()), repo::metaMac,
                    repo.codec().encrypted())) {
                    r.forEachBlock((first, buf, len) -> {
                        for (int off = 0; off < len; off += ChunkId.LENGTH) {
                            if (isZero(buf, off)) {
                                continue;
                            }
                            String hex = HexFormat.of().formatHex(buf, off, off + ChunkId.LENGTH);
                            if (damaged.containsKey(hex)) {
                                long pos = first + off / ChunkId.LENGTH;
                                List<VerifyReport.Use> l = uses.computeIfAbsent(hex, k -> new ArrayList<>());
                                if (l.size() < MAX_USES_LISTED) {
                                    l.add(new VerifyReport.Use(b.id(), b.diskLabel(), pos * b.chunkSize()));
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
        long forgotten = 0;
        if (options.repair() && (!chunks.isEmpty() || !damagedIndexes.isEmpty())) {
            List<byte[]> forget = new ArrayList<>();
            for (VerifyReport.DamagedChunk c : chunks) {
                if (c.pack() != null) {
                    forget.add(HexFormat.of().parseHex(c.digest()));
                }
            }
            repo.catalog().deleteChunks(forget);
            forgotten = forget.size();
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
                reasons.putIfAbsent(d.backupId(), "verify: index damaged (" + d.problem() + ")");
            }
            for (Map.Entry<String, String> e : reasons.entrySet()) {
                Path idx = IndexFile.path(repo.dir(), e.getKey());
                if (Files.exists(idx) || repo.backup(e.getKey()).isPresent()) {
                    try {
                        repo.markBad(e.getKey(), e.getValue());
                        markedBad.add(e.getKey());
                    } catch (RepositoryException ex) {
                        LOG.warn("cannot mark {} bad: {}", e.getKey(), ex.getMessage());
                    }
                }
            }
        }
        if (chunks.isEmpty() && damagedIndexes.isEmpty() && !readable.isEmpty()) {
            repo.catalog().setVerified(readable.stream().map(BackupInfo::id).toList(), java.time.Instant.now(),
                options.samplePercent());
        }
        return new VerifyReport(readable.size(), checked.get(), bytes.get(), chunks, damagedIndexes, markedBad,
            forgotten);
    }

    private void check(byte[] digest, ChunkLocation listed, Map<String, Damage> damaged) throws IOException {
        ChunkLocation loc = listed;
        if (!Files.exists(PackFormat.path(repo.dir(), loc.pack()))) {
            // a gc running meanwhile may have repacked the chunk (new location) or deleted it as garbage (none)
            loc = repo.catalog().findChunk(digest);
            if (loc == null) {
                return;
            }
        }
        try {
            repo.readRecord(loc, digest, loc.rawLength(), null, -1);
        } catch (ChunkCorruptException e) {
            damaged.put(ChunkId.hex(digest), new Damage(PackFormat.path(repo.dir(), loc.pack()).toString(),
                loc.offset(), e.problem()));
        } catch (RepositoryException e) {
            // e.g. the pack file is missing
            damaged.put(ChunkId.hex(digest), new Damage(PackFormat.path(repo.dir(), loc.pack()).toString(),
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
