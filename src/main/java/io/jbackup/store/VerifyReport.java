package io.jbackup.store;

import java.util.List;

/**
 * What {@link Repository#verify} found.
 *
 * @param backupsChecked   backups whose index was checked
 * @param chunksChecked    chunk records read and checked
 * @param bytesChecked     their raw bytes
 * @param damagedChunks    chunks that failed a check or are missing, each with the backups and disk offsets using it
 * @param damagedIndexes   index files that failed their checks
 * @param backupsMarkedBad backups marked bad by repair
 * @param chunksForgotten  damaged chunks removed from the catalog by repair
 */
public record VerifyReport(int backupsChecked, long chunksChecked, long bytesChecked, List<DamagedChunk> damagedChunks,
                           List<DamagedIndex> damagedIndexes, List<String> backupsMarkedBad, long chunksForgotten) {
    /** Whether nothing was found damaged. */
    public boolean ok() {
        return damagedChunks.isEmpty() && damagedIndexes.isEmpty();
    }

    /** A backup position that uses a damaged chunk. */
    public record Use(String backupId, String disk, long diskOffset) {
    }

    /**
     * A damaged (or missing) chunk. {@code pack} is null when the chunk is missing from the catalog. {@code uses}
     * lists at most {@value Verifier#MAX_USES_LISTED} uses; {@code useCount} counts them all.
     */
    public record DamagedChunk(String digest, String pack, long packOffset, String problem, List<Use> uses,
                               long useCount) {
    }

    /** An index file that cannot be trusted: its backup cannot be restored from it. */
    public record DamagedIndex(String backupId, String file, String problem) {
    }
}
