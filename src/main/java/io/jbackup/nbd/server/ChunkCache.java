package io.jbackup.nbd.server;

import io.jbackup.error.UsageException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.internal.PlatformDependent;

import java.nio.ByteBuffer;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * A bounded cache of decompressed chunks keyed by content (digest), shared by every export of a server.
 *
 * <p>Chunks live off the Java heap, in direct buffers from netty's pooled allocator: a cache of hundreds of
 * 1 MiB chunks on the heap makes every collector work hard (humongous objects in G1, a full collection every few
 * hundred MiB of turnover in ParallelGC), and direct buffers go to the socket without another copy. The memory
 * counts against the JVM's direct-memory limit ({@code -XX:MaxDirectMemorySize}, by default the heap size).
 *
 * <p>Holds at most {@code maxBytes} of chunk data in least-recently-used order. Entries are reference counted:
 * {@link #get} hands out a reference the caller must release (slices of it reach the socket and are released
 * once written), so an entry evicted while a reply still uses it is freed when that reply is done - the bound
 * applies to what the cache holds, replies in flight come on top (bounded by the server's per-connection
 * limits). Concurrent requests for a chunk that is being loaded share one load. Failed loads are not cached.
 *
 * <p>An evicted buffer that nothing else references any more is kept as a spare (at most {@link #MAX_SPARES}, on
 * top of {@code maxBytes}) and the next load of a chunk of its size decodes into it. Without that, a pass over a
 * disk larger than the cache frees every buffer it evicts and allocates a new one for every chunk it loads, and
 * netty's pool gives its empty 4 MiB chunks back and zeroes and faults in new ones: 0.2 CPU-s on the event loops
 * of one {@code nbdcopy} of the 2 GiB dataset through a 256 MiB cache (bench/README.md).
 */
public final class ChunkCache {
    private final long maxBytes;
    private final ByteBufAllocator alloc;
    private final LinkedHashMap<Object, ByteBuf> entries = new LinkedHashMap<>(256, 0.75f, true);
    private final Map<Object, List<CompletableFuture<ByteBuf>>> loading = new HashMap<>();
    /** Evicted buffers with no other reference, for the next loads. */
    private final ArrayDeque<ByteBuf> spares = new ArrayDeque<>();
    private long bytes;
    private boolean closed;
    private long hits;
    private long misses;

    /** Evicted buffers kept for reuse, at most. */
    static final int MAX_SPARES = 8;

    /** Direct memory left for network buffers, TLS and overlays besides the cache. */
    static final long DIRECT_RESERVE = 64L << 20;

    /**
     * A cache in netty's pooled direct memory. Fails if {@code maxBytes} plus a reserve of 64 MiB for network
     * buffers exceeds the JVM's direct-memory limit, naming the JVM option to raise it.
     */
    public ChunkCache(long maxBytes) {
        this(maxBytes, PooledByteBufAllocator.DEFAULT);
        long limit = PlatformDependent.maxDirectMemory();
        if (limit > 0 && maxBytes > limit - DIRECT_RESERVE) {
            throw new UsageException("a chunk cache of " + (maxBytes >> 20) + " MiB does not fit the JVM's "
                + "direct memory limit of " + (limit >> 20) + " MiB (64 MiB of it are kept for network buffers); "
                + "use a smaller --cache-size or raise the limit, e.g. JBACKUP_OPTS=\"-Xmx512m -XX:+UseParallelGC "
                + "-XX:MaxDirectMemorySize=" + ((maxBytes + DIRECT_RESERVE + (1 << 20) - 1) >> 20) + "m\"");
        }
    }

    public ChunkCache(long maxBytes, ByteBufAllocator alloc) {
        if (maxBytes < 0) {
            throw new IllegalArgumentException("chunk cache size " + maxBytes + " (expected: >= 0)");
        }
        this.maxBytes = maxBytes;
        this.alloc = alloc;
    }

    /** The configured bound in bytes. */
    public long maxBytes() {
        return maxBytes;
    }

    /**
     * The chunk for {@code key}, from the cache or loaded with {@code loader} (which returns the chunk's bytes,
     * at least {@code length} of them). The returned buffer holds exactly {@code length} readable bytes and one
     * reference owned by the caller: release it (or pass it on to something that does).
     */
    public CompletableFuture<ByteBuf> get(Object key, int length, Supplier<CompletableFuture<byte[]>> loader) {
        CompletableFuture<ByteBuf> mine = new CompletableFuture<>();
        CompletableFuture<ByteBuf> found = cachedOrJoined(key, mine);
        if (found != null) {
            return found;
        }
        CompletableFuture<byte[]> load;
        try {
            load = loader.get();
        } catch (RuntimeException e) {
            load = CompletableFuture.failedFuture(e);
        }
        load.whenComplete((data, e) -> loaded(key, length, data, e));
        return mine;
    }

    /**
     * {@link #get} with a loader that decodes the chunk straight into the cache's direct buffer ({@code length}
     * bytes from the position of the buffer it is given; no array, no copy), instead of returning an array.
     */
    public CompletableFuture<ByteBuf> load(Object key, int length,
                                           Function<ByteBuffer, CompletableFuture<Void>> decoder) {
        CompletableFuture<ByteBuf> mine = new CompletableFuture<>();
        CompletableFuture<ByteBuf> found = cachedOrJoined(key, mine);
        if (found != null) {
            return found;
        }
        ByteBuf buf;
        try {
            buf = newBuffer(length);
        } catch (RuntimeException | OutOfMemoryError e) {
            done(key, null, e);
            return mine;
        }
        ByteBuffer dst = buf.nioBuffer(0, length);
        CompletableFuture<Void> load;
        try {
            load = decoder.apply(dst);
        } catch (RuntimeException e) {
            load = CompletableFuture.failedFuture(e);
        }
        load.whenComplete((v, e) -> {
            Throwable err = e;
            if (err == null && dst.position() != length) {
                err = new IllegalStateException("chunk holds " + dst.position() + " bytes, expected " + length);
            }
            if (err != null) {
                buf.release();
                done(key, null, err);
            } else {
                done(key, buf.writerIndex(length), null);
            }
        });
        return mine;
    }

    /**
     * The cached chunk, or {@code mine} joined to a load in flight; null when nothing has {@code key}: it is then
     * registered as loading with {@code mine} waiting, and the caller loads it.
     */
    private synchronized CompletableFuture<ByteBuf> cachedOrJoined(Object key, CompletableFuture<ByteBuf> mine) {
        ByteBuf b = entries.get(key);
        if (b != null) {
            hits++;
            return CompletableFuture.completedFuture(b.retainedDuplicate());
        }
        List<CompletableFuture<ByteBuf>> waiters = loading.get(key);
        if (waiters != null) {
            hits++;
            waiters.add(mine);
            return mine;
        }
        misses++;
        waiters = new ArrayList<>(2);
        waiters.add(mine);
        loading.put(key, waiters);
        return null;
    }

    private void loaded(Object key, int length, byte[] data, Throwable failure) {
        ByteBuf buf = null;
        Throwable err = failure;
        if (err == null) {
            try {
                if (data.length < length) {
                    throw new IllegalStateException("chunk holds " + data.length + " bytes, expected " + length);
                }
                buf = newBuffer(length).writeBytes(data, 0, length);
            } catch (RuntimeException | OutOfMemoryError e) {
                err = e;
            }
        }
        done(key, buf, err);
    }

    /** An empty buffer of capacity {@code length}: a spare of that size, or a new one. */
    private ByteBuf newBuffer(int length) {
        synchronized (this) {
            for (Iterator<ByteBuf> it = spares.iterator(); it.hasNext(); ) {
                ByteBuf b = it.next();
                if (b.capacity() == length) {
                    it.remove();
                    return b.clear();
                }
            }
        }
        return alloc.directBuffer(length, length);
    }

    /**
     * Gives up the cache's reference to {@code b}, taken out of {@link #entries}: kept as a spare when nothing else
     * references it (nothing can take a new reference once it is out of the map; both happen under this lock).
     */
    private void drop(ByteBuf b) {
        if (!closed && b.refCnt() == 1 && spares.size() < MAX_SPARES) {
            spares.add(b);
        } else {
            b.release();
        }
    }

    /** Hands a loaded chunk (or the failure, with {@code buf} null) to every waiter, and caches it. */
    private void done(Object key, ByteBuf buf, Throwable err) {
        List<CompletableFuture<ByteBuf>> waiters;
        List<ByteBuf> handed = new ArrayList<>(2);
        synchronized (this) {
            waiters = loading.remove(key);
            if (buf != null) {
                // one reference per waiter, taken under the lock so that an eviction cannot free the buffer first
                for (int i = 0; i < waiters.size(); i++) {
                    handed.add(buf.retainedDuplicate());
                }
                put(key, buf);
            }
        }
        for (int i = 0; i < waiters.size(); i++) {
            if (buf != null) {
                waiters.get(i).complete(handed.get(i));
            } else {
                waiters.get(i).completeExceptionally(err);
            }
        }
    }

    /** Whether the chunk is cached or being loaded (read-ahead skips those). */
    public synchronized boolean contains(Object key) {
        return entries.containsKey(key) || loading.containsKey(key);
    }

    /** Takes over {@code b}'s reference (released at once if it does not fit, or after {@link #close}). */
    private void put(Object key, ByteBuf b) {
        if (closed || b.readableBytes() > maxBytes) {
            b.release();
            return;
        }
        ByteBuf old = entries.put(key, b);
        if (old != null) {
            bytes -= old.readableBytes();
            drop(old);
        }
        bytes += b.readableBytes();
        Iterator<Map.Entry<Object, ByteBuf>> it = entries.entrySet().iterator();
        while (bytes > maxBytes && it.hasNext()) {
            ByteBuf victim = it.next().getValue();
            it.remove();
            bytes -= victim.readableBytes();
            drop(victim);
        }
    }

    /**
     * Drops every entry and caches nothing from now on (loads still running complete their callers but are not
     * kept). Buffers still used by replies are freed when those are done.
     */
    public synchronized void close() {
        closed = true;
        clear();
    }

    /** Drops every entry (buffers still used by replies are freed when those are done). */
    public synchronized void clear() {
        for (ByteBuf b : entries.values()) {
            b.release();
        }
        entries.clear();
        bytes = 0;
        for (ByteBuf b : spares) {
            b.release();
        }
        spares.clear();
    }

    public synchronized long bytes() {
        return bytes;
    }

    public synchronized long hits() {
        return hits;
    }

    public synchronized long misses() {
        return misses;
    }

    @Override
    public synchronized String toString() {
        return "ChunkCache[" + bytes + "/" + maxBytes + " bytes, " + entries.size() + " chunks, hits " + hits
            + ", misses " + misses + "]";
    }
}
