package io.jbackup.objectstore;

import java.io.FilterInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InterruptedIOException;
import java.util.function.LongSupplier;

/**
 * A token bucket that caps the upload bandwidth ({@code --limit-upload}): every byte of a PUT or part body takes a
 * token; tokens come back at {@code bytesPerSecond}, up to a burst of a quarter of a second. A reader that takes more
 * than the bucket holds runs into debt and sleeps until the debt is paid, so concurrent uploads share the rate.
 * Clock and sleeper are injectable: tests check the computed waits, not the wall clock.
 */
public final class UploadLimiter {
    /** Sleeps for a number of nanoseconds. */
    @FunctionalInterface
    public interface Sleeper {
        void sleep(long nanos) throws InterruptedException;
    }

    private static final double NANOS = 1e9;
    private final long bytesPerSecond;
    private final double capacity;
    private final LongSupplier clock;
    private final Sleeper sleeper;
    private double tokens;
    private long last;

    /** A limiter on the system clock. */
    public UploadLimiter(long bytesPerSecond) {
        this(bytesPerSecond, System::nanoTime, n -> Thread.sleep(n / 1_000_000, (int) (n % 1_000_000)));
    }

    /** A limiter on {@code clock} (nanoseconds) that waits with {@code sleeper}. */
    public UploadLimiter(long bytesPerSecond, LongSupplier clock, Sleeper sleeper) {
        if (bytesPerSecond <= 0) {
            throw new IllegalArgumentException("upload limit " + bytesPerSecond + " bytes/s");
        }
        this.bytesPerSecond = bytesPerSecond;
        this.capacity = Math.max(bytesPerSecond / 4.0, 1);
        this.clock = clock;
        this.sleeper = sleeper;
        this.tokens = capacity;
        this.last = clock.getAsLong();
    }

    public long bytesPerSecond() {
        return bytesPerSecond;
    }

    /** Takes {@code n} tokens and returns how many nanoseconds the caller must wait before it sends them. */
    synchronized long reserve(long n) {
        long now = clock.getAsLong();
        tokens = Math.min(capacity, tokens + (now - last) * bytesPerSecond / NANOS);
        last = now;
        tokens -= n;
        return tokens >= 0 ? 0 : (long) Math.ceil(-tokens * NANOS / bytesPerSecond);
    }

    /** Takes {@code n} tokens, waiting as long as needed; returns the wait in nanoseconds. */
    public long acquire(long n) throws InterruptedIOException {
        long wait = reserve(n);
        if (wait > 0) {
            try {
                sleeper.sleep(wait);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new InterruptedIOException("interrupted while the upload limit paced an upload");
            }
        }
        return wait;
    }

    /** {@code in}, read at most at this limiter's rate (shared with every other stream it wraps). */
    public InputStream wrap(InputStream in) {
        return new FilterInputStream(in) {
            @Override
            public int read() throws IOException {
                int b = super.read();
                if (b >= 0) {
                    acquire(1);
                }
                return b;
            }

            @Override
            public int read(byte[] buf, int off, int len) throws IOException {
                int n = super.read(buf, off, len);
                if (n > 0) {
                    acquire(n);
                }
                return n;
            }
        };
    }
}
