package io.jbackup.engine;

import io.jbackup.error.UsageException;
import io.jbackup.nbd.client.NbdClient;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicReference;

/**
 * An NBD export as restore target (e.g. qemu-nbd serving a new qcow2). Data chunks are written with WRITE,
 * zero chunks with WRITE_ZEROES (or zero-filled WRITEs when the server lacks it). Writes are pipelined: up to
 * {@code maxInFlight} are outstanding; the first failure is reported by the next call or by {@link #flush()}.
 */
public final class NbdTarget implements RestoreTarget {
    private static final int ZERO_WRITE = 1 << 20;
    private static final byte[] ZEROS = new byte[ZERO_WRITE];

    private final NbdClient client;
    private final Semaphore window;
    private final int maxInFlight;
    private final AtomicReference<Throwable> failure = new AtomicReference<>();
    /** The pooled buffers behind the views {@link #allocate} handed out and that are not yet written. */
    private final Map<ByteBuffer, ByteBuf> pooled = new IdentityHashMap<>();

    public NbdTarget(NbdClient client, long size, int maxInFlight) {
        if (client.info().readOnly()) {
            throw new UsageException("the NBD restore target is read-only; export it writable "
                + "(qemu-nbd without -r)");
        }
        if (client.info().size() < size) {
            throw new UsageException("the NBD restore target has " + client.info().size()
                + " bytes, the image needs " + size + "; create it with qemu-img create -f qcow2 FILE " + size);
        }
        this.client = client;
        this.maxInFlight = maxInFlight;
        this.window = new Semaphore(maxInFlight);
    }

    private void track(CompletableFuture<Void> f) {
        f.whenComplete((v, e) -> {
            if (e != null) {
                failure.compareAndSet(null, e instanceof CompletionException && e.getCause() != null ? e.getCause() : e);
            }
            window.release();
        });
    }

    private void acquire() throws IOException {
        check();
        try {
            window.acquire();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
    }

    private void check() throws IOException {
        Throwable t = failure.get();
        if (t != null) {
            throw NbdTargetException.failed(description(), "writing to", t);
        }
    }

    @Override
    public void write(long offset, byte[] data, int length) throws IOException {
        acquire();
        track(client.write(offset, data, 0, length, false));
    }

    /**
     * A view of a pooled direct buffer: a chunk is decoded into it and goes to the socket from it as it is, with no
     * copy and no array per chunk ({@link #takesBuffers()}). The chunks in flight are bounded by the restore's
     * read-ahead and this target's window, so is the memory.
     */
    @Override
    public ByteBuffer allocate(int size) {
        ByteBuf buf = PooledByteBufAllocator.DEFAULT.directBuffer(size, size);
        ByteBuffer view = buf.nioBuffer(0, size);
        synchronized (pooled) {
            pooled.put(view, buf);
        }
        return view;
    }

    @Override
    public boolean takesBuffers() {
        return true;
    }

    @Override
    public void discard(ByteBuffer buffer) {
        ByteBuf buf;
        synchronized (pooled) {
            buf = pooled.remove(buffer);
        }
        if (buf != null) {
            buf.release();
        }
    }

    /**
     * Sends {@code data}: a buffer from {@link #allocate} goes out as it is and returns to the pool once written;
     * any other is copied once into a pooled direct buffer.
     */
    @Override
    public void write(long offset, ByteBuffer data) throws IOException {
        acquire();
        ByteBuf buf;
        synchronized (pooled) {
            buf = pooled.remove(data);
        }
        if (buf != null) {
            int from = data.position();
            buf.setIndex(from, from + data.remaining());
        } else {
            buf = PooledByteBufAllocator.DEFAULT.directBuffer(data.remaining(), data.remaining());
            buf.writeBytes(data);
        }
        track(client.write(offset, buf, false)); // releases buf once written
    }

    @Override
    public void writeZeroes(long offset, long length) throws IOException {
        if (client.info().canWriteZeroes()) {
            long pos = offset;
            long end = offset + length;
            while (pos < end) {
                long n = Math.min(end - pos, 1L << 30);
                acquire();
                track(client.writeZeroes(pos, n, false));
                pos += n;
            }
            return;
        }
        for (long pos = offset; pos < offset + length; pos += ZERO_WRITE) {
            int n = (int) Math.min(ZERO_WRITE, offset + length - pos);
            acquire();
            track(client.write(pos, ZEROS, 0, n, false));
        }
    }

    @Override
    public boolean needsZeroes() {
        return true;
    }

    @Override
    public void flush() throws IOException {
        try {
            window.acquire(maxInFlight);
            window.release(maxInFlight);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
        check();
        if (client.info().canFlush()) {
            try {
                client.flush().join();
            } catch (CompletionException e) {
                throw NbdTargetException.failed(description(), "flushing", e.getCause());
            }
        }
    }

    @Override
    public void close() throws IOException {
        client.close();
        synchronized (pooled) {
            pooled.values().forEach(ByteBuf::release);
            pooled.clear();
        }
    }

    /** The export's URI ({@code nbd+unix:///EXPORT?socket=PATH}, {@code nbd://HOST/EXPORT}). */
    @Override
    public String description() {
        return client.uri().toString();
    }

    @Override
    public String format() {
        return "nbd";
    }

    @Override
    public String toString() {
        return description();
    }
}
