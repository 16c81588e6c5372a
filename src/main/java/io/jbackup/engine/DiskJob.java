package io.jbackup.engine;

import io.jbackup.error.UsageException;
import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdUri;

import java.util.Map;

/**
 * One disk to back up.
 *
 * @param vm      VM (backup set) name, or null for a standalone disk
 * @param disk    disk name, e.g. {@code vda}
 * @param uri     NBD source
 * @param client  NBD client options (TLS, timeouts, connections); meta contexts are chosen by the engine
 * @param mode    full, incremental or auto
 * @param bitmap  dirty bitmap name for incrementals (exported as {@code qemu:dirty-bitmap:NAME}), or null
 * @param labels  labels recorded with the backup
 * @param note    free-text note, or null
 * @param attachments files stored with the backup beside the image (a libvirt domain's XML and NVRAM), by name
 */
public record DiskJob(String vm, String disk, NbdUri uri, ClientOptions client, BackupMode mode, String bitmap,
                      Map<String, String> labels, String note, Map<String, byte[]> attachments) {
    /** A job without attachments. */
    public DiskJob(String vm, String disk, NbdUri uri, ClientOptions client, BackupMode mode, String bitmap,
                   Map<String, String> labels, String note) {
        this(vm, disk, uri, client, mode, bitmap, labels, note, Map.of());
    }

    /** This job with {@code attachments}. */
    public DiskJob withAttachments(Map<String, byte[]> attachments) {
        return new DiskJob(vm, disk, uri, client, mode, bitmap, labels, note, attachments);
    }

    public DiskJob {
        if (disk == null || !disk.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,63}")) {
            throw new UsageException("disk name '" + disk
                + "' (expected: 1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit)");
        }
        if (vm != null && !vm.matches("[A-Za-z0-9][A-Za-z0-9._-]{0,127}")) {
            throw new UsageException("VM name '" + vm
                + "' (expected: 1-128 characters of letters, digits, '.', '_' or '-')");
        }
        if (mode == BackupMode.INCREMENTAL && (bitmap == null || bitmap.isEmpty())) {
            throw new UsageException("an incremental backup needs --bitmap NAME (the dirty bitmap exported "
                + "as qemu:dirty-bitmap:NAME, e.g. qemu-nbd -B NAME)");
        }
        labels = labels == null ? Map.of() : Map.copyOf(labels);
        attachments = attachments == null ? Map.of() : Map.copyOf(attachments);
    }
}
