package io.jbackup.nbd.protocol;

import java.util.HashMap;
import java.util.Map;

/**
 * An NBD transmission error value ({@code NBD_E*}), carried in simple replies and error chunks.
 *
 * <p>A value class in the style of netty's {@code DnsResponseCode}: well-known codes are constants,
 * {@link #valueOf(int)} never throws and returns an "UNKNOWN" instance for codes it does not know.
 */
public final class NbdError implements Comparable<NbdError> {
    private static final Map<Integer, NbdError> KNOWN = new HashMap<>();

    public static final NbdError OK = register(0, "OK");
    public static final NbdError EPERM = register(1, "EPERM");
    public static final NbdError EIO = register(5, "EIO");
    public static final NbdError ENOMEM = register(12, "ENOMEM");
    public static final NbdError EINVAL = register(22, "EINVAL");
    public static final NbdError ENOSPC = register(28, "ENOSPC");
    public static final NbdError EOVERFLOW = register(75, "EOVERFLOW");
    public static final NbdError ENOTSUP = register(95, "ENOTSUP");
    public static final NbdError ESHUTDOWN = register(108, "ESHUTDOWN");

    private final int code;
    private final String name;

    private NbdError(int code, String name) {
        this.code = code;
        this.name = name;
    }

    private static NbdError register(int code, String name) {
        NbdError c = new NbdError(code, name);
        KNOWN.put(code, c);
        return c;
    }

    /** Returns the constant for {@code code}, or a new instance named {@code UNKNOWN(code)}; never throws. */
    public static NbdError valueOf(int code) {
        NbdError c = KNOWN.get(code);
        return c != null ? c : new NbdError(code, "UNKNOWN");
    }

    /** The numeric code as sent on the wire. */
    public int code() {
        return code;
    }

    /** The protocol name, e.g. {@code OK=0}, or {@code UNKNOWN}. */
    public String name() {
        return name;
    }

    /** Whether this code is one of the constants defined by this class. */
    public boolean isKnown() {
        return KNOWN.get(code) == this;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NbdError other && other.code == code;
    }

    @Override
    public int hashCode() {
        return code;
    }

    @Override
    public int compareTo(NbdError o) {
        return Integer.compareUnsigned(code, o.code);
    }

    @Override
    public String toString() {
        return name + "(0x" + Integer.toHexString(code) + ")";
    }
}
