package io.jbackup.catalog;

import io.jbackup.model.RepositoryException;

import java.util.List;

/**
 * What garbage collection needs of the catalog: condemned chunks (out of deduplication, still readable, until gc
 * deletes their packs or resurrects them), how much of each pack is live, and the removal of packs. A part of the
 * {@link Catalog} port.
 */
public interface GcCatalog {
    /** The highest pack row id: packs registered later have higher ids (while none above it is deleted). */
    long maxPackId() throws RepositoryException;

    /**
     * Visits every chunk (not condemned) in packs with id at most {@code maxPackId}, streaming (bounded memory), in
     * no particular order.
     */
    void forEachChunkUpTo(long maxPackId, ChunkIndex.ChunkVisitor v) throws RepositoryException;

    /**
     * Condemns chunks, in one transaction. From then on no writer deduplicates against them
     * ({@link ChunkIndex#hasChunk} is false), while reads still find them ({@link ChunkIndex#findChunk}) until gc
     * deletes their packs or resurrects them. Returns how many were condemned.
     */
    int condemn(List<byte[]> digests) throws RepositoryException;

    /** Whether {@code digest} is condemned. */
    boolean isCondemned(byte[] digest) throws RepositoryException;

    /**
     * Gives condemned chunks back their rows (a backup turned out to use them). A digest that a writer has stored
     * again meanwhile keeps its new row; the condemned copy is then garbage. Returns how many were condemned.
     */
    int resurrect(List<byte[]> digests) throws RepositoryException;

    /** Gives every condemned chunk back its row (rolls back a gc that did not finish); returns how many. */
    int resurrectAll() throws RepositoryException;

    /** Number of condemned chunks. */
    long condemnedCount() throws RepositoryException;

    /**
     * How much of a pack is still used.
     *
     * @param recordBytes bytes of all records in the pack (the file minus header, footer and trailer)
     * @param liveChunks  chunks of the pack with a catalog row
     * @param liveBytes   record bytes of those chunks
     */
    record PackUsage(String name, long size, int chunkCount, long recordBytes, long liveChunks, long liveBytes) {
    }

    /** Usage of every pack with id at most {@code maxPackId}, in id order. */
    List<PackUsage> packUsage(long maxPackId, int headerBytes, int footerEntryBytes, int trailerBytes)
        throws RepositoryException;

    /** The live chunks (with a catalog row) of a pack, in offset order. */
    List<ChunkRow> chunksOfPack(String name) throws RepositoryException;

    /** Forgets the condemned rows of a pack that is about to be deleted; refuses if live chunks still point at it. */
    void releasePack(String name) throws RepositoryException;

    /** Removes a pack row (its file is already deleted, and no chunk row points at it). */
    void deletePack(String name) throws RepositoryException;
}
