package io.jbackup.store;

import io.jbackup.model.AttachmentInfo;
import io.jbackup.model.BackupInfo;

import java.io.IOException;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/** Reads one backup by chunk position. Thread-safe. */
public interface BackupReader extends AutoCloseable {
    BackupInfo info();

    long imageSize();

    int chunkSize();

    long chunkCount();

    /** Whether the chunk at {@code index} is all zeros (nothing to read). */
    boolean isZero(long index);

    /** The 32-byte digest of the chunk at {@code index} (32 zero bytes for a zero chunk). */
    byte[] digest(long index);

    /** The length of the chunk at {@code index}: the chunk size, or less for the last one. */
    default int chunkLength(long index) {
        long start = index * chunkSize();
        return (int) Math.min(chunkSize(), imageSize() - start);
    }

    /**
     * The chunk's data, checked (CRC32C, GCM tag, length, digest); zero chunks come back as zeros. Throws
     * {@link ChunkCorruptException} naming the pack file, record offset, digest, backup and disk offset.
     */
    byte[] readChunk(long index) throws IOException;

    /** {@link #readChunk} on the repository's worker pool. */
    CompletableFuture<byte[]> readChunkAsync(long index);

    /**
     * {@link #readChunk} into {@code dst}: the chunk's {@link #chunkLength} bytes go to {@code dst} from its position,
     * which is advanced past them; checked the same way and failing with the same exceptions. Lets a caller decode
     * into a buffer it reuses (e.g. a pooled direct buffer it writes to a file from) instead of a new array.
     */
    default void readChunk(long index, java.nio.ByteBuffer dst) throws IOException {
        dst.put(readChunk(index));
    }

    /** {@link #readChunk(long, java.nio.ByteBuffer)} on the repository's worker pool. */
    default CompletableFuture<Void> readChunkAsync(long index, java.nio.ByteBuffer dst) {
        return readChunkAsync(index).thenAccept(dst::put);
    }

    /** The backup's attachments (name, size), in the order they were attached. */
    List<AttachmentInfo> attachments() throws IOException;

    /**
     * The content of one attachment, every chunk checked like a disk chunk. Throws {@link AttachmentCorruptException}
     * (naming the backup and the attachment) if a chunk is damaged or missing, and a
     * {@link io.jbackup.error.NotFoundException} if the backup has no such attachment.
     */
    byte[] readAttachment(String name) throws IOException;

    @Override
    void close();
}
