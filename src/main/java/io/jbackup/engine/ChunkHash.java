package io.jbackup.engine;

import io.jbackup.model.BackupStats;
import io.jbackup.nbd.client.ReadObserver;
import io.jbackup.store.BackupWriter;
import io.jbackup.store.ChunkHasher;

import java.util.TreeMap;

/**
 * The chunk id of one chunk buffer, computed while the buffer fills: each piece is hashed as soon as it is final and
 * follows the bytes hashed so far, so that it is hashed while it is still in the cache of the core that just wrote it
 * (a piece copied off the socket, or a gap zeroed by the backup). SHA-256 of a chunk another core wrote runs at about
 * 1.1 GB/s here, of one still in the cache at 1.6 GB/s (bench/README.md, "What changed on 2026-12-07, second
 * session"). A piece that arrives ahead of its turn waits (its range is remembered) and is hashed from the buffer when
 * the gap before it closes.
 *
 * <p>{@link #id} returns the id only when every byte of the chunk was reported exactly once; otherwise (a piece
 * reported twice or overlapping, a read that failed half way) it returns null and the repository hashes the buffer
 * itself, so a mistake here costs time, never a wrong id. Thread-safe: the pieces of one chunk may come from several
 * connections' I/O threads.
 */
final class ChunkHash implements ReadObserver {
    private final ChunkHasher hasher;
    private byte[] buffer;
    private int length;
    private int next;
    private boolean broken;
    /** pieces ahead of {@link #next}: start -> length */
    private final TreeMap<Integer, Integer> ahead = new TreeMap<>();

    ChunkHash(ChunkHasher hasher) {
        this.hasher = hasher;
    }

    /** Starts on a new chunk: {@code buffer[0, length)}. */
    synchronized ChunkHash start(byte[] buffer, int length) {
        if (next > 0 || !ahead.isEmpty()) {
            hasher.finish(); // drop what a previous, unfinished chunk fed
        }
        this.buffer = buffer;
        this.length = length;
        this.next = 0;
        this.broken = false;
        this.ahead.clear();
        return this;
    }

    @Override
    public synchronized void received(int off, int len) {
        if (broken || len <= 0) {
            return;
        }
        if (off < next || off > length - len || ahead.containsKey(off)) {
            broken = true; // reported twice, overlapping or out of the chunk
            return;
        }
        if (off > next) {
            ahead.put(off, len);
            return;
        }
        hasher.update(buffer, off, len);
        next += len;
        for (var e = ahead.firstEntry(); e != null && e.getKey() <= next; e = ahead.firstEntry()) {
            ahead.pollFirstEntry();
            if (e.getKey() < next) {
                broken = true;
                return;
            }
            hasher.update(buffer, e.getKey(), e.getValue());
            next += e.getValue();
        }
    }

    /** The chunk id, when every byte was hashed exactly once; else null (the repository then hashes the chunk). */
    synchronized byte[] id() {
        if (broken || next != length || !ahead.isEmpty()) {
            return null;
        }
        next = 0;
        return hasher.finish();
    }

    /**
     * Whether the next chunk is hashed by the I/O thread as its pieces land ({@link ChunkHash}) rather than by the
     * repository's workers: when most of what the backup has stored so far was new and compressed, the workers are
     * the bottleneck (zstd) and hashing on the I/O thread takes SHA-256 off them, on data still in the cache. For data
     * that does not compress, or that deduplicates, the workers have time to spare and the single I/O thread would
     * become the bottleneck instead, so they keep the hashing. Measured in bench/README.md ("What changed on
     * 2026-12-07, second session").
     */
    static boolean onReadPays(BackupStats s) {
        long put = s.bytesNew() + s.bytesDedup();
        return s.bytesNew() > put / 2 && s.bytesStored() < s.bytesNew() * 4 / 5;
    }

    /** Chunk hashes to reuse: at most one per chunk buffer in flight. Used by the copy loop's thread only. */
    static final class Pool {
        private final java.util.ArrayDeque<ChunkHash> free = new java.util.ArrayDeque<>();

        /** A hash started on {@code buffer[0, length)}, or null when {@link #onReadPays} says the workers hash. */
        ChunkHash forRead(BackupWriter writer, byte[] buffer, int length) {
            if (!onReadPays(writer.stats())) {
                return null;
            }
            ChunkHash h = free.poll();
            return (h != null ? h : new ChunkHash(writer.newHasher())).start(buffer, length);
        }

        /** Takes back a hash whose read has completed (null is ignored). */
        void give(ChunkHash h) {
            if (h != null) {
                free.push(h);
            }
        }
    }
}
