package io.jbackup.nbd.server;

import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The off-heap chunk cache: shared loads, LRU bound, reference counting across eviction, failures, close, reuse of
 * evicted buffers.
 */
class ChunkCacheTest {
    private static final int LEN = 1024;

    private static byte[] chunk(int fill) {
        byte[] b = new byte[LEN + 16]; // loaders may return more than the chunk's length
        Arrays.fill(b, (byte) fill);
        return b;
    }

    private static void assertFilled(ByteBuf b, int fill) {
        assertEquals(LEN, b.readableBytes());
        for (int i = 0; i < LEN; i++) {
            assertEquals((byte) fill, b.getByte(b.readerIndex() + i));
        }
    }

    @Test
    void concurrentMissesShareOneLoadAndEveryCallerOwnsAReference() {
        ChunkCache c = new ChunkCache(4 * LEN, new UnpooledByteBufAllocator(true));
        AtomicInteger loads = new AtomicInteger();
        CompletableFuture<byte[]> pending = new CompletableFuture<>();
        CompletableFuture<ByteBuf> a = c.get("k", LEN, () -> {
            loads.incrementAndGet();
            return pending;
        });
        CompletableFuture<ByteBuf> b = c.get("k", LEN, () -> {
            loads.incrementAndGet();
            return pending;
        });
        assertTrue(c.contains("k"));
        assertFalse(a.isDone() || b.isDone());
        pending.complete(chunk(7));
        ByteBuf x = a.join();
        ByteBuf y = b.join();
        assertEquals(1, loads.get());
        assertFilled(x, 7);
        assertFilled(y, 7);
        x.readBytes(new byte[100]); // each reference has its own indices
        assertFilled(y, 7);
        ByteBuf z = c.get("k", LEN, () -> {
            throw new AssertionError("a hit does not load");
        }).join();
        assertFilled(z, 7);
        assertEquals(1, c.misses());
        assertEquals(2, c.hits());
        x.release();
        y.release();
        z.release();
        assertEquals(LEN, c.bytes());
    }

    @Test
    void evictionIsLeastRecentlyUsedAndInUseBuffersStayValidUntilReleased() {
        ChunkCache c = new ChunkCache(2 * LEN, new UnpooledByteBufAllocator(true));
        ByteBuf first = c.get(1, LEN, () -> CompletableFuture.completedFuture(chunk(1))).join();
        c.get(2, LEN, () -> CompletableFuture.completedFuture(chunk(2))).join().release();
        c.get(1, LEN, () -> CompletableFuture.completedFuture(chunk(9))).join().release(); // 1 is now recent
        c.get(3, LEN, () -> CompletableFuture.completedFuture(chunk(3))).join().release(); // evicts 2
        assertEquals(2 * LEN, c.bytes());
        assertTrue(c.contains(1) && c.contains(3) && !c.contains(2));
        c.get(4, LEN, () -> CompletableFuture.completedFuture(chunk(4))).join().release(); // evicts 1
        assertFalse(c.contains(1));
        assertTrue(first.refCnt() > 0, "evicted while in use: still readable");
        assertFilled(first, 1);
        first.release();
        assertEquals(0, first.refCnt(), "freed once the last user released it");
    }

    @Test
    void failedLoadsAreNotCachedAndShortChunksAreRefused() {
        ChunkCache c = new ChunkCache(4 * LEN, new UnpooledByteBufAllocator(true));
        CompletableFuture<ByteBuf> f = c.get("bad", LEN,
            () -> CompletableFuture.failedFuture(new IllegalStateException("digest mismatch")));
        CompletionException e = assertThrows(CompletionException.class, f::join);
        assertTrue(e.getCause().getMessage().contains("digest mismatch"));
        assertFalse(c.contains("bad"));
        assertThrows(CompletionException.class,
            () -> c.get("short", LEN, () -> CompletableFuture.completedFuture(new byte[10])).join());
        ByteBuf ok = c.get("bad", LEN, () -> CompletableFuture.completedFuture(chunk(5))).join();
        assertFilled(ok, 5);
        ok.release();
        assertEquals(LEN, c.bytes());
    }

    @Test
    void closeDropsEntriesAndKeepsNothingLater() {
        ChunkCache c = new ChunkCache(4 * LEN, new UnpooledByteBufAllocator(true));
        ByteBuf held = c.get("a", LEN, () -> CompletableFuture.completedFuture(chunk(1))).join();
        c.close();
        assertEquals(0, c.bytes());
        assertFilled(held, 1);
        held.release();
        assertEquals(0, held.refCnt());
        ByteBuf later = c.get("b", LEN, () -> CompletableFuture.completedFuture(chunk(2))).join();
        assertFilled(later, 2);
        assertFalse(c.contains("b"));
        later.release();
        assertEquals(0, later.refCnt());
    }

    /** Unpooled direct buffers, counting how many were allocated and keeping them to check they were all freed. */
    private static final class CountingAllocator extends AbstractByteBufAllocator {
        final List<ByteBuf> made = new ArrayList<>();

        CountingAllocator() {
            super(true);
        }

        @Override
        protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
            throw new AssertionError("the cache allocates direct buffers only");
        }

        @Override
        protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
            ByteBuf b = Unpooled.directBuffer(initialCapacity, maxCapacity);
            made.add(b);
            return b;
        }

        @Override
        public boolean isDirectBufferPooled() {
            return false;
        }
    }

    /** Loads {@code key} through the decoding path, filling the chunk with {@code fill}. */
    private static ByteBuf load(ChunkCache c, Object key, int fill) {
        return c.load(key, LEN, dst -> {
            byte[] b = chunk(fill);
            dst.put(b, 0, LEN);
            return CompletableFuture.completedFuture(null);
        }).join();
    }

    @Test
    void aPassLargerThanTheCacheReusesEvictedBuffersInsteadOfAllocating() {
        CountingAllocator alloc = new CountingAllocator();
        ChunkCache c = new ChunkCache(4 * LEN, alloc);
        for (int i = 0; i < 100; i++) {
            ByteBuf b = load(c, i, i);
            assertFilled(b, i);
            b.release();
        }
        // four cached and one spare in turn: the buffers of the first loads serve all the others
        assertEquals(5, alloc.made.size());
        for (int i = 96; i < 100; i++) {
            ByteBuf b = c.get(i, LEN, () -> {
                throw new AssertionError("a hit does not load");
            }).join();
            assertFilled(b, i);
            b.release();
        }
        // the array path reuses them too
        ByteBuf viaArray = c.get("array", LEN, () -> CompletableFuture.completedFuture(chunk(3))).join();
        assertFilled(viaArray, 3);
        viaArray.release();
        assertEquals(5, alloc.made.size());
        c.close();
        for (ByteBuf b : alloc.made) {
            assertEquals(0, b.refCnt(), "close frees the cached and the spare buffers");
        }
    }

    @Test
    void aBufferStillReferencedWhenEvictedIsNeverReused() {
        CountingAllocator alloc = new CountingAllocator();
        ChunkCache c = new ChunkCache(2 * LEN, alloc);
        ByteBuf held = load(c, "held", 9);
        ByteBuf slice = held.retainedSlice(100, 200); // as a reply's payload on its way to the socket
        held.release();
        for (int i = 0; i < 40; i++) {
            load(c, i, i).release();
        }
        for (int i = 0; i < 200; i++) {
            assertEquals((byte) 9, slice.getByte(i), "a buffer evicted while in use was overwritten");
        }
        assertEquals(1, slice.refCnt());
        slice.release();
        assertEquals(0, slice.refCnt(), "freed once its last user let go");
        c.close();
        for (ByteBuf b : alloc.made) {
            assertEquals(0, b.refCnt());
        }
    }
}
