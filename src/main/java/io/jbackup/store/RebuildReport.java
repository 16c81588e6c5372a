package io.jbackup.store;

import java.util.List;

/**
 * What {@link Repository#rebuildCatalog} found.
 *
 * @param packs       packs registered
 * @param chunks      chunks registered
 * @param backups     backups registered (from index files)
 * @param badBackups  of which marked bad (marker files)
 * @param problems    packs or indexes that could not be used in full, and backups referencing missing chunks
 * @param oldCatalog  where the previous catalog was moved, or null if there was none
 */
public record RebuildReport(int packs, long chunks, int backups, int badBackups, List<String> problems,
                            String oldCatalog) {
}
