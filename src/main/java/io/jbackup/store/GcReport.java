package io.jbackup.store;

/**
 * What a gc did (or, in a dry run, would do).
 *
 * @param indexesRead        index files marked (including those re-read after waiting for running backups)
 * @param chunksBefore       chunks in the catalog when gc began
 * @param chunksCondemned    unreferenced chunks found by mark and sweep
 * @param chunksResurrected  condemned chunks that a backup finishing meanwhile turned out to use
 * @param chunksDeleted      chunk records gone (their pack deleted or rewritten without them): the unused chunks
 *                           whose pack went, plus {@code duplicatesDeleted}
 * @param duplicatesDeleted  of those, extra copies of chunks that stay in the repository in another pack: backups
 *                           running at once (on several hosts sharing a bucket) can each store the same new chunk
 * @param packsDeleted       pack files deleted (no live chunk, or rewritten)
 * @param packsRepacked      of those, packs whose live records were copied to new packs first
 * @param packsWritten       new packs written by repacking
 * @param bytesCopied        live record bytes copied by repacking
 * @param packBytesBefore    bytes of all pack files before
 * @param packBytesAfter     bytes of all pack files after (including packs that running backups wrote meanwhile)
 * @param bytesReclaimed     bytes of the pack files gc deleted minus those it wrote (in a dry run, the estimate)
 * @param writersWaited      backups gc waited for before deleting anything
 * @param deferred           gc gave up waiting for running backups and rolled back (nothing was deleted)
 * @param dryRun             nothing was changed
 */
public record GcReport(long indexesRead, long chunksBefore, long chunksCondemned, long chunksResurrected,
                       long chunksDeleted, long duplicatesDeleted, int packsDeleted, int packsRepacked, int packsWritten, long bytesCopied,
                       long packBytesBefore, long packBytesAfter, long bytesReclaimed, int writersWaited,
                       boolean deferred, boolean dryRun) {
}
