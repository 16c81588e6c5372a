package io.jbackup.nbd.client;

/**
 * Told, on an I/O thread, each time bytes of a READ's destination array hold their final content: a piece of reply
 * data copied in, or a hole filled with zeros. Pieces of one read come in the order the server sends them (in offset
 * order from QEMU, but the protocol allows any), and the pieces of a read split into several requests may come from
 * several connections at once. Every byte of the read is reported exactly once before its future completes
 * successfully; a failed read may have reported some. The callback must be quick and must not throw; it is how a
 * backup hashes each piece while it is still in the CPU's cache.
 */
@FunctionalInterface
public interface ReadObserver {
    /** {@code dst[dstOffset, dstOffset + length)} is final. */
    void received(int dstOffset, int length);
}
