package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundHandlerAdapter;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.EncoderException;

/**
 * Encodes {@link NbdReply} messages, the server's side of transmission; the counterpart of the client's
 * {@link ReplyDecoder}, which decodes the same types.
 * <pre>
 * COMPACT   simple reply      0x67446698(4) error(4) cookie(8) [data]
 *           structured chunk  0x668e33ef(4) flags(2) type(2) cookie(8) length(4) payload
 * EXTENDED  extended chunk    0x6e8a278c(4) flags(2) type(2) cookie(8) request-offset(8) length(8) payload
 *   OFFSET_DATA       offset(8) [data]
 *   OFFSET_HOLE       offset(8) hole-size(4)
 *   BLOCK_STATUS      context-id(4) n x {length(4) status(4)}                 (compact)
 *   BLOCK_STATUS_EXT  context-id(4) count(4) n x {length(8) status(8)}        (extended)
 *   ERROR             error(4) message-length(2) message
 *   ERROR_OFFSET      error(4) message-length(2) message offset(8)
 *   NONE              (no payload)
 * </pre>
 * In extended mode there are no simple replies: a {@link NbdReply.Simple} becomes a {@code NONE} chunk (error 0,
 * no data), an {@code ERROR} chunk, or one final {@code OFFSET_DATA} chunk at the request's offset (data);
 * {@link NbdReply.BlockStatus} becomes {@code BLOCK_STATUS_EXT}, and the request offset comes from the
 * {@link RequestOffsets} the request decoder filled.
 *
 * <p>Data is not copied: the {@link ReplyData} pieces written after a {@code Simple} or {@code OffsetData} header
 * are passed on as they are, each with its own promise. The encoder checks that they are exactly the bytes the
 * header announced (same cookie, in order, no more, no less before the next header, {@code last} and {@code done}
 * set as the client's decoder would); a violation would put the
 * stream out of step, so it fails the write and closes the connection. Compact headers cannot carry a chunk longer
 * than 2^32 - 1 bytes, nor descriptor lengths or statuses above 32 bits: such a reply is refused the same way. Other
 * messages pass through. One encoder per connection (it tracks the data still due).
 */
public final class ServerReplyEncoder extends ChannelOutboundHandlerAdapter {
    /** Size of a structured chunk header. */
    public static final int CHUNK_HEADER_LENGTH = 20;
    /** Size of a simple reply header. */
    public static final int SIMPLE_HEADER_LENGTH = 16;
    /** Size of an extended chunk header. */
    public static final int EXTENDED_HEADER_LENGTH = 32;

    private final NbdHeaderMode mode;
    private final RequestOffsets offsets;
    // the data the last header announced: cookie, length, bytes written so far, whether it ends the reply
    private long dataCookie;
    private long dataLength;
    private long dataWritten;
    private boolean dataDone;

    /** A compact encoder. */
    public ServerReplyEncoder() {
        this(NbdHeaderMode.COMPACT, null);
    }

    /**
     * @param mode    the header mode negotiated
     * @param offsets the request offsets (required in extended mode)
     */
    public ServerReplyEncoder(NbdHeaderMode mode, RequestOffsets offsets) {
        if (mode == NbdHeaderMode.EXTENDED && offsets == null) {
            throw new IllegalArgumentException("extended replies need the request offsets");
        }
        this.mode = mode;
        this.offsets = offsets;
    }

    public NbdHeaderMode mode() {
        return mode;
    }

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        if (msg instanceof ReplyData d) {
            writeData(ctx, d, promise);
        } else if (msg instanceof NbdReply reply) {
            if (dataWritten < dataLength) {
                throw refuse(ctx, null, String.format("%s while %d of the %d data bytes of cookie 0x%x are still "
                    + "due", reply, dataLength - dataWritten, dataLength, dataCookie));
            }
            ByteBuf h;
            try {
                h = encode(ctx, reply);
            } catch (EncoderException e) {
                throw refuse(ctx, null, e.getMessage());
            }
            ctx.write(h, promise);
        } else {
            ctx.write(msg, promise);
        }
    }

    private void writeData(ChannelHandlerContext ctx, ReplyData d, ChannelPromise promise) {
        long n = d.content().readableBytes();
        boolean last = dataWritten + n == dataLength;
        if (dataWritten == dataLength || d.cookie() != dataCookie || d.index() != dataWritten
            || dataWritten + n > dataLength
            || d.last() != last || d.done() != (last && dataDone)) {
            throw refuse(ctx, d, String.format("%s does not continue the data of cookie 0x%x (%d of %d bytes "
                + "written)", d, dataCookie, dataWritten, dataLength));
        }
        dataWritten += n;
        ctx.write(d.content(), promise);
    }

    /**
     * For a message that cannot be sent without putting the stream out of step: releases {@code data}, closes the
     * connection and returns the exception that fails the write.
     */
    private static EncoderException refuse(ChannelHandlerContext ctx, ReplyData data, String message) {
        if (data != null) {
            data.release();
        }
        ctx.close();
        return new EncoderException(message + "; closing the connection");
    }

    /** The header (and whole payload, for chunks without data) of {@code reply}; records the data it announces. */
    private ByteBuf encode(ChannelHandlerContext ctx, NbdReply reply) {
        if (reply instanceof NbdReply.Simple s) {
            if (mode == NbdHeaderMode.COMPACT) {
                expectData(s.cookie(), s.dataLength(), true);
                return ctx.alloc().buffer(SIMPLE_HEADER_LENGTH).writeInt(NbdConstants.SIMPLE_REPLY_MAGIC)
                    .writeInt(s.error().code()).writeLong(s.cookie());
            }
            if (s.dataLength() > 0) {
                // READ data: one final OFFSET_DATA chunk at the request's offset
                long at = offsets.offset(s.cookie(), false);
                reply = new NbdReply.OffsetData(s.cookie(), NbdConstants.REPLY_FLAG_DONE, at, s.dataLength());
            } else if (s.error().code() != 0) {
                reply = new NbdReply.Error(s.cookie(), NbdConstants.REPLY_FLAG_DONE, s.error(), "");
            } else {
                reply = new NbdReply.None(s.cookie());
            }
        }
        if (reply instanceof NbdReply.OffsetData d) {
            ByteBuf h = chunk(ctx, d.flags(), NbdReplyChunkType.OFFSET_DATA, d.cookie(), 8 + d.dataLength(), 8)
                .writeLong(d.offset());
            expectData(d.cookie(), d.dataLength(), (d.flags() & NbdConstants.REPLY_FLAG_DONE) != 0);
            return h;
        }
        if (reply instanceof NbdReply.OffsetHole o) {
            return chunk(ctx, o.flags(), NbdReplyChunkType.OFFSET_HOLE, o.cookie(), 12, 12).writeLong(o.offset())
                .writeInt((int) o.length());
        }
        if (reply instanceof NbdReply.BlockStatus b) {
            return blockStatus(ctx, b);
        }
        if (reply instanceof NbdReply.Error e) {
            byte[] m = NbdStrings.utf8Limited(e.message());
            boolean withOffset = e.type().equals(NbdReplyChunkType.ERROR_OFFSET);
            int len = 6 + m.length + (withOffset ? 8 : 0);
            ByteBuf h = chunk(ctx, e.flags(), e.type(), e.cookie(), len, len).writeInt(e.error().code())
                .writeShort(m.length).writeBytes(m);
            return withOffset ? h.writeLong(e.offset()) : h;
        }
        if (reply instanceof NbdReply.None n) {
            return chunk(ctx, n.flags(), NbdReplyChunkType.NONE, n.cookie(), 0, 0);
        }
        throw new EncoderException("a server does not send " + reply);
    }

    private ByteBuf blockStatus(ChannelHandlerContext ctx, NbdReply.BlockStatus b) {
        int n = b.descriptors().size();
        if (mode == NbdHeaderMode.EXTENDED) {
            int len = 8 + 16 * n;
            ByteBuf h = chunk(ctx, b.flags(), NbdReplyChunkType.BLOCK_STATUS_EXT, b.cookie(), len, len)
                .writeInt(b.contextId()).writeInt(n);
            for (NbdReply.BlockDescriptor d : b.descriptors()) {
                h.writeLong(d.length()).writeLong(d.status());
            }
            return h;
        }
        int len = 4 + 8 * n;
        ByteBuf h = chunk(ctx, b.flags(), NbdReplyChunkType.BLOCK_STATUS, b.cookie(), len, len)
            .writeInt(b.contextId());
        for (NbdReply.BlockDescriptor d : b.descriptors()) {
            if ((d.length() >>> 32) != 0 || (d.status() >>> 32) != 0) {
                h.release();
                throw new EncoderException(String.format("BLOCK_STATUS for cookie 0x%x: descriptor %s does not fit "
                    + "compact headers (length 1 to 2^32 - 1, status 32 bits)", b.cookie(), d));
            }
            h.writeInt((int) d.length()).writeInt((int) d.status());
        }
        return h;
    }

    /**
     * A buffer with the chunk header, room for {@code buffered} payload bytes after it.
     *
     * @param length the chunk's payload length, data included
     */
    private ByteBuf chunk(ChannelHandlerContext ctx, int flags, NbdReplyChunkType type, long cookie, long length,
                          int buffered) {
        if (mode == NbdHeaderMode.EXTENDED) {
            boolean done = (flags & NbdConstants.REPLY_FLAG_DONE) != 0;
            return ctx.alloc().buffer(EXTENDED_HEADER_LENGTH + buffered).writeInt(NbdConstants.EXTENDED_REPLY_MAGIC)
                .writeShort(flags).writeShort(type.code()).writeLong(cookie).writeLong(offsets.offset(cookie, done))
                .writeLong(length);
        }
        if ((length >>> 32) != 0) {
            throw new EncoderException(String.format("%s chunk for cookie 0x%x of %d bytes: compact headers carry at "
                + "most 2^32 - 1", type, cookie, length));
        }
        return ctx.alloc().buffer(CHUNK_HEADER_LENGTH + buffered).writeInt(NbdConstants.STRUCTURED_REPLY_MAGIC)
            .writeShort(flags).writeShort(type.code()).writeLong(cookie).writeInt((int) length);
    }

    private void expectData(long cookie, long length, boolean done) {
        dataCookie = cookie;
        dataLength = length;
        dataWritten = 0;
        dataDone = done;
    }
}
