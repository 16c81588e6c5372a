package io.jbackup.store;

import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;

import java.io.IOException;
import java.util.concurrent.CompletableFuture;

/**
 * Writes one backup of one disk: chunks by position, then {@link #commit} or {@link #abort}. Thread-safe: puts
 * may come from several threads. Positions not written keep the parent's chunk in an incremental backup and are
 * zero in a full one. Each position should be written at most once (the last write wins; the counters count both).
 *
 * <p>Do not call {@link #putChunk} from the repository's own worker threads (e.g. in a callback of
 * {@link BackupReader#readChunkAsync}): it may block on a full pipeline that only those threads drain.
 */
public interface BackupWriter extends AutoCloseable {
    /** The backup id. */
    String id();

    /** ceil(imageSize / chunkSize). */
    long chunkCount();

    /**
     * Hashes, compresses (and encrypts) {@code data[0, length)} on the worker pool and stores it unless the
     * repository already has it. All-zero data becomes the zero digest. {@code length} is the chunk size except for
     * the last chunk. The caller must not modify {@code data} until the future completes. Blocks (backpressure) while
     * too many puts are in flight, so memory stays bounded. A failed put also fails {@link #commit}.
     */
    CompletableFuture<Void> putChunk(long index, byte[] data, int length);

    /**
     * As {@link #putChunk(long, byte[], int)}, with the chunk id of {@code data[0, length)} already computed by a
     * hasher of {@link #newHasher()} over exactly those bytes, in order; the writer does not hash them again. A null
     * {@code id} means "not computed" (the writer hashes). A wrong id would file the data under a name that is not its
     * content's, which {@code verify} reports as damage: pass only what the hasher returned.
     */
    CompletableFuture<Void> putChunk(long index, byte[] data, int length, byte[] id);

    /** A hasher computing chunk ids as this writer's repository does (see {@link ChunkHasher}). */
    ChunkHasher newHasher();

    /** Records an all-zero chunk at {@code index} (nothing is stored). */
    void putZero(long index);

    /**
     * Records {@code count} all-zero chunks at positions {@code first .. first + count - 1} (nothing is stored): the
     * same as {@link #putZero} at each position, with work per run rather than per chunk where the writer can.
     */
    default void putZeros(long first, long count) {
        for (long i = 0; i < count; i++) {
            putZero(first + i);
        }
    }

    /**
     * Stores a small file with the backup that is not part of its disk image (a libvirt domain's XML, its NVRAM
     * file): cut into chunks of the backup's chunk size, stored like the disk's chunks (compressed, encrypted,
     * deduplicated) and listed in the backup's index, so it becomes visible with the backup at {@link #commit} and
     * never before. Call it before {@link #commit}, from any thread; it returns once the content is stored (the
     * caller may reuse the array). The format is in docs/repository-format.md
     * (Attachments).
     *
     * @param name    1 to 64 characters of {@code [A-Za-z0-9._-]}, unique within the backup
     * @param content at most 16 MiB; at most 16 attachments per backup
     * @throws io.jbackup.error.UsageException for an invalid or duplicate name, too big a content or too many
     *                                         attachments (the backup goes on)
     * @throws IOException                     if storing fails (the backup then fails too)
     */
    void attach(String name, byte[] content) throws IOException;

    /** Live counters, usable for progress. */
    BackupStats stats();

    /**
     * Waits for outstanding puts, then makes the backup durable and visible, in this order: pack fsync, catalog rows,
     * index rename, backup marked complete. On failure the backup is aborted and the cause thrown.
     */
    BackupInfo commit() throws IOException;

    /**
     * Abandons the backup: no half backup remains visible. Chunks already written stay in sealed packs and are
     * reused by later backups.
     */
    void abort();

    /** Aborts if not committed. */
    @Override
    void close();
}
