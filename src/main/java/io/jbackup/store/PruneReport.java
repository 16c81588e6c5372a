package io.jbackup.store;

import java.util.List;

/**
 * What {@link Repository#prune} decided (and, unless a dry run, did).
 *
 * @param policy  the rules, as {@link RetentionPolicy#describe()}
 * @param dryRun  nothing was removed
 * @param disks   one entry per disk considered, each with its decisions, newest first
 */
public record PruneReport(String policy, boolean dryRun, List<Disk> disks) {
    /** The decisions for one disk ({@code vm} null for a standalone disk). */
    public record Disk(String vm, String disk, List<Retention.Decision> decisions) {
    }

    public long kept() {
        return disks.stream().flatMap(d -> d.decisions().stream()).filter(Retention.Decision::keep).count();
    }

    public long removed() {
        return disks.stream().flatMap(d -> d.decisions().stream()).filter(d -> !d.keep()).count();
    }
}
