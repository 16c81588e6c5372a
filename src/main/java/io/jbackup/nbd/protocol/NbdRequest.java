package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;

/**
 * One transmission request, the one type of both sides: the client builds it and {@link RequestEncoder} writes it;
 * the server gets it from {@link ServerRequestDecoder}.
 * <pre>
 * compact   0x25609513(4) command-flags(2) type(2) cookie(8) offset(8) length(4) [payload(length) for WRITE]
 * extended  0x21e41c71(4) command-flags(2) type(2) cookie(8) offset(8) length(8) [payload iff PAYLOAD_LEN]
 * </pre>
 * With extended headers a BLOCK_STATUS may carry a payload ({@code effect-length(8) context-id(4)...}); its length is
 * then the payload's.
 *
 * <p>Whoever holds a request with a payload owns that buffer and calls {@link #release()} once (the encoder passes
 * it on to the transport, which releases it); a receiver that keeps the payload beyond that retains it. A decoded
 * request whose payload the server refused unbuffered (longer than its maximum, or any WRITE payload on a read-only
 * export) has {@code payloadSkipped} set and no payload: the decoder discards those bytes as they arrive, and the
 * server must fail the request. Such a request cannot be encoded.
 *
 * @param flags          command flags ({@code NbdConstants.CMD_FLAG_*}, 16 bit)
 * @param command        the command ({@link NbdCommand#valueOf} keeps unknown codes)
 * @param cookie         the client's opaque handle, echoed in every reply chunk
 * @param offset         byte offset in the export (unsigned 64 bit: negative here above {@link Long#MAX_VALUE})
 * @param length         byte count (the payload's when there is one): unsigned 32 bit with compact headers, unsigned
 *                       64 bit with extended ones (negative here above {@link Long#MAX_VALUE})
 * @param payload        the WRITE (or extended BLOCK_STATUS) payload ({@code length} bytes), or null
 * @param payloadSkipped whether the decoder skipped a payload of {@code length} bytes instead of buffering it
 */
public record NbdRequest(int flags, NbdCommand command, long cookie, long offset, long length, ByteBuf payload,
                         boolean payloadSkipped) {
    public NbdRequest {
        if (command == null) {
            throw new IllegalArgumentException("command must be set");
        }
        if (payload != null && payload.readableBytes() != length) {
            throw new IllegalArgumentException(command + " payload has " + payload.readableBytes()
                + " bytes but the request length is " + length);
        }
        if (payload != null && payloadSkipped) {
            throw new IllegalArgumentException(command + " has a payload and is marked as having it skipped");
        }
    }

    /** A request as a client builds it: with its payload or none, nothing skipped. */
    public NbdRequest(int flags, NbdCommand command, long cookie, long offset, long length, ByteBuf payload) {
        this(flags, command, cookie, offset, length, payload, false);
    }

    /** Whether {@code flag} is set among the command flags. */
    public boolean hasFlag(int flag) {
        return (flags & flag) != 0;
    }

    /** Releases the payload, if there is one; call once. */
    public void release() {
        if (payload != null) {
            payload.release();
        }
    }

    @Override
    public String toString() {
        return String.format("%s(cookie=0x%x, offset=%s, length=%s, flags=0x%x%s)",
            command.isKnown() ? command.name() : command.toString(), cookie,
            Long.toUnsignedString(offset), Long.toUnsignedString(length), flags,
            payloadSkipped ? ", payload skipped" : "");
    }
}
