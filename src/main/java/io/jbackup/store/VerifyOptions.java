package io.jbackup.store;

import io.jbackup.error.UsageException;

import java.util.List;

/**
 * What {@link Repository#verify} checks.
 *
 * @param backupIds     exact ids of the backups whose chunks to check; empty: every chunk the catalog knows and every
 *                      backup
 * @param samplePercent check only a random sample of that percentage of the chunks (0 &lt; p &le; 100)
 * @param repair        forget damaged chunks (so the next backup that meets their data stores it again) and mark the
 *                      backups that use them bad; needs the exclusive lock
 */
public record VerifyOptions(List<String> backupIds, double samplePercent, boolean repair) {
    public VerifyOptions {
        backupIds = backupIds == null ? List.of() : List.copyOf(backupIds);
        if (!(samplePercent > 0 && samplePercent <= 100)) {
            throw new UsageException("sample percentage " + samplePercent + " is out of range (expected: "
                + "more than 0, at most 100)");
        }
    }

    /** Every chunk, no repair. */
    public static VerifyOptions all() {
        return new VerifyOptions(List.of(), 100, false);
    }
}
