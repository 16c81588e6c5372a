package io.jbackup.nbd.protocol;

import io.netty.buffer.ByteBuf;

/**
 * One transmission request, encoded by {@link RequestEncoder}:
 * <pre>
 * compact   0x25609513(4) command-flags(2) type(2) cookie(8) offset(8) length(4) [payload(length) for WRITE]
 * extended  0x21e41c71(4) command-flags(2) type(2) cookie(8) offset(8) length(8) [payload iff PAYLOAD_LEN]
 * </pre>
 * With extended headers a BLOCK_STATUS may carry a payload ({@code effect-length(8) context-id(4)...}); its length is
 * then the payload's.
 *
 * @param flags   command flags ({@code NbdConstants.CMD_FLAG_*})
 * @param command the command
 * @param cookie  the client's opaque handle, echoed in every reply chunk
 * @param offset  byte offset in the export (unsigned 64 bit)
 * @param length  byte count (the payload's when there is one); at most 0xffffffff with compact headers
 * @param payload the WRITE (or extended BLOCK_STATUS) payload ({@code length} bytes), or null. The encoder takes ownership and releases it.
 */
public record NbdRequest(int flags, NbdCommand command, long cookie, long offset, long length, ByteBuf payload) {
    public NbdRequest {
        if (command == null) {
            throw new IllegalArgumentException("command must be set");
        }
        if (payload != null && payload.readableBytes() != length) {
            throw new IllegalArgumentException(command + " payload has " + payload.readableBytes()
                + " bytes but the request length is " + length);
        }
    }

    @Override
    public String toString() {
        return String.format("%s(cookie=0x%x, offset=%d, length=%d, flags=0x%x)", command.name(), cookie, offset,
            length, flags);
    }
}
