package io.jbackup.nbd.server;

import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/**
 * A bounded cache of decompressed chunks keyed by content (digest), shared by every export of a server.
 *
 * <p>Holds at most {@code maxBytes} of chunk data in least-recently-used order. Concurrent requests for a chunk
 * that is being loaded share one load. Failed loads are not cached.
 */
public final class ChunkCache {
    private final long maxBytes;
    private final LinkedHashMap<Object, byte[]> entries = new LinkedHashMap<>(256, 0.75f, true);
    private final Map<Object, CompletableFuture<byte[]>> loading = new HashMap<>();
    private long bytes;
    private long hits;
    private long misses;

    public ChunkCache(long maxBytes) {
        if (maxBytes < 0) {
            throw new IllegalArgumentException("chunk cache size " + maxBytes + " (expected: >= 0)");
        }
        this.maxBytes = maxBytes;
    }

    /** The chunk for {@code key}, from the cache or loaded with {@code loader}. */
    public CompletableFuture<byte[]> get(Object key, java.util.function.Supplier<CompletableFuture<byte[]>> loader) {
        CompletableFuture<byte[]> f;
        synchronized (this) {
            byte[] b = entries.get(key);
            if (b != null) {
                hits++;
                return CompletableFuture.completedFuture(b);
            }
            f = loading.get(key);
            if (f != null) {
                hits++;
                return f;
            }
            misses++;
            f = new CompletableFuture<>();
            loading.put(key, f);
        }
        CompletableFuture<byte[]> result = f;
        CompletableFuture<byte[]> load;
        try {
            load = loader.get();
        } catch (RuntimeException e) {
            load = CompletableFuture.failedFuture(e);
        }
        load.whenComplete((b, e) -> {
            synchronized (this) {
                loading.remove(key);
                if (e == null) {
                    put(key, b);
                }
            }
            if (e != null) {
                result.completeExceptionally(e);
            } else {
                result.complete(b);
            }
        });
        return result;
    }

    /** Whether the chunk is cached or being loaded (read-ahead skips those). */
    public synchronized boolean contains(Object key) {
        return entries.containsKey(key) || loading.containsKey(key);
    }

    private void put(Object key, byte[] b) {
        if (b.length > maxBytes) {
            return;
        }
        byte[] old = entries.put(key, b);
        if (old != null) {
            bytes -= old.length;
        }
        bytes += b.length;
        Iterator<Map.Entry<Object, byte[]>> it = entries.entrySet().iterator();
        while (bytes > maxBytes && it.hasNext()) {
            bytes -= it.next().getValue().length;
            it.remove();
        }
    }

    public synchronized long bytes() {
        return bytes;
    }

    @Override
    public synchronized String toString() {
        return "ChunkCache[" + bytes + "/" + maxBytes + " bytes, " + entries.size() + " chunks, hits " + hits
            + ", misses " + misses + "]";
    }
}
