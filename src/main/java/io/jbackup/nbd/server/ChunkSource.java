package io.jbackup.nbd.server;

import java.util.concurrent.CompletableFuture;

/**
 * A disk image made of fixed-size chunks, as stored by a backup: the server side of "serve a backup".
 * Implementations verify each chunk as they read it.
 */
public interface ChunkSource {
    /** Image size in bytes. */
    long size();

    /** Chunk size (a power of two); the last chunk may be shorter. */
    int chunkSize();

    /** Whether chunk {@code index} is all zeros (never stored). */
    boolean isZero(long index);

    /**
     * A key that is equal for chunks with equal content (the chunk digest), used to share cached chunks between
     * exports and positions.
     */
    Object contentKey(long index);

    /** Reads chunk {@code index}, verified; the array holds at least the chunk's length. */
    CompletableFuture<byte[]> readChunk(long index);

    /**
     * Reads chunk {@code index}, verified, into {@code dst} (its position advanced by the chunk's length): lets the
     * cache decode straight into the direct buffer it keeps and sends. The default copies {@link #readChunk(long)}.
     */
    default CompletableFuture<Void> readChunk(long index, java.nio.ByteBuffer dst) {
        return readChunk(index).thenAccept(b -> dst.put(b, 0, dst.remaining()));
    }
}
