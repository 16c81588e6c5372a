package io.jbackup.engine;

import io.jbackup.nbd.client.NbdClient;
import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdHeaderMode;
import io.jbackup.nbd.protocol.NbdProtocolException;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * Block status for an incremental from a server that computes only the contexts a request names (extended headers
 * with {@code NBD_FLAG_BLOCK_STATUS_PAYLOAD}, QEMU 8.2+): each window asks for the dirty bitmap alone, then for
 * allocation ({@code base:allocation}, {@code qemu:allocation-depth}) only over the chunks the bitmap marks dirty,
 * so the server computes allocation for nothing that stays clean. Allocation still matters inside dirty chunks: a
 * dirty range the guest discarded or zeroed becomes zero chunks from the reply instead of being read.
 *
 * <p>{@link #fetch} answers like one block-status request for every context over {@code [from, end)}, so the
 * {@link ChunkPlanner} takes it as it is: the dirty bitmap's extents as the server sent them, and for each allocation
 * context the server's extents over the dirty chunks and, between them, stand-in extents that say "data" (flags 0,
 * depth 1). The planner skips clean chunks whatever their allocation says, and a stand-in only makes it read bytes
 * that the server would have reported as zero, never skip data. Dirty chunks closer than {@code mergeGap} bytes
 * share one allocation request.
 */
final class DirtyFirstStatus {
    private final String dirtyContext;
    private final List<String> allocationContexts;
    private final int chunkSize;
    private final long mergeGap;

    DirtyFirstStatus(String dirtyContext, boolean allocation, boolean depth, int chunkSize, long mergeGap) {
        if (!allocation && !depth) {
            throw new IllegalArgumentException("no allocation context to ask for");
        }
        this.dirtyContext = dirtyContext;
        this.allocationContexts = new ArrayList<>();
        if (allocation) {
            allocationContexts.add(NbdConstants.CONTEXT_BASE_ALLOCATION);
        }
        if (depth) {
            allocationContexts.add(NbdConstants.CONTEXT_ALLOCATION_DEPTH);
        }
        this.chunkSize = chunkSize;
        this.mergeGap = mergeGap;
    }

    /** Whether {@code client}'s server computes only the contexts a request names. */
    static boolean applies(NbdClient client) {
        return client.headerMode() == NbdHeaderMode.EXTENDED && client.info().canBlockStatusPayload();
    }

    /** The dirty bitmap over up to {@code length} bytes from {@code from}, then allocation over its dirty chunks. */
    CompletableFuture<Map<String, List<Extent>>> fetch(NbdClient client, long from, long length) {
        return client.blockStatus(from, length, false, List.of(dirtyContext)).thenCompose(d -> {
            List<Extent> dirty = d.getOrDefault(dirtyContext, List.of());
            if (dirty.isEmpty() || dirty.get(0).offset() != from) {
                throw new CompletionException(new NbdProtocolException("the dirty bitmap's block status at " + from
                    + " starts at " + (dirty.isEmpty() ? "nothing" : String.valueOf(dirty.get(0).offset()))));
            }
            long end = dirty.get(dirty.size() - 1).end();
            List<long[]> runs = dirtyRuns(dirty, from, end);
            List<CompletableFuture<Map<String, List<Extent>>>> parts = new ArrayList<>();
            for (long[] r : runs) {
                parts.add(allocation(client, r[0], r[1]));
            }
            return CompletableFuture.allOf(parts.toArray(CompletableFuture[]::new)).thenApply(v -> {
                Map<String, List<Extent>> out = new LinkedHashMap<>();
                out.put(dirtyContext, dirty);
                for (String ctx : allocationContexts) {
                    List<List<Extent>> real = new ArrayList<>();
                    for (CompletableFuture<Map<String, List<Extent>>> p : parts) {
                        real.add(p.join().get(ctx));
                    }
                    out.put(ctx, assemble(from, end, runs, real, standIn(ctx)));
                }
                return out;
            });
        });
    }

    private static int standIn(String ctx) {
        return NbdConstants.CONTEXT_ALLOCATION_DEPTH.equals(ctx) ? 1 : 0;
    }

    /** The dirty extents widened to whole chunks, clipped to {@code [from, end)}, merged across small gaps. */
    List<long[]> dirtyRuns(List<Extent> dirty, long from, long end) {
        List<long[]> runs = new ArrayList<>();
        for (Extent e : dirty) {
            if ((e.flags() & NbdConstants.STATE_DIRTY) == 0) {
                continue;
            }
            long s = Math.max(from, e.offset() / chunkSize * chunkSize);
            long t = Math.min(end, (e.end() + chunkSize - 1) / chunkSize * chunkSize);
            if (s >= t) {
                continue;
            }
            long[] last = runs.isEmpty() ? null : runs.get(runs.size() - 1);
            if (last != null && s <= last[1] + mergeGap) {
                last[1] = Math.max(last[1], t);
            } else {
                runs.add(new long[] {s, t});
            }
        }
        return runs;
    }

    /** Allocation over {@code [start, end)}, asking again from where a shorter reply stopped. */
    private CompletableFuture<Map<String, List<Extent>>> allocation(NbdClient client, long start, long end) {
        return client.blockStatus(start, end - start, false, allocationContexts).thenCompose(m -> {
            long covered = end;
            for (String ctx : allocationContexts) {
                List<Extent> l = m.getOrDefault(ctx, List.of());
                covered = Math.min(covered, l.isEmpty() ? start : l.get(l.size() - 1).end());
            }
            if (covered <= start) {
                throw new CompletionException(new NbdProtocolException("the block status for allocation at "
                    + start + " did not advance"));
            }
            Map<String, List<Extent>> here = new LinkedHashMap<>();
            for (String ctx : allocationContexts) {
                here.put(ctx, clip(m.get(ctx), start, covered));
            }
            if (covered >= end) {
                return CompletableFuture.completedFuture(here);
            }
            long c = covered;
            return allocation(client, c, end).thenApply(rest -> {
                for (String ctx : allocationContexts) {
                    here.get(ctx).addAll(rest.get(ctx));
                }
                return here;
            });
        });
    }

    private static List<Extent> clip(List<Extent> l, long start, long end) {
        List<Extent> out = new ArrayList<>();
        for (Extent e : l) {
            long s = Math.max(start, e.offset());
            long t = Math.min(end, e.end());
            if (s < t) {
                out.add(new Extent(s, t - s, e.flags()));
            }
        }
        return out;
    }

    /** {@code [from, end)} as the server's extents over the runs and stand-ins of {@code flags} between them. */
    static List<Extent> assemble(long from, long end, List<long[]> runs, List<List<Extent>> real, int flags) {
        List<Extent> out = new ArrayList<>();
        long pos = from;
        for (int i = 0; i < runs.size(); i++) {
            long[] r = runs.get(i);
            if (r[0] > pos) {
                out.add(new Extent(pos, r[0] - pos, flags));
            }
            out.addAll(real.get(i));
            pos = r[1];
        }
        if (end > pos) {
            out.add(new Extent(pos, end - pos, flags));
        }
        return out;
    }
}
