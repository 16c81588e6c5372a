package io.jbackup.nbd.protocol;

import java.util.HashMap;
import java.util.Map;

/**
 * An {@code NBD_INFO_*} item type carried in {@code NBD_REP_INFO} replies to {@code NBD_OPT_INFO}/{@code NBD_OPT_GO}.
 *
 * <p>A value class in the style of netty's {@code DnsResponseCode}: well-known codes are constants,
 * {@link #valueOf(int)} never throws and returns an "UNKNOWN" instance for codes it does not know.
 */
public final class NbdInfoType implements Comparable<NbdInfoType> {
    private static final Map<Integer, NbdInfoType> KNOWN = new HashMap<>();

    public static final NbdInfoType EXPORT = register(0, "EXPORT");
    public static final NbdInfoType NAME = register(1, "NAME");
    public static final NbdInfoType DESCRIPTION = register(2, "DESCRIPTION");
    public static final NbdInfoType BLOCK_SIZE = register(3, "BLOCK_SIZE");

    private final int code;
    private final String name;

    private NbdInfoType(int code, String name) {
        this.code = code;
        this.name = name;
    }

    private static NbdInfoType register(int code, String name) {
        NbdInfoType c = new NbdInfoType(code, name);
        KNOWN.put(code, c);
        return c;
    }

    /** Returns the constant for {@code code}, or a new instance named {@code UNKNOWN(code)}; never throws. */
    public static NbdInfoType valueOf(int code) {
        NbdInfoType c = KNOWN.get(code);
        return c != null ? c : new NbdInfoType(code, "UNKNOWN");
    }

    /** The numeric code as sent on the wire. */
    public int code() {
        return code;
    }

    /** The protocol name, e.g. {@code EXPORT=0}, or {@code UNKNOWN}. */
    public String name() {
        return name;
    }

    /** Whether this code is one of the constants defined by this class. */
    public boolean isKnown() {
        return KNOWN.get(code) == this;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NbdInfoType other && other.code == code;
    }

    @Override
    public int hashCode() {
        return code;
    }

    @Override
    public int compareTo(NbdInfoType o) {
        return Integer.compareUnsigned(code, o.code);
    }

    @Override
    public String toString() {
        return name + "(0x" + Integer.toHexString(code) + ")";
    }
}
