package io.jbackup.nbd.protocol;

/**
 * Which transmission headers a connection uses; both sides' codecs take it as a constructor argument.
 * <pre>
 * COMPACT   request  0x25609513(4) flags(2) type(2) cookie(8) offset(8) length(4)                 28 bytes
 *           replies  simple 0x67446698(4) error(4) cookie(8)                                        16 bytes
 *                    structured 0x668e33ef(4) flags(2) type(2) cookie(8) length(4)                  20 bytes
 * EXTENDED  request  0x21e41c71(4) flags(2) type(2) cookie(8) offset(8) length(8)                 32 bytes
 *           reply    0x6e8a278c(4) flags(2) type(2) cookie(8) offset(8) length(8)                 32 bytes
 * </pre>
 * {@code EXTENDED} is negotiated with {@code NBD_OPT_EXTENDED_HEADERS} (QEMU 8.2+): the request length is 64 bits
 * (with {@code NBD_CMD_FLAG_PAYLOAD_LEN} it is the length of the payload that follows, always so for WRITE), every
 * reply is an extended chunk that echoes the request's offset (no simple replies), and block status uses
 * {@code NBD_REPLY_TYPE_BLOCK_STATUS_EXT} with 64-bit extents.
 */
public enum NbdHeaderMode {
    COMPACT,
    EXTENDED;

    /** Size of a request header in this mode. */
    public int requestHeaderLength() {
        return this == COMPACT ? 28 : 32;
    }
}
