package io.jbackup.model;

import java.time.Instant;
import java.util.Map;

/**
 * One backup as the catalog knows it.
 *
 * @param id        the backup id, {@code yyyyMMdd-HHmmss-xxxxxx} (UTC creation time and 24 random bits): short,
 *                  sortable, and accepted by {@code Repository.resolve} as any unique prefix
 * @param state     {@link #COMPLETE}, {@link #INCOMPLETE} (being written, or interrupted and not yet cleaned up) or
 *                  {@link #BAD} (marked damaged by verify or by hand)
 * @param completed when the backup was committed, null while incomplete
 */
public record BackupInfo(String id, String vm, String disk, String type, String parentId, Instant created,
                         Instant completed, long imageSize, int chunkSize, String state, Map<String, String> labels,
                         String note, Map<String, String> source, BackupStats stats) {
    public static final String COMPLETE = "complete";
    public static final String INCOMPLETE = "incomplete";
    public static final String BAD = "bad";

    public BackupInfo {
        labels = labels == null ? Map.of() : Map.copyOf(labels);
        source = source == null ? Map.of() : Map.copyOf(source);
        stats = stats == null ? BackupStats.EMPTY : stats;
    }

    /** Number of chunk positions: ceil(imageSize / chunkSize). */
    public long chunkCount() {
        return chunkSize == 0 ? 0 : (imageSize + chunkSize - 1) / chunkSize;
    }

    public boolean isComplete() {
        return COMPLETE.equals(state);
    }

    /** {@code vm/disk}, or just the disk for a standalone disk. */
    public String diskLabel() {
        return vm == null ? disk : vm + "/" + disk;
    }

    /** A copy with another state. */
    public BackupInfo withState(String newState) {
        return new BackupInfo(id, vm, disk, type, parentId, created, completed, imageSize, chunkSize, newState,
            labels, note, source, stats);
    }

    /** A copy marked complete at {@code when} with its final counters. */
    public BackupInfo completedAt(Instant when, BackupStats finalStats) {
        return new BackupInfo(id, vm, disk, type, parentId, created, when, imageSize, chunkSize, COMPLETE,
            labels, note, source, finalStats);
    }
}
