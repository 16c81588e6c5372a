package io.jbackup.nbd.protocol;

/**
 * Which transmission headers a connection uses. {@code COMPACT} is the classic 28-byte request with a 32-bit
 * length and 16/20-byte replies. {@code EXTENDED} ({@code NBD_OPT_EXTENDED_HEADERS}: 32-byte requests and replies
 * with 64-bit lengths) is reserved: the codecs take the mode as a constructor argument so it can be added, but
 * qemu 7.2 does not offer it and jbackup does not negotiate it yet.
 */
public enum NbdHeaderMode {
    COMPACT,
    EXTENDED;

    /** Fails for modes the codecs do not implement yet. */
    public NbdHeaderMode requireSupported() {
        if (this != COMPACT) {
            throw new UnsupportedOperationException("NBD " + this + " headers are not implemented");
        }
        return this;
    }
}
