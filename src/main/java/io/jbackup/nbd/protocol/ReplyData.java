package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.DefaultByteBufHolder;

/**
 * A piece of READ data following a {@link NbdReply.Simple} or {@link NbdReply.OffsetData} header, on both sides: the
 * client's {@link ReplyDecoder} emits one per batch of bytes received, and the server writes one (or more) after the
 * header, which {@link ServerReplyEncoder} passes on to the transport uncopied. The receiver owns the buffer and must
 * release it (writing it hands it over).
 */
public final class ReplyData extends DefaultByteBufHolder implements NbdReply {
    private final long cookie;
    private final long index;
    private final boolean last;
    private final boolean done;

    /**
     * @param cookie  the cookie of the header this data belongs to
     * @param index   position of the first byte of {@code content} within the header's data (0-based)
     * @param content the bytes
     * @param last    whether this is the last piece of the header's data
     * @param done    whether this piece completes the whole reply ({@code last} and the chunk was final)
     */
    public ReplyData(long cookie, long index, ByteBuf content, boolean last, boolean done) {
        super(content);
        this.cookie = cookie;
        this.index = index;
        this.last = last;
        this.done = done;
    }

    @Override
    public long cookie() {
        return cookie;
    }

    public long index() {
        return index;
    }

    public boolean last() {
        return last;
    }

    @Override
    public boolean done() {
        return done;
    }

    @Override
    public String toString() {
        return String.format("ReplyData(cookie=0x%x, index=%d, %d bytes%s%s)", cookie, index,
            content().readableBytes(), last ? ", last" : "", done ? ", done" : "");
    }
}
