package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.netty.buffer.ByteBuf;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A read-only export of a {@link ChunkSource} (a backup): reads are assembled from cached, verified chunks, zero
 * chunks are holes ({@code OFFSET_HOLE} in reads, {@code HOLE|ZERO} in {@code base:allocation}) so
 * {@code qemu-img convert} and {@code nbdcopy} stay sparse, and sequential readers get read-ahead.
 */
public final class ChunkedImageExport implements NbdExport {
    private final String name;
    private final String description;
    private final ChunkSource source;
    private final ChunkCache cache;
    private final int readAhead;
    private final AtomicLong lastChunk = new AtomicLong(-2);

    /**
     * @param readAhead chunks to prefetch after a sequential read (0 disables read-ahead)
     */
    public ChunkedImageExport(String name, String description, ChunkSource source, ChunkCache cache, int readAhead) {
        if (readAhead < 0 || readAhead > 256) {
            throw new IllegalArgumentException("read-ahead " + readAhead + " (expected: 0 .. 256)");
        }
        this.name = name;
        this.description = description;
        this.source = source;
        this.cache = cache;
        this.readAhead = readAhead;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String description() {
        return description;
    }

    @Override
    public long size() {
        return source.size();
    }

    @Override
    public boolean readOnly() {
        return true;
    }

    @Override
    public int preferredBlockSize() {
        return Math.min(source.chunkSize(), 1 << 16) < 4096 ? 4096 : Math.min(source.chunkSize(), 1 << 16);
    }

    private int chunkLength(long index) {
        return (int) Math.min(source.chunkSize(), source.size() - index * source.chunkSize());
    }

    /** Chunk {@code index} with one reference for the caller. */
    private CompletableFuture<ByteBuf> chunk(long index) {
        return cache.load(source.contentKey(index), chunkLength(index), dst -> source.readChunk(index, dst));
    }

    @Override
    public CompletableFuture<ReadResult> read(long offset, int length) {
        int cs = source.chunkSize();
        long first = offset / cs;
        long last = (offset + length - 1) / cs;
        prefetch(first, last);
        if (first == last) {
            // the common case: one chunk, no aggregation
            int from = (int) (offset - first * cs);
            if (source.isZero(first)) {
                return CompletableFuture.completedFuture(ReadResult.zeroes(length));
            }
            return chunk(first).thenApply(buf -> ReadResult.of(buf.slice(from, length)));
        }
        int n = (int) (last - first + 1);
        List<CompletableFuture<ByteBuf>> parts = new ArrayList<>(n);
        for (long i = first; i <= last; i++) {
            parts.add(source.isZero(i) ? null : chunk(i));
        }
        CompletableFuture<?>[] all = parts.stream().filter(p -> p != null).toArray(CompletableFuture<?>[]::new);
        return CompletableFuture.allOf(all).handle((v, failure) -> {
            if (failure != null) {
                // release the chunks that did arrive, then fail
                for (CompletableFuture<ByteBuf> p : parts) {
                    if (p != null && !p.isCompletedExceptionally()) {
                        p.join().release();
                    }
                }
                throw failure instanceof CompletionException ce ? ce : new CompletionException(failure);
            }
            ReadResult.Builder b = ReadResult.builder();
            long pos = offset;
            long end = offset + length;
            for (int k = 0; k < parts.size(); k++) {
                long cStart = (first + k) * cs;
                int from = (int) (pos - cStart);
                int len = (int) (Math.min(end, cStart + cs) - pos);
                CompletableFuture<ByteBuf> p = parts.get(k);
                if (p == null) {
                    b.addZeroes(len);
                } else {
                    b.addData(p.join().slice(from, len)); // the slice carries the reference to the server
                }
                pos += len;
            }
            return b.build();
        });
    }

    /** Sequential access: load the next chunks in the background. */
    private void prefetch(long first, long last) {
        long prev = lastChunk.getAndSet(last);
        if (readAhead == 0 || (prev != first && prev != first - 1)) {
            return;
        }
        long n = (source.size() + source.chunkSize() - 1) / source.chunkSize();
        for (long i = last + 1; i <= last + readAhead && i < n; i++) {
            if (!source.isZero(i) && !cache.contains(source.contentKey(i))) {
                chunk(i).thenAccept(ByteBuf::release);
            }
        }
    }

    @Override
    public CompletableFuture<List<Extent>> allocation(long offset, long length) {
        // zero chunks are holes; bounded per request (ChunkRuns)
        return CompletableFuture.completedFuture(ChunkRuns.of(source.size(), source.chunkSize(), offset, length,
            source::isZero, NbdConstants.STATE_HOLE | NbdConstants.STATE_ZERO));
    }

    @Override
    public void close() throws IOException {
        // the source is owned by the provider
    }
}
