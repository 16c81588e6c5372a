package io.jbackup.nbd.protocol;

import java.util.HashMap;
import java.util.Map;

/**
 * A structured reply chunk type ({@code NBD_REPLY_TYPE_*}); types with bit 15 set are errors.
 *
 * <p>A value class in the style of netty's {@code DnsResponseCode}: well-known codes are constants,
 * {@link #valueOf(int)} never throws and returns an "UNKNOWN" instance for codes it does not know.
 */
public final class NbdReplyChunkType implements Comparable<NbdReplyChunkType> {
    private static final Map<Integer, NbdReplyChunkType> KNOWN = new HashMap<>();

    public static final NbdReplyChunkType NONE = register(0, "NONE");
    public static final NbdReplyChunkType OFFSET_DATA = register(1, "OFFSET_DATA");
    public static final NbdReplyChunkType OFFSET_HOLE = register(2, "OFFSET_HOLE");
    public static final NbdReplyChunkType BLOCK_STATUS = register(5, "BLOCK_STATUS");
    public static final NbdReplyChunkType BLOCK_STATUS_EXT = register(6, "BLOCK_STATUS_EXT");
    public static final NbdReplyChunkType ERROR = register(0x8001, "ERROR");
    public static final NbdReplyChunkType ERROR_OFFSET = register(0x8002, "ERROR_OFFSET");

    private final int code;
    private final String name;

    private NbdReplyChunkType(int code, String name) {
        this.code = code;
        this.name = name;
    }

    private static NbdReplyChunkType register(int code, String name) {
        NbdReplyChunkType c = new NbdReplyChunkType(code, name);
        KNOWN.put(code, c);
        return c;
    }

    /** Returns the constant for {@code code}, or a new instance named {@code UNKNOWN(code)}; never throws. */
    public static NbdReplyChunkType valueOf(int code) {
        NbdReplyChunkType c = KNOWN.get(code);
        return c != null ? c : new NbdReplyChunkType(code, "UNKNOWN");
    }

    /** The numeric code as sent on the wire. */
    public int code() {
        return code;
    }

    /** The protocol name, e.g. {@code NONE=0}, or {@code UNKNOWN}. */
    public String name() {
        return name;
    }

    /** Whether this code is one of the constants defined by this class. */
    public boolean isKnown() {
        return KNOWN.get(code) == this;
    }

    /** Whether this chunk type is an error chunk (bit 15 set). */
    public boolean isError() {
        return (code & 0x8000) != 0;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NbdReplyChunkType other && other.code == code;
    }

    @Override
    public int hashCode() {
        return code;
    }

    @Override
    public int compareTo(NbdReplyChunkType o) {
        return Integer.compareUnsigned(code, o.code);
    }

    @Override
    public String toString() {
        return name + "(0x" + Integer.toHexString(code) + ")";
    }
}
