package io.jbackup.engine;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * Turns block-status extents into per-chunk decisions on the repository's fixed chunk grid.
 *
 * <p>Extents arrive window by window, possibly shorter than asked and different per context. The planner
 * buffers them and plans a chunk only once every context covers it completely:
 * <ul>
 *   <li>A byte is <em>data</em> unless {@code base:allocation} reports it ZERO, or {@code qemu:allocation-depth}
 *       reports depth 0 (unallocated in the whole backing chain, which reads as zeros).</li>
 *   <li>Full backup: a chunk without data bytes is ZERO; otherwise READ its data ranges.</li>
 *   <li>Incremental: a chunk not touched by a dirty extent is skipped (the parent's digest stays); a dirty chunk
 *       is planned like a full one, so dirty regions that were trimmed or zeroed become zero chunks and never
 *       keep old data.</li>
 * </ul>
 * Not thread-safe: one planner per disk, driven by one thread.
 */
public final class ChunkPlanner {
    private final long size;
    private final int chunkSize;
    private final boolean haveAllocation;
    private final boolean haveDepth;
    private final boolean incremental;

    private final Deque<Extent> allocation = new ArrayDeque<>();
    private final Deque<Extent> depth = new ArrayDeque<>();
    private final Deque<Extent> dirty = new ArrayDeque<>();
    private long allocationEnd;
    private long depthEnd;
    private long dirtyEnd;
    private long nextChunk;

    /**
     * @param size           export size in bytes
     * @param chunkSize      chunk size (power of two)
     * @param haveAllocation whether {@code base:allocation} extents will be fed
     * @param haveDepth      whether {@code qemu:allocation-depth} extents will be fed
     * @param incremental    whether dirty-bitmap extents will be fed and only dirty chunks planned
     */
    public ChunkPlanner(long size, int chunkSize, boolean haveAllocation, boolean haveDepth, boolean incremental) {
        if (size < 0 || chunkSize <= 0 || Integer.bitCount(chunkSize) != 1) {
            throw new IllegalArgumentException("size " + size + " chunkSize " + chunkSize
                + " (expected: size >= 0, chunk size a power of two)");
        }
        this.size = size;
        this.chunkSize = chunkSize;
        this.haveAllocation = haveAllocation;
        this.haveDepth = haveDepth;
        this.incremental = incremental;
        this.allocationEnd = haveAllocation ? 0 : size;
        this.depthEnd = haveDepth ? 0 : size;
        this.dirtyEnd = incremental ? 0 : size;
    }

    /** The offset from which the next block-status request should start: the least covered end. */
    public long coveredEnd() {
        return Math.min(allocationEnd, Math.min(depthEnd, dirtyEnd));
    }

    /** Whether every chunk has been planned. */
    public boolean done() {
        return nextChunkOffset() >= size;
    }

    /** Offset of the next chunk to plan. */
    public long nextChunkOffset() {
        return nextChunk * (long) chunkSize;
    }

    /** Feeds the extents of one context; they must continue exactly where that context's previous extents ended. */
    public void addAllocation(List<Extent> extents) {
        allocationEnd = append(allocation, allocationEnd, extents, NbdConstants.CONTEXT_BASE_ALLOCATION);
    }

    public void addDepth(List<Extent> extents) {
        depthEnd = append(depth, depthEnd, extents, NbdConstants.CONTEXT_ALLOCATION_DEPTH);
    }

    public void addDirty(List<Extent> extents) {
        dirtyEnd = append(dirty, dirtyEnd, extents, "dirty bitmap");
    }

    private long append(Deque<Extent> q, long end, List<Extent> extents, String what) {
        for (Extent e : extents) {
            if (e.offset() > end) {
                throw new IllegalStateException(what + " extent at " + e.offset() + " leaves a gap after " + end);
            }
            if (e.end() <= end) {
                continue; // already covered (overlap with a previous reply)
            }
            long start = Math.max(e.offset(), end);
            long stop = Math.min(e.end(), size);
            if (stop > start) {
                q.addLast(new Extent(start, stop - start, e.flags()));
                end = stop;
            }
        }
        return end;
    }

    /**
     * Plans chunks now fully covered by all contexts, at most {@code maxTasks} tasks, one per chunk; skipped (clean)
     * chunks are not returned but are consumed.
     */
    public List<ChunkTask> plan(int maxTasks) {
        return plan(maxTasks, false);
    }

    /**
     * Like {@link #plan(int)}, but handles zero and clean regions as runs, with work per run rather than per chunk: a
     * run of two or more zero chunks becomes one ZERO task with {@link ChunkTask#count()} chunks, and a run of clean
     * chunks of an incremental is consumed in one step. The decisions per chunk are exactly those of
     * {@link #plan(int)}.
     */
    public List<ChunkTask> planRuns(int maxTasks) {
        return plan(maxTasks, true);
    }

    private List<ChunkTask> plan(int maxTasks, boolean runs) {
        List<ChunkTask> out = new ArrayList<>();
        long covered = Math.min(coveredEnd(), size);
        long chunkCount = (size + chunkSize - 1) / chunkSize;
        while (out.size() < maxTasks) {
            long cs = nextChunkOffset();
            if (cs >= size) {
                break;
            }
            long ce = Math.min(cs + chunkSize, size);
            if (ce > covered) {
                break;
            }
            if (runs) {
                long left = chunkCount - nextChunk;
                if (incremental) {
                    long clean = wholeChunks(cs, cleanEnd(cs, covered), left);
                    if (clean > 0) {
                        advance(clean);
                        continue;
                    }
                }
                long zero = wholeChunks(cs, zeroEnd(cs, covered), left);
                if (incremental && zero > 1) {
                    // every chunk starting inside the dirty run from cs holds a dirty byte
                    long dirtyEnd = dirtyRunEnd(cs, covered);
                    zero = Math.min(zero, (dirtyEnd - cs + chunkSize - 1) / chunkSize);
                }
                if (zero > 1) {
                    long end = Math.min(cs + zero * chunkSize, size);
                    out.add(ChunkTask.zeroRun(nextChunk, cs, (int) (ce - cs), zero, end - cs));
                    advance(zero);
                    continue;
                }
            }
            ChunkTask t = planChunk(nextChunk, cs, ce);
            if (t != null) {
                out.add(t);
            }
            advance(1);
        }
        return out;
    }

    /** Chunks from {@code cs} that lie wholly below {@code end} (the last, short chunk counts once end reaches size). */
    private long wholeChunks(long cs, long end, long left) {
        return end >= size ? left : (end - cs) / chunkSize;
    }

    private void advance(long chunks) {
        nextChunk += chunks;
        long upTo = Math.min(nextChunkOffset(), size);
        trim(allocation, upTo);
        trim(depth, upTo);
        trim(dirty, upTo);
    }

    /** The end of the region from {@code pos} (at most {@code limit}) where some context says every byte is zero. */
    private long zeroEnd(long pos, long limit) {
        if (!haveAllocation && !haveDepth) {
            return pos;
        }
        java.util.Iterator<Extent> ai = allocation.iterator();
        java.util.Iterator<Extent> di = depth.iterator();
        Extent a = null;
        Extent d = null;
        while (pos < limit) {
            long z = pos;
            if (haveAllocation) {
                while ((a == null || a.end() <= pos) && ai.hasNext()) {
                    a = ai.next();
                }
                if (a != null && a.offset() <= pos && pos < a.end() && (a.flags() & NbdConstants.STATE_ZERO) != 0) {
                    z = Math.max(z, a.end());
                }
            }
            if (haveDepth) {
                while ((d == null || d.end() <= pos) && di.hasNext()) {
                    d = di.next();
                }
                if (d != null && d.offset() <= pos && pos < d.end() && d.flags() == 0) {
                    z = Math.max(z, d.end());
                }
            }
            if (z == pos) {
                break;
            }
            pos = z;
        }
        return Math.min(pos, limit);
    }

    /** The end of the region from {@code pos} (at most {@code limit}) that the dirty bitmap reports clean. */
    private long cleanEnd(long pos, long limit) {
        return runEnd(pos, limit, false);
    }

    /** The end of the region from {@code pos} (at most {@code limit}) that the dirty bitmap reports dirty. */
    private long dirtyRunEnd(long pos, long limit) {
        return runEnd(pos, limit, true);
    }

    private long runEnd(long pos, long limit, boolean dirtyRun) {
        for (Extent e : dirty) {
            if (e.end() <= pos) {
                continue;
            }
            if (e.offset() > pos || ((e.flags() & NbdConstants.STATE_DIRTY) != 0) != dirtyRun) {
                break;
            }
            pos = e.end();
            if (pos >= limit) {
                break;
            }
        }
        return Math.min(pos, limit);
    }

    private static void trim(Deque<Extent> q, long upTo) {
        while (!q.isEmpty() && q.peekFirst().end() <= upTo) {
            q.removeFirst();
        }
    }

    private ChunkTask planChunk(long index, long cs, long ce) {
        if (incremental && !anyDirty(cs, ce)) {
            return null;
        }
        long[] ranges = dataRanges(cs, ce);
        int len = (int) (ce - cs);
        if (ranges.length == 0) {
            return new ChunkTask(index, cs, len, ChunkTask.Kind.ZERO, ranges);
        }
        return new ChunkTask(index, cs, len, ChunkTask.Kind.READ, ranges);
    }

    private boolean anyDirty(long cs, long ce) {
        for (Extent e : dirty) {
            if (e.offset() >= ce) {
                break;
            }
            if (e.end() > cs && (e.flags() & NbdConstants.STATE_DIRTY) != 0) {
                return true;
            }
        }
        return false;
    }

    /** Data ranges within [cs, ce): the complement of zero ranges of both contexts, merged. */
    private long[] dataRanges(long cs, long ce) {
        // Walk both lists with a sweep over boundaries.
        List<Long> r = new ArrayList<>();
        long pos = cs;
        while (pos < ce) {
            long next = ce;
            boolean zero = false;
            if (haveAllocation) {
                Extent a = find(allocation, pos);
                if (a != null) {
                    next = Math.min(next, a.end());
                    zero |= (a.flags() & NbdConstants.STATE_ZERO) != 0;
                }
            }
            if (haveDepth) {
                Extent d = find(depth, pos);
                if (d != null) {
                    next = Math.min(next, d.end());
                    zero |= d.flags() == 0;
                }
            }
            if (!zero) {
                int n = r.size();
                if (n > 0 && r.get(n - 1) == pos) {
                    r.set(n - 1, next);
                } else {
                    r.add(pos);
                    r.add(next);
                }
            }
            pos = next;
        }
        long[] out = new long[r.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = r.get(i);
        }
        return out;
    }

    private static Extent find(Deque<Extent> q, long pos) {
        for (Extent e : q) {
            if (e.offset() <= pos && pos < e.end()) {
                return e;
            }
            if (e.offset() > pos) {
                break;
            }
        }
        return null;
    }
}
