package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;

/**
 * One transmission request: the 28-byte compact header
 * {@code 0x25609513(4) flags(2) type(2) cookie(8) offset(8) length(4)} or the 32-byte extended one (64-bit length),
 * and its payload: a WRITE's, or with extended headers that of any command with {@code NBD_CMD_FLAG_PAYLOAD_LEN}.
 * Decoded by {@link ServerRequestDecoder}; whoever receives it calls {@link #release()} exactly once.
 *
 * <p>A WRITE whose length exceeds the decoder's maximum payload has {@link #payloadSkipped()} set and no payload:
 * the decoder discards the payload bytes as they arrive, and the server must fail the request.
 */
public final class ServerRequest {
    private final int flags;
    private final int type;
    private final long cookie;
    private final long offset;
    private final long length;
    private ByteBuf payload;
    private final boolean payloadSkipped;

    public ServerRequest(int flags, int type, long cookie, long offset, long length, ByteBuf payload,
                         boolean payloadSkipped) {
        this.flags = flags;
        this.type = type;
        this.cookie = cookie;
        this.offset = offset;
        this.length = length;
        this.payload = payload;
        this.payloadSkipped = payloadSkipped;
    }

    /** Command flags (16 bit). */
    public int flags() {
        return flags;
    }

    /** Raw command type (16 bit). */
    public int type() {
        return type;
    }

    public NbdCommand command() {
        return NbdCommand.valueOf(type);
    }

    /** The client's opaque cookie (handle), echoed in every reply. */
    public long cookie() {
        return cookie;
    }

    /** Offset as sent: an unsigned 64-bit value, negative here if above {@link Long#MAX_VALUE}. */
    public long offset() {
        return offset;
    }

    /**
     * Length: unsigned 32 bit with compact headers; unsigned 64 bit with extended ones (negative here above
     * {@link Long#MAX_VALUE}). With a payload, the payload's length.
     */
    public long length() {
        return length;
    }

    /** The payload, or null. */
    public ByteBuf payload() {
        return payload;
    }

    /** Hands the payload over to the caller (who must release it); this request then holds none. */
    public ByteBuf takePayload() {
        ByteBuf p = payload;
        payload = null;
        return p;
    }

    /** True for a payload longer than the maximum (or any WRITE payload on a read-only export), discarded. */
    public boolean payloadSkipped() {
        return payloadSkipped;
    }

    public boolean hasFlag(int flag) {
        return (flags & flag) != 0;
    }

    /** Releases the payload, if any is still held. */
    public void release() {
        if (payload != null) {
            payload.release();
            payload = null;
        }
    }

    @Override
    public String toString() {
        return "ServerRequest(" + command() + " flags=0x" + Integer.toHexString(flags) + " cookie=" + cookie
            + " offset=" + Long.toUnsignedString(offset) + " length=" + length
            + (payloadSkipped ? " payload skipped" : "") + ")";
    }
}
