package io.jbackup.nbd.client;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdCommand;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.nbd.protocol.NbdReply;
import io.jbackup.nbd.protocol.NbdReplyChunkType;
import io.netty.buffer.ByteBuf;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;

/**
 * One request on one connection, from submission to its final reply. Confined to the connection's event loop once
 * submitted. Subclasses check every reply chunk against the request (type, range, context) and reassemble the
 * result; a chunk that does not fit is a protocol error that ends the connection.
 */
abstract class Request {
    final NbdCommand command;
    final int flags;
    final long offset;
    final long length;
    /** WRITE payload until it is handed to the encoder. */
    ByteBuf payload;
    long cookie;
    long deadlineNanos;
    private NbdReply.Error firstError;

    Request(NbdCommand command, int flags, long offset, long length, ByteBuf payload) {
        this.command = command;
        this.flags = flags;
        this.offset = offset;
        this.length = length;
        this.payload = payload;
    }

    String describe() {
        return switch (command.name()) {
            case "FLUSH", "DISC" -> command.name();
            default -> command.name() + " of " + length + " bytes at offset " + offset;
        };
    }

    String cookieText() {
        return String.format("0x%x", cookie);
    }

    /** Number of data bytes a successful simple reply carries (READ without structured replies). */
    long simpleReplyDataLength(boolean structured) {
        return 0;
    }

    /** A simple reply; {@code dataLength} bytes of READ data follow if it is non-zero. */
    void onSimple(NbdReply.Simple r, boolean structured) throws NbdProtocolException {
        if (r.error().code() != 0) {
            firstError = new NbdReply.Error(r.cookie(), NbdConstants.REPLY_FLAG_DONE, NbdReplyChunkType.ERROR,
                r.error(), "", -1);
        }
    }

    /** Start of READ data at absolute export offset {@code at} ({@code len} bytes in ReplyData pieces). */
    void onDataHeader(long at, long len) throws NbdProtocolException {
        throw unexpected("OFFSET_DATA");
    }

    /** A piece of READ data: {@code buf} holds the bytes for absolute offset {@code at}. */
    void onData(long at, ByteBuf buf) {
        throw new IllegalStateException("no data expected for " + describe());
    }

    void onHole(NbdReply.OffsetHole h) throws NbdProtocolException {
        throw unexpected("OFFSET_HOLE");
    }

    void onBlockStatus(NbdReply.BlockStatus b) throws NbdProtocolException {
        throw unexpected("BLOCK_STATUS");
    }

    void onError(NbdReply.Error e) throws NbdProtocolException {
        if (e.offset() >= 0 && (e.offset() < offset || e.offset() >= offset + Math.max(length, 1))) {
            throw new NbdProtocolException(String.format("ERROR_OFFSET chunk for %s (cookie %s) names offset %d, "
                + "outside the request", describe(), cookieText(), e.offset()));
        }
        if (firstError == null) {
            firstError = e;
        }
    }

    NbdProtocolException unexpected(String what) {
        return new NbdProtocolException(String.format("server sent a %s chunk in reply to %s (cookie %s)", what,
            describe(), cookieText()));
    }

    /**
     * The final chunk arrived: complete the future.
     *
     * @throws NbdProtocolException if the reply claims success but is inconsistent (the request has failed with it
     *                              and the connection must be dropped)
     */
    final void finish(long exportSize) throws NbdProtocolException {
        if (firstError != null) {
            NbdReply.Error e = firstError;
            String msg = "server failed " + describe() + ": " + e.error()
                + (e.message().isEmpty() ? "" : " (" + e.message() + ")")
                + (e.offset() >= 0 ? " at offset " + e.offset() : "");
            fail(new NbdCommandException(msg, e.error(), e.offset()));
            return;
        }
        try {
            succeed(exportSize);
        } catch (NbdProtocolException ex) {
            fail(ex);
            throw ex;
        }
    }

    /** Whether the server failed this request with {@code ESHUTDOWN} (the client must then disconnect). */
    boolean serverShuttingDown() {
        return firstError != null && firstError.error().equals(NbdError.ESHUTDOWN);
    }

    abstract void succeed(long exportSize) throws NbdProtocolException;

    abstract void fail(Throwable cause);

    /** Releases the payload if the request never reached the encoder. */
    void releasePayload() {
        if (payload != null) {
            payload.release();
            payload = null;
        }
    }

    /** WRITE, TRIM, WRITE_ZEROES, FLUSH, CACHE: success or an error, nothing else. */
    static final class Plain extends Request {
        final CompletableFuture<Void> future;

        Plain(NbdCommand command, int flags, long offset, long length, ByteBuf payload, CompletableFuture<Void> f) {
            super(command, flags, offset, length, payload);
            this.future = f;
        }

        @Override
        void succeed(long exportSize) {
            future.complete(null);
        }

        @Override
        void fail(Throwable cause) {
            future.completeExceptionally(cause);
        }
    }

    /** READ into a caller's array, reassembled from data and hole chunks that must cover it exactly once. */
    static final class Read extends Request {
        final byte[] dst;
        final int dstOffset;
        final CompletableFuture<Void> future;
        private final ReadObserver observer;
        /** fast path: chunks arriving in order cover [offset, nextOffset) */
        private long nextOffset;
        /** slow path: covered ranges start -&gt; end, once chunks arrive out of order */
        private TreeMap<Long, Long> ranges;
        private long covered;

        Read(long offset, byte[] dst, int dstOffset, int length, CompletableFuture<Void> f, ReadObserver observer) {
            super(NbdCommand.READ, 0, offset, length, null);
            this.dst = dst;
            this.dstOffset = dstOffset;
            this.future = f;
            this.observer = observer;
            this.nextOffset = offset;
        }

        @Override
        long simpleReplyDataLength(boolean structured) {
            return structured ? 0 : length;
        }

        @Override
        void onSimple(NbdReply.Simple r, boolean structured) throws NbdProtocolException {
            if (structured) {
                throw new NbdProtocolException(String.format("server sent a simple reply to %s (cookie %s) although "
                    + "structured replies were negotiated", describe(), cookieText()));
            }
            super.onSimple(r, false);
            if (r.dataLength() > 0) {
                cover(offset, r.dataLength(), "simple reply data");
            }
        }

        @Override
        void onDataHeader(long at, long len) throws NbdProtocolException {
            cover(at, len, "OFFSET_DATA");
        }

        @Override
        void onData(long at, ByteBuf buf) {
            int n = buf.readableBytes();
            int to = dstOffset + (int) (at - offset);
            buf.getBytes(buf.readerIndex(), dst, to, n);
            if (observer != null) {
                observer.received(to, n);
            }
        }

        @Override
        void onHole(NbdReply.OffsetHole h) throws NbdProtocolException {
            cover(h.offset(), h.length(), "OFFSET_HOLE");
            int from = dstOffset + (int) (h.offset() - offset);
            Arrays.fill(dst, from, from + (int) h.length(), (byte) 0);
            if (observer != null) {
                observer.received(from, (int) h.length());
            }
        }

        private void cover(long at, long len, String what) throws NbdProtocolException {
            // no at + len before the range check: a hostile offset near 2^63 would overflow it
            if (at < offset || len > length || at - offset > length - len) {
                throw new NbdProtocolException(String.format("%s chunk [%d, %s) for %s (cookie %s) lies outside the "
                    + "request [%d, %d)", what, at, Long.toUnsignedString(at + len), describe(), cookieText(), offset,
                    offset + length));
            }
            long end = at + len;
            if (ranges == null && at == nextOffset) {
                nextOffset = end;
            } else {
                if (ranges == null) {
                    ranges = new TreeMap<>();
                    if (nextOffset > offset) {
                        ranges.put(offset, nextOffset);
                    }
                }
                Map.Entry<Long, Long> before = ranges.floorEntry(at);
                Map.Entry<Long, Long> after = ranges.ceilingEntry(at);
                if ((before != null && before.getValue() > at) || (after != null && after.getKey() < end)) {
                    throw new NbdProtocolException(String.format("%s chunk [%d, %d) for %s (cookie %s) overlaps data "
                        + "already received", what, at, end, describe(), cookieText()));
                }
                ranges.put(at, end);
            }
            covered += len;
        }

        @Override
        void succeed(long exportSize) throws NbdProtocolException {
            if (covered != length) {
                throw new NbdProtocolException(String.format("server reported success for %s (cookie %s) but sent "
                    + "only %d of %d bytes", describe(), cookieText(), covered, length));
            }
            future.complete(null);
        }

        @Override
        void fail(Throwable cause) {
            future.completeExceptionally(cause);
        }
    }

    /** BLOCK_STATUS for every negotiated context: one chunk per context, extents validated and clipped. */
    static final class BlockStatus extends Request {
        final CompletableFuture<Map<String, List<Extent>>> future;
        private final Map<String, List<Extent>> result = new HashMap<>();
        private final Map<Integer, String> contexts;

        /**
         * @param contexts the contexts asked for (id to name): every negotiated one, or with a {@code payload} those
         *                 it lists
         * @param payload  null, or with extended headers {@code effect-length(8) context-id(4)...}
         *                 ({@code NBD_FLAG_BLOCK_STATUS_PAYLOAD}); {@code length} is then its effect length
         */
        BlockStatus(long offset, long length, int flags, Map<Integer, String> contexts, ByteBuf payload,
                    CompletableFuture<Map<String, List<Extent>>> f) {
            super(NbdCommand.BLOCK_STATUS, flags, offset, length, payload);
            this.contexts = contexts;
            this.future = f;
        }

        @Override
        void onBlockStatus(NbdReply.BlockStatus b) throws NbdProtocolException {
            String name = contexts.get(b.contextId());
            if (name == null) {
                throw new NbdProtocolException(String.format("BLOCK_STATUS chunk for %s (cookie %s) names context id "
                    + "%d, which was not negotiated (negotiated: %s)", describe(), cookieText(), b.contextId(),
                    contexts));
            }
            if (result.containsKey(name)) {
                throw new NbdProtocolException(String.format("second BLOCK_STATUS chunk for context %s in reply to %s "
                    + "(cookie %s)", name, describe(), cookieText()));
            }
            boolean reqOne = (flags & NbdConstants.CMD_FLAG_REQ_ONE) != 0;
            List<NbdReply.BlockDescriptor> ds = b.descriptors();
            if (reqOne && ds.size() != 1) {
                throw new NbdProtocolException(String.format("BLOCK_STATUS chunk for context %s in reply to %s with "
                    + "REQ_ONE (cookie %s) has %d descriptors; it must have exactly one", name, describe(),
                    cookieText(), ds.size()));
            }
            List<Extent> extents = new ArrayList<>(ds.size());
            long at = offset;
            long limit = offset + length;
            for (int i = 0; i < ds.size(); i++) {
                if (at >= limit) {
                    // descriptors cover consecutive ranges from the request offset; only the last may reach past
                    // the requested end (doc/proto.md), so one that starts there is a lie about the range
                    throw new NbdProtocolException(String.format("BLOCK_STATUS chunk for context %s in reply to %s "
                        + "(cookie %s): descriptor %d of %d starts at offset %d, past the end of the request (%d); "
                        + "only the last descriptor may extend past it", name, describe(), cookieText(), i + 1,
                        ds.size(), at, limit));
                }
                long len = ds.get(i).length();
                if (reqOne && len > length) {
                    throw new NbdProtocolException(String.format("BLOCK_STATUS chunk for context %s in reply to %s "
                        + "with REQ_ONE (cookie %s) describes %d bytes, more than the %d requested", name, describe(),
                        cookieText(), len, length));
                }
                extents.add(new Extent(at, len, (int) ds.get(i).status()));
                at += len;
            }
            result.put(name, extents);
        }

        @Override
        void succeed(long exportSize) throws NbdProtocolException {
            if (result.size() != contexts.size()) {
                List<String> missing = new ArrayList<>(contexts.values());
                missing.removeAll(result.keySet());
                throw new NbdProtocolException(String.format("server reported success for %s (cookie %s) without "
                    + "block status for context(s) %s", describe(), cookieText(), missing));
            }
            Map<String, List<Extent>> out = new HashMap<>();
            for (Map.Entry<String, List<Extent>> e : result.entrySet()) {
                List<Extent> clipped = new ArrayList<>(e.getValue().size());
                for (Extent x : e.getValue()) {
                    if (x.offset() >= exportSize) {
                        break;
                    }
                    clipped.add(x.end() > exportSize ? new Extent(x.offset(), exportSize - x.offset(), x.flags()) : x);
                }
                out.put(e.getKey(), List.copyOf(clipped));
            }
            future.complete(out);
        }

        @Override
        void fail(Throwable cause) {
            future.completeExceptionally(cause);
        }
    }
}
