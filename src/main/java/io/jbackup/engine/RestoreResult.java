package io.jbackup.engine;

import java.util.List;

/**
 * The outcome of restoring one disk, as printed by {@code --json}.
 *
 * @param disk          disk name
 * @param backupId      restored backup
 * @param target        where it went: a path or an NBD URI
 * @param format        what was written there: {@code raw}, {@code qcow2} or {@code nbd}
 * @param imageSize     bytes in the image
 * @param bytesWritten  data bytes written
 * @param bytesZero     bytes of zero chunks (holes or written zeroes)
 * @param seconds       wall time
 * @param mbps          image bytes per second, in MB/s
 * @param damaged       ranges that could not be read and were written as zeros ({@code --ignore-errors})
 */
public record RestoreResult(String disk, String backupId, String target, String format, long imageSize,
                            long bytesWritten, long bytesZero, double seconds, double mbps,
                            List<DamagedRange> damaged) {
    /** A range of the disk whose chunk was damaged. */
    public record DamagedRange(long offset, long length, String error) {
    }
}
