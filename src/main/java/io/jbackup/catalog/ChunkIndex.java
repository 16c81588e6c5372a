package io.jbackup.catalog;

import io.jbackup.model.RepositoryException;

import java.time.Instant;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The catalog's chunk index: which chunk digest is stored where (pack and record position), the sealed packs, and
 * the chunks found damaged (quarantined: out of deduplication until a backup stores them again). Backups ask it
 * whether a chunk is known (deduplication) and readers where it is. A part of the {@link Catalog} port.
 */
public interface ChunkIndex {
    /**
     * Where the chunk with {@code digest} is stored, or null if the catalog does not know it. Chunks condemned by a
     * running gc are still found (they are still readable); quarantined ones are not.
     */
    ChunkLocation findChunk(byte[] digest) throws RepositoryException;

    /**
     * Whether a backup may deduplicate against the chunk with {@code digest}: it is known, neither condemned by a
     * running gc nor quarantined as damaged.
     */
    boolean hasChunk(byte[] digest) throws RepositoryException;

    /**
     * {@link #hasChunk} for a batch, answered with few queries (not one per digest): bit {@code i} of the result is
     * set when {@code digests.get(i)} is known. A digest may occur several times.
     */
    BitSet hasChunks(List<byte[]> digests) throws RepositoryException;

    /**
     * Registers a sealed pack and its chunks in one transaction. Idempotent: a pack already registered is left as
     * is, and a digest already known elsewhere keeps its first location (the later copy is unreferenced). A chunk
     * that was quarantined is healed: it leaves the damaged list.
     */
    void addPack(String name, long size, List<ChunkRow> chunks) throws RepositoryException;

    /**
     * Registers a pack written from live records of other packs (gc repacking, verify repair), and points those
     * chunks' rows at it, in one transaction (the new pack is already sealed and synced).
     */
    void relocate(String name, long size, List<ChunkRow> chunks) throws RepositoryException;

    /**
     * Forgets a pack that no longer exists in the object store (another host's gc deleted it): its row and every
     * chunk row (live or condemned) that points at it. Returns the number of chunk rows removed; chunks that another
     * pack also holds come back when that pack is registered again ({@link #addPack} is idempotent).
     */
    int forgetPack(String name) throws RepositoryException;

    /** Whether a pack with this name is registered. */
    boolean hasPack(String name) throws RepositoryException;

    /** All registered packs, oldest first. */
    List<PackRow> packs() throws RepositoryException;

    /** Number of registered chunks (not condemned, not quarantined). */
    long chunkCount() throws RepositoryException;

    /**
     * Visits every chunk in pack order and offset order, streaming (bounded memory); chunks condemned by a running
     * gc are included (they are still readable).
     */
    void forEachChunk(ChunkVisitor v) throws RepositoryException;

    /** Receives chunks from {@link #forEachChunk} and {@link GcCatalog#forEachChunkUpTo}. */
    @FunctionalInterface
    interface ChunkVisitor {
        void visit(byte[] digest, ChunkLocation location) throws RepositoryException;
    }

    /** Forgets chunks (e.g. damaged ones, so the next backup that meets their data stores it again). */
    void deleteChunks(List<byte[]> digests) throws RepositoryException;

    /** A chunk found damaged at {@code location}: what was wrong and when it was found. */
    record DamagedChunk(ChunkLocation location, String problem, Instant found) {
    }

    /**
     * Quarantines a damaged chunk: if its row still points at {@code at}, moves it out of the index (also from the
     * condemned rows) to the damaged list, in one transaction. From then on no backup deduplicates against it
     * ({@link #hasChunk} is false), so the next backup that meets its data stores it again, which heals every backup
     * that uses it; {@link #damagedChunk} still tells readers where it was and what was wrong. Returns false if the
     * row points elsewhere (moved or stored again meanwhile) or is gone.
     */
    boolean quarantine(byte[] digest, ChunkLocation at, String problem) throws RepositoryException;

    /** Where a quarantined chunk was and what was wrong with it, or empty. */
    Optional<DamagedChunk> damagedChunk(byte[] digest) throws RepositoryException;

    /** Every quarantined chunk (digest to damage), for verify to check again. */
    Map<byte[], DamagedChunk> damagedChunks() throws RepositoryException;

    /**
     * Gives a quarantined chunk its row back (a later check found the record intact, e.g. the pack was restored
     * from a copy), unless the chunk was stored again meanwhile. Returns whether the row came back.
     */
    boolean reinstate(byte[] digest) throws RepositoryException;
}
