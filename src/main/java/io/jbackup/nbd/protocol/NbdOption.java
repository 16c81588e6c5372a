package io.jbackup.nbd.protocol;

import java.util.HashMap;
import java.util.Map;

/**
 * An NBD handshake option ({@code NBD_OPT_*}), see {@code doc/proto.md} "Option types".
 *
 * <p>A value class in the style of netty's {@code DnsResponseCode}: well-known codes are constants,
 * {@link #valueOf(int)} never throws and returns an "UNKNOWN" instance for codes it does not know.
 */
public final class NbdOption implements Comparable<NbdOption> {
    private static final Map<Integer, NbdOption> KNOWN = new HashMap<>();

    public static final NbdOption EXPORT_NAME = register(1, "EXPORT_NAME");
    public static final NbdOption ABORT = register(2, "ABORT");
    public static final NbdOption LIST = register(3, "LIST");
    public static final NbdOption PEEK_EXPORT = register(4, "PEEK_EXPORT");
    public static final NbdOption STARTTLS = register(5, "STARTTLS");
    public static final NbdOption INFO = register(6, "INFO");
    public static final NbdOption GO = register(7, "GO");
    public static final NbdOption STRUCTURED_REPLY = register(8, "STRUCTURED_REPLY");
    public static final NbdOption LIST_META_CONTEXT = register(9, "LIST_META_CONTEXT");
    public static final NbdOption SET_META_CONTEXT = register(10, "SET_META_CONTEXT");
    public static final NbdOption EXTENDED_HEADERS = register(11, "EXTENDED_HEADERS");

    private final int code;
    private final String name;

    private NbdOption(int code, String name) {
        this.code = code;
        this.name = name;
    }

    private static NbdOption register(int code, String name) {
        NbdOption c = new NbdOption(code, name);
        KNOWN.put(code, c);
        return c;
    }

    /** Returns the constant for {@code code}, or a new instance named {@code UNKNOWN(code)}; never throws. */
    public static NbdOption valueOf(int code) {
        NbdOption c = KNOWN.get(code);
        return c != null ? c : new NbdOption(code, "UNKNOWN");
    }

    /** The numeric code as sent on the wire. */
    public int code() {
        return code;
    }

    /** The protocol name, e.g. {@code EXPORT_NAME=1}, or {@code UNKNOWN}. */
    public String name() {
        return name;
    }

    /** Whether this code is one of the constants defined by this class. */
    public boolean isKnown() {
        return KNOWN.get(code) == this;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NbdOption other && other.code == code;
    }

    @Override
    public int hashCode() {
        return code;
    }

    @Override
    public int compareTo(NbdOption o) {
        return Integer.compareUnsigned(code, o.code);
    }

    @Override
    public String toString() {
        return name + "(0x" + Integer.toHexString(code) + ")";
    }
}
