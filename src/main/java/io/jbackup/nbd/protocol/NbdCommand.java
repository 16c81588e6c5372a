package io.jbackup.nbd.protocol;

import java.util.HashMap;
import java.util.Map;

/**
 * An NBD transmission command ({@code NBD_CMD_*}).
 *
 * <p>A value class in the style of netty's {@code DnsResponseCode}: well-known codes are constants,
 * {@link #valueOf(int)} never throws and returns an "UNKNOWN" instance for codes it does not know.
 */
public final class NbdCommand implements Comparable<NbdCommand> {
    private static final Map<Integer, NbdCommand> KNOWN = new HashMap<>();

    public static final NbdCommand READ = register(0, "READ");
    public static final NbdCommand WRITE = register(1, "WRITE");
    public static final NbdCommand DISC = register(2, "DISC");
    public static final NbdCommand FLUSH = register(3, "FLUSH");
    public static final NbdCommand TRIM = register(4, "TRIM");
    public static final NbdCommand CACHE = register(5, "CACHE");
    public static final NbdCommand WRITE_ZEROES = register(6, "WRITE_ZEROES");
    public static final NbdCommand BLOCK_STATUS = register(7, "BLOCK_STATUS");
    public static final NbdCommand RESIZE = register(8, "RESIZE");

    private final int code;
    private final String name;

    private NbdCommand(int code, String name) {
        this.code = code;
        this.name = name;
    }

    private static NbdCommand register(int code, String name) {
        NbdCommand c = new NbdCommand(code, name);
        KNOWN.put(code, c);
        return c;
    }

    /** Returns the constant for {@code code}, or a new instance named {@code UNKNOWN(code)}; never throws. */
    public static NbdCommand valueOf(int code) {
        NbdCommand c = KNOWN.get(code);
        return c != null ? c : new NbdCommand(code, "UNKNOWN");
    }

    /** The numeric code as sent on the wire. */
    public int code() {
        return code;
    }

    /** The protocol name, e.g. {@code READ=0}, or {@code UNKNOWN}. */
    public String name() {
        return name;
    }

    /** Whether this code is one of the constants defined by this class. */
    public boolean isKnown() {
        return KNOWN.get(code) == this;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NbdCommand other && other.code == code;
    }

    @Override
    public int hashCode() {
        return code;
    }

    @Override
    public int compareTo(NbdCommand o) {
        return Integer.compareUnsigned(code, o.code);
    }

    @Override
    public String toString() {
        return name + "(0x" + Integer.toHexString(code) + ")";
    }
}
