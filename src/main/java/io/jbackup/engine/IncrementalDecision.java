package io.jbackup.engine;

import io.jbackup.model.BackupInfo;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.store.Repository;

import java.io.IOException;
import java.util.List;
import java.util.Optional;

/**
 * Whether a disk's backup may be incremental: the safety checks run before any data is read. An incremental needs
 * a complete parent backup of the same disk, a {@code --bitmap} that the export actually offers (negotiated on this
 * connection), and the same export size and chunk size as the parent. {@link BackupMode#FULL} skips the checks;
 * {@link BackupMode#INCREMENTAL} refuses with {@link BackupRefusedException} (naming the fix) when one fails;
 * {@link BackupMode#AUTO} falls back to a full backup and says why.
 *
 * @param incremental whether the backup is incremental
 * @param parent      the parent backup of an incremental, else null
 * @param chunkSize   the chunk size to use (the parent's for an incremental)
 * @param reason      what to tell the user (why a full, or which parent), or null
 * @param fallback    why an incremental was not safe, or null
 */
record IncrementalDecision(boolean incremental, BackupInfo parent, int chunkSize, String reason, Refusal fallback) {

    /** Why an incremental is not safe: the stable code, the message, and the bitmaps the export offers. */
    record Refusal(FallbackReason code, String message, List<String> offered) {
    }

    static IncrementalDecision decide(Repository repo, DiskJob job, NbdClient client, long size) throws IOException {
        int repoChunk = repo.config().defaultChunkSize();
        if (job.mode() == BackupMode.FULL) {
            return new IncrementalDecision(false, null, repoChunk, null, null);
        }
        Optional<BackupInfo> parent = repo.latestComplete(job.vm(), job.disk());
        Refusal refusal = refusal(job, client, parent, size, repoChunk);
        if (refusal == null) {
            return new IncrementalDecision(true, parent.orElseThrow(), parent.get().chunkSize(),
                job.mode() == BackupMode.AUTO ? "incremental from " + parent.get().id() : null, null);
        }
        if (job.mode() == BackupMode.INCREMENTAL) {
            throw new BackupRefusedException("cannot back up " + job.disk() + " incrementally: " + refusal.message()
                + "; run 'jbackup full' (or 'jbackup auto', which falls back to a full backup)");
        }
        return new IncrementalDecision(false, null, repoChunk, "full backup: " + refusal.message(), refusal);
    }

    /** Null when an incremental is safe; otherwise why not. */
    private static Refusal refusal(DiskJob job, NbdClient client, Optional<BackupInfo> parent, long size,
                                   int repoChunk) throws IOException {
        if (parent.isEmpty()) {
            return new Refusal(FallbackReason.NO_PARENT, "there is no complete backup of disk " + job.disk()
                + (job.vm() == null ? "" : " of VM " + job.vm()) + " to build on", List.of());
        }
        if (job.bitmap() == null) {
            BackupInfo p = parent.get();
            if (job.labels() != null && job.labels().containsKey(LiveBackup.LABEL_BITMAP)
                && !p.labels().containsKey(LiveBackup.LABEL_BITMAP)) {
                // rotated bitmaps (--image --rotate-bitmap): "no --bitmap given" would blame an option not needed
                return new Refusal(FallbackReason.NO_BITMAP, "the newest backup " + p.id() + " of " + job.disk()
                    + " records no bitmap of the image (it was not made with --rotate-bitmap: e.g. by "
                    + "commit-overlay, or from an NBD source), so no bitmap holds the writes since it", List.of());
            }
            return new Refusal(FallbackReason.NO_BITMAP, "no --bitmap given", List.of());
        }
        BackupInfo p = parent.get();
        if (!client.metaContexts().containsKey(NbdConstants.CONTEXT_DIRTY_BITMAP_PREFIX + job.bitmap())) {
            // listed during the handshake of this connection (a second one could wait on a one-client server)
            List<String> bitmaps = client.offeredBitmaps();
            String available = bitmaps.isEmpty() ? "the export offers no dirty bitmaps (qemu-nbd needs -B NAME)"
                : "the export offers " + String.join(", ", bitmaps);
            return new Refusal(FallbackReason.BITMAP_MISSING, "bitmap '" + job.bitmap() + "' is not exported by "
                + job.uri() + " (" + available + ")", bitmaps);
        }
        if (p.imageSize() != size) {
            return new Refusal(FallbackReason.SIZE_CHANGED, "the export size changed from " + p.imageSize() + " to "
                + size + " bytes since backup " + p.id(), List.of());
        }
        if (p.chunkSize() != repoChunk) {
            return new Refusal(FallbackReason.CHUNK_SIZE_CHANGED, "the parent backup " + p.id() + " uses chunk size "
                + p.chunkSize() + " but the repository now uses " + repoChunk, List.of());
        }
        if (!"complete".equals(p.state())) {
            return new Refusal(FallbackReason.PARENT_INCOMPLETE, "the parent backup " + p.id() + " is " + p.state(),
                List.of());
        }
        return null;
    }
}
