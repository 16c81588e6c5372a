package io.jbackup.cli;

import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Renders an extent map exactly like {@code nbdinfo --map=CONTEXT} (libnbd 1.14): one line per run of equal
 * types, {@code %10d  %10d  %3d} (offset, length, type) and, for contexts nbdinfo knows, two spaces and a
 * description.
 */
final class ExtentFormat {
    private ExtentFormat() {
    }

    /** nbdinfo's description of {@code type} in {@code context}, or null when it prints none. */
    static String describe(String context, long type) {
        if (context.equals(NbdConstants.CONTEXT_BASE_ALLOCATION)) {
            return switch ((int) type) {
                case 0 -> "data";
                case 1 -> "hole";
                case 2 -> "zero";
                case 3 -> "hole,zero";
                default -> null;
            };
        }
        if (context.startsWith(NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX)) {
            return type == 0 ? "clean" : type == 1 ? "dirty" : null;
        }
        if (context.equals(NbdConstants.CONTEXT_ALLOCATION_DEPTH)) {
            return type == 0 ? "absent" : type == 1 ? "local" : "backing depth " + type;
        }
        return null;
    }

    /** The lines nbdinfo prints for these (already coalesced) extents, each ending with a newline. */
    static String lines(String context, List<Extent> extents) {
        StringBuilder sb = new StringBuilder();
        for (Extent e : extents) {
            long type = Integer.toUnsignedLong(e.flags());
            sb.append(String.format("%10d  %10d  %3d", e.offset(), e.length(), type));
            String d = describe(context, type);
            if (d != null) {
                sb.append("  ").append(d);
            }
            sb.append('\n');
        }
        return sb.toString();
    }

    /** JSON-friendly form: offset, length, type and (if known) description. */
    static Map<String, Object> json(String context, Extent e) {
        Map<String, Object> m = new LinkedHashMap<>();
        long type = Integer.toUnsignedLong(e.flags());
        m.put("offset", e.offset());
        m.put("length", e.length());
        m.put("type", type);
        String d = describe(context, type);
        if (d != null) {
            m.put("description", d);
        }
        return m;
    }
}
