package io.jbackup.nbd.protocol;

/**
 * One extent of a block-status reply: {@code length} bytes starting at {@code offset} share {@code flags}.
 * The meaning of the flags depends on the meta context (see {@link NbdConstants#STATE_HOLE} and friends).
 */
public record Extent(long offset, long length, int flags) {
    public Extent {
        if (offset < 0 || length <= 0) {
            throw new IllegalArgumentException("extent offset " + offset + " length " + length
                + " (expected: offset >= 0, length > 0)");
        }
    }

    /** The first byte after this extent. */
    public long end() {
        return offset + length;
    }
}
