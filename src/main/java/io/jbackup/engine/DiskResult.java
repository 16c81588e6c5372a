package io.jbackup.engine;

import com.fasterxml.jackson.annotation.JsonIgnore;

import java.util.List;

/**
 * The outcome of one disk's backup, as printed by {@code --json}.
 *
 * @param vm           VM name or null
 * @param disk         disk name
 * @param status       "ok", "failed", or "skipped" (a disk of a libvirt domain that cannot be backed up: a raw image,
 *                     a network disk); per disk; the command's own status is "error" when every disk failed, else
 *                     "partial" when any failed or was skipped
 * @param backupId     the new backup's id (null when failed)
 * @param type         "full" or "incremental"
 * @param parentId     parent backup id for incrementals
 * @param reason       why this type was chosen (auto) or why it failed
 * @param fallbackReason why an incremental was not safe (auto made a full backup), as a stable code; else null
 * @param bitmapsOffered with {@link FallbackReason#BITMAP_MISSING}: the bitmaps the export offers; else empty
 * @param imageSize    export size in bytes
 * @param bytesRead    bytes read from the NBD source
 * @param bytesNew     chunk bytes stored as new chunks (before compression)
 * @param bytesDedup   chunk bytes that were already in the repository
 * @param bytesZero    chunk bytes that are zero (not stored)
 * @param bytesStored  bytes written to packs (compressed, encrypted)
 * @param seconds      wall time
 * @param readMBps     bytes read per second, in MB/s (10^6)
 * @param retries      reconnects after dropped connections
 * @param error        the failure, for exit-code mapping (not serialized)
 */
public record DiskResult(String vm, String disk, String status, String backupId, String type, String parentId,
                         String reason, FallbackReason fallbackReason, List<String> bitmapsOffered, long imageSize,
                         long bytesRead, long bytesNew, long bytesDedup, long bytesZero,
                         long bytesStored, double seconds, double readMBps, int retries,
                         @JsonIgnore Throwable error) {
    public DiskResult {
        bitmapsOffered = bitmapsOffered == null ? List.of() : List.copyOf(bitmapsOffered);
    }

    /** A result without a fallback (full or incremental as asked, or a failure). */
    public DiskResult(String vm, String disk, String status, String backupId, String type, String parentId,
                      String reason, long imageSize, long bytesRead, long bytesNew, long bytesDedup, long bytesZero,
                      long bytesStored, double seconds, double readMBps, int retries, Throwable error) {
        this(vm, disk, status, backupId, type, parentId, reason, null, List.of(), imageSize, bytesRead, bytesNew,
            bytesDedup, bytesZero, bytesStored, seconds, readMBps, retries, error);
    }

    /** The {@link #status} of a disk of a libvirt domain that cannot be backed up (the run is partial). */
    public static final String SKIPPED = "skipped";

    /** A disk that was not backed up ({@code failed}, {@link #SKIPPED}): no backup, no figures, and why. */
    public static DiskResult notBackedUp(String vm, String disk, String status, String reason, Throwable error) {
        return new DiskResult(vm, disk, status, null, null, null, reason, 0, 0, 0, 0, 0, 0, 0, 0, 0, error);
    }

    public boolean ok() {
        return "ok".equals(status);
    }
}
