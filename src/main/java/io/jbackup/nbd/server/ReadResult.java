package io.jbackup.nbd.server;

import io.netty.buffer.ByteBuf;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * The result of {@link NbdExport#read}: consecutive segments covering the requested range from its start, each
 * either data (a buffer) or zeroes (a hole). The server sends data segments as {@code OFFSET_DATA} chunks and zero
 * segments as {@code OFFSET_HOLE} chunks (or fills zeroes into simple replies). Whoever holds a result owns its
 * buffers: the server releases them once written, or with {@link #release()} if it cannot write them.
 */
public final class ReadResult {
    /** A piece of a read. */
    public sealed interface Segment permits Data, Zero {
        int length();
    }

    /** Data bytes: the readable bytes of {@code buf}. */
    public record Data(ByteBuf buf) implements Segment {
        public Data {
            if (!buf.isReadable()) {
                throw new IllegalArgumentException("empty data segment");
            }
        }

        @Override
        public int length() {
            return buf.readableBytes();
        }
    }

    /** {@code length} bytes that read as zero. */
    public record Zero(int length) implements Segment {
        public Zero {
            if (length <= 0) {
                throw new IllegalArgumentException("zero segment length " + length + " (expected: > 0)");
            }
        }
    }

    private final List<Segment> segments;
    private final long length;

    private ReadResult(List<Segment> segments) {
        this.segments = Collections.unmodifiableList(segments);
        long n = 0;
        for (Segment s : segments) {
            n += s.length();
        }
        this.length = n;
    }

    /** A result of one data buffer. */
    public static ReadResult of(ByteBuf data) {
        List<Segment> l = new ArrayList<>(1);
        if (data.isReadable()) {
            l.add(new Data(data));
        } else {
            data.release();
        }
        return new ReadResult(l);
    }

    /** A result of {@code length} zero bytes. */
    public static ReadResult zeroes(int length) {
        return new Builder().addZeroes(length).build();
    }

    public static Builder builder() {
        return new Builder();
    }

    public List<Segment> segments() {
        return segments;
    }

    /** Total bytes covered. */
    public long length() {
        return length;
    }

    /** Releases every data buffer still held. Call at most once. */
    public void release() {
        for (Segment s : segments) {
            if (s instanceof Data d && d.buf().refCnt() > 0) {
                d.buf().release();
            }
        }
    }

    /** Collects segments in order; adjacent zero segments are merged. */
    public static final class Builder {
        private final List<Segment> segments = new ArrayList<>();
        private int pendingZeroes;

        /** Adds a data buffer (ownership passes to the result); an empty buffer is released and skipped. */
        public Builder addData(ByteBuf buf) {
            if (!buf.isReadable()) {
                buf.release();
                return this;
            }
            flushZeroes();
            segments.add(new Data(buf));
            return this;
        }

        /** Adds {@code length} zero bytes; 0 is ignored. */
        public Builder addZeroes(int length) {
            if (length < 0) {
                throw new IllegalArgumentException("zero length " + length);
            }
            pendingZeroes = Math.addExact(pendingZeroes, length);
            return this;
        }

        private void flushZeroes() {
            if (pendingZeroes > 0) {
                segments.add(new Zero(pendingZeroes));
                pendingZeroes = 0;
            }
        }

        /** Releases what was added so far (for error paths). */
        public void release() {
            new ReadResult(segments).release();
            segments.clear();
        }

        public ReadResult build() {
            flushZeroes();
            return new ReadResult(new ArrayList<>(segments));
        }
    }
}
