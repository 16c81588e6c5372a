package io.jbackup.catalog;

import io.jbackup.model.RepositoryException;

import java.nio.file.Path;

/**
 * The repository catalog port: a cache of what the repository's files say, which packs (their footers) and index
 * files alone rebuild ({@code jbackup repair --rebuild-catalog}). It never holds a row per backup × chunk. Its
 * sections: the {@link ChunkIndex} (chunk → pack location, packs, damaged chunks), the {@link BackupCatalog}
 * (backups, protection, verification), the {@link GcCatalog} (condemned chunks, pack usage) and the {@link RunLog}.
 * Code that needs one section depends on that interface.
 *
 * <p>Implementations are thread-safe, and a committed change is durable: the repository's write order (pack fsync
 * → catalog rows → index rename → backup complete) relies on it. The implementation: {@link SqliteCatalog}.
 */
public interface Catalog extends ChunkIndex, BackupCatalog, GcCatalog, RunLog, AutoCloseable {
    /** Where the catalog is kept (for messages). */
    Path file();

    /** Repository totals from the catalog alone (no file is read). */
    record Totals(long packs, long packBytes, long chunks, long chunkRawBytes, long chunkStoredBytes,
                  long backups, long completeBackups, long badBackups, long disks, long logicalBytes,
                  long bytesNew, long bytesDedup, long bytesZero) {
    }

    /** Counts and sums over packs, chunks and backups. */
    Totals totals() throws RepositoryException;

    @Override
    void close();
}
