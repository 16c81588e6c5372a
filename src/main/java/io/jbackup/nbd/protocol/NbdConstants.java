package io.jbackup.nbd.protocol;

/**
 * Magic numbers, handshake flags, transmission flags, command flags and status bits of the NBD protocol
 * ({@code doc/proto.md} in NetworkBlockDevice/nbd, and {@code docs/interop/nbd.rst} in qemu).
 * All integers on the wire are big-endian.
 */
public final class NbdConstants {
    private NbdConstants() {
    }

    /** "NBDMAGIC", the first 8 bytes the server sends. */
    public static final long NBDMAGIC = 0x4e42444d41474943L;
    /** "IHAVEOPT", the second 8 bytes of the newstyle greeting and the prefix of every option. */
    public static final long IHAVEOPT = 0x49484156454F5054L;
    /** Magic of every fixed-newstyle option reply. */
    public static final long OPTION_REPLY_MAGIC = 0x0003e889045565a9L;
    /** Magic of a compact request. */
    public static final int REQUEST_MAGIC = 0x25609513;
    /** Magic of an extended request (extension-ext-header). */
    public static final int EXTENDED_REQUEST_MAGIC = 0x21e41c71;
    /** Magic of a simple reply. */
    public static final int SIMPLE_REPLY_MAGIC = 0x67446698;
    /** Magic of a structured reply chunk. */
    public static final int STRUCTURED_REPLY_MAGIC = 0x668e33ef;
    /** Magic of an extended reply chunk (extension-ext-header). */
    public static final int EXTENDED_REPLY_MAGIC = 0x6e8a278c;

    /** Default TCP port for newstyle negotiation. */
    public static final int DEFAULT_PORT = 10809;

    // Handshake flags (server, 16 bit)
    public static final int FLAG_FIXED_NEWSTYLE = 1;
    public static final int FLAG_NO_ZEROES = 1 << 1;
    // Client flags (32 bit)
    public static final int FLAG_C_FIXED_NEWSTYLE = 1;
    public static final int FLAG_C_NO_ZEROES = 1 << 1;

    // Transmission flags (16 bit)
    public static final int TFLAG_HAS_FLAGS = 1;
    public static final int TFLAG_READ_ONLY = 1 << 1;
    public static final int TFLAG_SEND_FLUSH = 1 << 2;
    public static final int TFLAG_SEND_FUA = 1 << 3;
    public static final int TFLAG_ROTATIONAL = 1 << 4;
    public static final int TFLAG_SEND_TRIM = 1 << 5;
    public static final int TFLAG_SEND_WRITE_ZEROES = 1 << 6;
    public static final int TFLAG_SEND_DF = 1 << 7;
    public static final int TFLAG_CAN_MULTI_CONN = 1 << 8;
    public static final int TFLAG_SEND_RESIZE = 1 << 9;
    public static final int TFLAG_SEND_CACHE = 1 << 10;
    public static final int TFLAG_SEND_FAST_ZERO = 1 << 11;
    public static final int TFLAG_BLOCK_STATUS_PAYLOAD = 1 << 12;

    // Command flags (16 bit)
    public static final int CMD_FLAG_FUA = 1;
    public static final int CMD_FLAG_NO_HOLE = 1 << 1;
    public static final int CMD_FLAG_DF = 1 << 2;
    public static final int CMD_FLAG_REQ_ONE = 1 << 3;
    public static final int CMD_FLAG_FAST_ZERO = 1 << 4;
    public static final int CMD_FLAG_PAYLOAD_LEN = 1 << 5;

    /** Structured reply flag: this is the last chunk of the reply. */
    public static final int REPLY_FLAG_DONE = 1;

    // base:allocation status bits
    public static final int STATE_HOLE = 1;
    public static final int STATE_ZERO = 1 << 1;
    // qemu:dirty-bitmap status bit
    public static final int STATE_DIRTY = 1;

    /** Meta context names used by jbackup. */
    public static final String CONTEXT_BASE_ALLOCATION = "base:allocation";
    public static final String CONTEXT_ALLOCATION_DEPTH = "qemu:allocation-depth";
    public static final String CONTEXT_DIRTY_BITMAP_PREFIX = "qemu:dirty-bitmap:";

    /** Longest string (export name, context name, message) the protocol allows. */
    public static final int MAX_STRING_LENGTH = 4096;

    /** Renders transmission flags as {@code HAS_FLAGS|READ_ONLY|...}. */
    public static String transmissionFlagsToString(int flags) {
        String[] names = {"HAS_FLAGS", "READ_ONLY", "SEND_FLUSH", "SEND_FUA", "ROTATIONAL", "SEND_TRIM",
            "SEND_WRITE_ZEROES", "SEND_DF", "CAN_MULTI_CONN", "SEND_RESIZE", "SEND_CACHE", "SEND_FAST_ZERO",
            "BLOCK_STATUS_PAYLOAD"};
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 16; i++) {
            if ((flags & (1 << i)) != 0) {
                if (sb.length() > 0) {
                    sb.append('|');
                }
                sb.append(i < names.length ? names[i] : "BIT" + i);
            }
        }
        return sb.toString();
    }
}
