package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.protocol.NbdError;
import io.jbackup.nbd.protocol.NbdReply;
import io.jbackup.nbd.protocol.ReplyData;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletionException;

/**
 * How the server words its replies, as {@link NbdReply} messages for the {@code ServerReplyEncoder}, with or without
 * structured replies (extended headers imply them; the encoder turns simple replies into their chunks).
 * <ul>
 *   <li>READ data is a header followed by one {@link ReplyData} holding the export's buffer, never copied: with
 *   structured replies (and no {@code DF} flag) an {@code OFFSET_DATA} or {@code OFFSET_HOLE} chunk per segment of
 *   the read, {@code DONE} on the last; otherwise one buffer of the whole range, holes filled from a shared zero
 *   buffer.</li>
 *   <li>Block status is one chunk per selected context, its extents clipped to the request, merged where their flags
 *   are equal, and capped at {@link #MAX_EXTENTS} (one with {@code REQ_ONE}).</li>
 *   <li>Errors are an {@code ERROR} chunk with the message, or a simple reply with the error value.</li>
 * </ul>
 */
final class Replies {
    /** Largest number of extents sent in one block status chunk. */
    static final int MAX_EXTENTS = 128 * 1024;

    /** Zero bytes used to fill holes into simple and DF replies (never released). */
    private static final ByteBuf ZEROES = Unpooled.unreleasableBuffer(
        Unpooled.directBuffer(1 << 20, 1 << 20).writeZero(1 << 20).asReadOnly());

    private final boolean structured;

    /** @param structured whether structured replies (or extended headers) were negotiated */
    Replies(boolean structured) {
        this.structured = structured;
    }

    /** Success of a command without data. */
    NbdReply ok(long cookie) {
        return new NbdReply.Simple(cookie, NbdError.OK);
    }

    /** Success of a READ of length 0. */
    NbdReply emptyRead(long cookie) {
        return structured ? new NbdReply.None(cookie) : new NbdReply.Simple(cookie, NbdError.OK);
    }

    /** Failure with {@code error}; the message goes out with structured replies only. */
    NbdReply error(long cookie, NbdError error, String message) {
        return structured ? new NbdReply.Error(cookie, NbdConstants.REPLY_FLAG_DONE, error, message)
            : new NbdReply.Simple(cookie, error);
    }

    /**
     * Writes the reply to a READ at {@code offset} whose {@code result} has exactly the length asked for (this takes
     * ownership of it); returns the future of the last write.
     *
     * @param df the request's {@code NBD_CMD_FLAG_DF}: the data in one chunk
     */
    ChannelFuture writeRead(ChannelHandlerContext ctx, long cookie, long offset, ReadResult result, boolean df) {
        List<ReadResult.Segment> segs = result.segments();
        if (structured && !df) {
            long pos = offset;
            ChannelFuture last = null;
            for (int i = 0; i < segs.size(); i++) {
                ReadResult.Segment s = segs.get(i);
                boolean done = i == segs.size() - 1;
                // the length before writing: a TLS handler may consume (and release) the buffer inside write()
                int len = s.length();
                if (s instanceof ReadResult.Data d) {
                    last = writeWithData(ctx, new NbdReply.OffsetData(cookie, NbdReply.flags(done), pos, len), d.buf(),
                        done);
                } else {
                    last = ctx.write(new NbdReply.OffsetHole(cookie, NbdReply.flags(done), pos, len));
                }
                pos += len;
            }
            return last;
        }
        long length = result.length();
        ByteBuf data = contiguous(ctx, segs);
        NbdReply header = structured ? new NbdReply.OffsetData(cookie, NbdConstants.REPLY_FLAG_DONE, offset, length)
            : new NbdReply.Simple(cookie, NbdError.OK, length);
        return writeWithData(ctx, header, data, true);
    }

    /**
     * Writes a data header and its data ({@code header}'s length, a buffer this hands over) as the one piece after
     * it, {@code done} if the header completes the reply; the future is the data's.
     */
    private static ChannelFuture writeWithData(ChannelHandlerContext ctx, NbdReply header, ByteBuf data,
                                               boolean done) {
        ctx.write(header, ctx.voidPromise());
        return ctx.write(new ReplyData(header.cookie(), 0, data, true, done));
    }

    /** One buffer of the segments, holes filled with zeroes (takes ownership of the data buffers). */
    private static ByteBuf contiguous(ChannelHandlerContext ctx, List<ReadResult.Segment> segs) {
        if (segs.size() == 1 && segs.get(0) instanceof ReadResult.Data d) {
            return d.buf();
        }
        CompositeByteBuf c = ctx.alloc().compositeDirectBuffer(Math.max(2, segs.size() + 4));
        for (ReadResult.Segment s : segs) {
            if (s instanceof ReadResult.Data d) {
                c.addComponent(true, d.buf());
            } else {
                int left = s.length();
                while (left > 0) {
                    int n = Math.min(left, ZEROES.capacity());
                    c.addComponent(true, ZEROES.slice(0, n));
                    left -= n;
                }
            }
        }
        return c;
    }

    /**
     * The block status chunks of a request for {@code [offset, offset+length)}: one per context in {@code selected},
     * from the extents its source returned ({@code extents}, in the same order), {@code DONE} on the last.
     *
     * @throws CompletionException with an {@link NbdExportException} if a source returned no extent for the offset
     */
    static List<NbdReply> blockStatus(long cookie, List<TransmissionHandler.Context> selected,
                                      List<List<Extent>> extents, long offset, long length, boolean reqOne) {
        List<NbdReply> chunks = new ArrayList<>(selected.size());
        for (int i = 0; i < selected.size(); i++) {
            List<Extent> ext = normalize(extents.get(i), offset, length, reqOne, selected.get(i).name());
            chunks.add(NbdReply.BlockStatus.of(cookie, NbdReply.flags(i == selected.size() - 1), selected.get(i).id(),
                ext));
        }
        return chunks;
    }

    /**
     * Clips extents to {@code [offset, offset+length)}, merges neighbours with equal flags and caps the count.
     * The extents must be consecutive from {@code offset}; at least one must overlap it.
     */
    static List<Extent> normalize(List<Extent> in, long offset, long length, boolean reqOne, String context) {
        long end = offset + length;
        long pos = offset;
        List<Extent> out = new ArrayList<>();
        for (Extent e : in) {
            if (e.end() <= pos) {
                continue;
            }
            if (e.offset() > pos) {
                break; // a gap: report what is known so far
            }
            long stop = Math.min(e.end(), end);
            int last = out.size() - 1;
            if (last >= 0 && out.get(last).flags() == e.flags()) {
                Extent prev = out.get(last);
                out.set(last, new Extent(prev.offset(), stop - prev.offset(), e.flags()));
            } else {
                if (out.size() == MAX_EXTENTS || (reqOne && !out.isEmpty())) {
                    break;
                }
                out.add(new Extent(pos, stop - pos, e.flags()));
            }
            pos = stop;
            if (pos >= end) {
                break;
            }
        }
        if (out.isEmpty()) {
            throw new CompletionException(new NbdExportException(NbdError.EIO, "meta context " + context
                + " returned no extent for offset " + offset));
        }
        return out;
    }
}
