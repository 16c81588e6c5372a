package io.jbackup.engine;

import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A fixed set of chunk-sized byte arrays: the only place the backup pipeline holds chunk data, so its size
 * ({@code count * size}) bounds the pipeline's memory regardless of disk size. Arrays are created lazily.
 */
final class BufferPool {
    private final BlockingQueue<byte[]> free;
    private final int size;
    private final int count;
    private int created;

    BufferPool(int count, int size) {
        if (count <= 0 || size <= 0) {
            throw new IllegalArgumentException("buffer pool count " + count + " size " + size + " (expected: > 0)");
        }
        this.free = new ArrayBlockingQueue<>(count);
        this.size = size;
        this.count = count;
    }

    /** Takes a buffer without waiting, or returns null when all are in use. */
    synchronized byte[] tryAcquire() {
        byte[] b = free.poll();
        if (b == null && created < count) {
            created++;
            b = new byte[size];
        }
        return b;
    }

    /** Waits up to {@code millis} for a buffer. */
    byte[] acquire(long millis) throws InterruptedException {
        byte[] b = tryAcquire();
        return b != null ? b : free.poll(millis, TimeUnit.MILLISECONDS);
    }

    void release(byte[] b) {
        if (b.length != size || !free.offer(b)) {
            throw new IllegalStateException("buffer released twice or foreign buffer (length " + b.length + ")");
        }
    }

    int inUse() {
        synchronized (this) {
            return created - free.size();
        }
    }
}
