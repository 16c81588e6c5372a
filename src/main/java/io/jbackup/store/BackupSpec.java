package io.jbackup.store;

import java.util.Map;

/**
 * What {@link Repository#beginBackup} is asked to write.
 *
 * @param vm        the virtual machine the disk belongs to, or null for a standalone disk
 * @param disk      the disk name (e.g. {@code vda} or a file name), unique within the vm
 * @param imageSize the size of the disk image in bytes
 * @param chunkSize the chunk size, a power of two from 64 KiB to 4 MiB; 0 means the repository default
 * @param parentId  the backup an incremental starts from (its index is copied), null for a full backup
 * @param type      {@code "full"} or {@code "incremental"}
 * @param labels    free key/value labels stored with the backup (may be null)
 * @param note      a free note (may be null)
 * @param source    where the data came from (NBD uri, export, bitmap, export size, ...) recorded with the backup
 */
public record BackupSpec(String vm, String disk, long imageSize, int chunkSize, String parentId, String type,
                         Map<String, String> labels, String note, Map<String, String> source) {
    public static final String FULL = "full";
    public static final String INCREMENTAL = "incremental";

    public BackupSpec {
        labels = labels == null ? Map.of() : Map.copyOf(labels);
        source = source == null ? Map.of() : Map.copyOf(source);
    }

    /** A full backup with the repository's default chunk size and no labels. */
    public static BackupSpec full(String vm, String disk, long imageSize) {
        return new BackupSpec(vm, disk, imageSize, 0, null, FULL, Map.of(), null, Map.of());
    }

    /** An incremental backup on top of {@code parentId}, with the repository's default chunk size. */
    public static BackupSpec incremental(String vm, String disk, long imageSize, String parentId) {
        return new BackupSpec(vm, disk, imageSize, 0, parentId, INCREMENTAL, Map.of(), null, Map.of());
    }
}
