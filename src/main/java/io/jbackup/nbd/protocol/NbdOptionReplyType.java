package io.jbackup.nbd.protocol;

import java.util.HashMap;
import java.util.Map;

/**
 * An NBD option reply type ({@code NBD_REP_*}); types with bit 31 set are errors.
 *
 * <p>A value class in the style of netty's {@code DnsResponseCode}: well-known codes are constants,
 * {@link #valueOf(int)} never throws and returns an "UNKNOWN" instance for codes it does not know.
 */
public final class NbdOptionReplyType implements Comparable<NbdOptionReplyType> {
    private static final Map<Integer, NbdOptionReplyType> KNOWN = new HashMap<>();

    public static final NbdOptionReplyType ACK = register(1, "ACK");
    public static final NbdOptionReplyType SERVER = register(2, "SERVER");
    public static final NbdOptionReplyType INFO = register(3, "INFO");
    public static final NbdOptionReplyType META_CONTEXT = register(4, "META_CONTEXT");
    public static final NbdOptionReplyType ERR_UNSUP = register(0x80000001, "ERR_UNSUP");
    public static final NbdOptionReplyType ERR_POLICY = register(0x80000002, "ERR_POLICY");
    public static final NbdOptionReplyType ERR_INVALID = register(0x80000003, "ERR_INVALID");
    public static final NbdOptionReplyType ERR_PLATFORM = register(0x80000004, "ERR_PLATFORM");
    public static final NbdOptionReplyType ERR_TLS_REQD = register(0x80000005, "ERR_TLS_REQD");
    public static final NbdOptionReplyType ERR_UNKNOWN = register(0x80000006, "ERR_UNKNOWN");
    public static final NbdOptionReplyType ERR_SHUTDOWN = register(0x80000007, "ERR_SHUTDOWN");
    public static final NbdOptionReplyType ERR_BLOCK_SIZE_REQD = register(0x80000008, "ERR_BLOCK_SIZE_REQD");
    public static final NbdOptionReplyType ERR_TOO_BIG = register(0x80000009, "ERR_TOO_BIG");
    public static final NbdOptionReplyType ERR_EXT_HEADER_REQD = register(0x8000000a, "ERR_EXT_HEADER_REQD");

    private final int code;
    private final String name;

    private NbdOptionReplyType(int code, String name) {
        this.code = code;
        this.name = name;
    }

    private static NbdOptionReplyType register(int code, String name) {
        NbdOptionReplyType c = new NbdOptionReplyType(code, name);
        KNOWN.put(code, c);
        return c;
    }

    /** Returns the constant for {@code code}, or a new instance named {@code UNKNOWN(code)}; never throws. */
    public static NbdOptionReplyType valueOf(int code) {
        NbdOptionReplyType c = KNOWN.get(code);
        return c != null ? c : new NbdOptionReplyType(code, "UNKNOWN");
    }

    /** The numeric code as sent on the wire. */
    public int code() {
        return code;
    }

    /** The protocol name, e.g. {@code ACK=1}, or {@code UNKNOWN}. */
    public String name() {
        return name;
    }

    /** Whether this code is one of the constants defined by this class. */
    public boolean isKnown() {
        return KNOWN.get(code) == this;
    }

    /** Whether this reply type is an error (bit 31 set). */
    public boolean isError() {
        return (code & 0x80000000) != 0;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NbdOptionReplyType other && other.code == code;
    }

    @Override
    public int hashCode() {
        return code;
    }

    @Override
    public int compareTo(NbdOptionReplyType o) {
        return Integer.compareUnsigned(code, o.code);
    }

    @Override
    public String toString() {
        return name + "(0x" + Integer.toHexString(code) + ")";
    }
}
