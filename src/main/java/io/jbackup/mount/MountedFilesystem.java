package io.jbackup.mount;

/**
 * One filesystem of a mounted backup (or one that could not be mounted, with the reason).
 *
 * @param disk     the disk's name
 * @param backupId the backup
 * @param name     {@code 1}, {@code 2}, ... for partitions, {@code disk} for a filesystem on the whole disk,
 *                 {@code N/VG-LV} for a logical volume in partition N
 * @param offset   byte offset in the image (of a logical volume: of its partition)
 * @param size     bytes
 * @param device   the loop device (of a logical volume: its device-mapper device), or null
 * @param type     what {@code blkid -p} found (ext4, xfs, vfat, ...), or null
 * @param path     where it is mounted, or null
 * @param how      the command that mounted it, or null
 * @param problem  why it is not mounted, or null
 */
public record MountedFilesystem(String disk, String backupId, String name, long offset, long size, String device,
                                String type, String path, String how, String problem) {
}
