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
 * @param damagedPacks     packs whose footer fails its checks (checked when the whole repository is verified)
 * @param backupsMarkedBad backups marked bad by repair
 * @param chunksForgotten  damaged chunks taken out of deduplication (quarantined) by this run
 * @param packsRewritten   packs with a damaged footer whose intact records repair copied into a new pack
 */
public record VerifyReport(int backupsChecked, long chunksChecked, long bytesChecked, List<DamagedChunk> damagedChunks,
                           List<DamagedIndex> damagedIndexes, List<DamagedPack> damagedPacks,
                           List<String> backupsMarkedBad, long chunksForgotten, int packsRewritten) {
    /** Whether nothing was found damaged. */
    public boolean ok() {
        return damagedChunks.isEmpty() && damagedIndexes.isEmpty() && damagedPacks.isEmpty();
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

    /**
     * A pack whose footer (the list of its records, read only by {@code repair --rebuild-catalog} and crash
     * recovery) fails its checks. Its records are checked one by one like any others; {@code repair} copies the
     * intact ones into a new pack and deletes this one.
     */
    public record DamagedPack(String pack, String problem) {
    }

    /** An index file that cannot be trusted: its backup cannot be restored from it. */
    public record DamagedIndex(String backupId, String file, String problem) {
    }
}
