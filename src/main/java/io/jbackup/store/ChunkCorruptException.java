package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/**
 * A stored chunk failed its checks on read: the record checksum (CRC32C), the AES-GCM tag, decompression, its length
 * or its digest. The message names the pack file and record offset, the digest, and, when known, the backup and the
 * disk offset being read.
 */
public final class ChunkCorruptException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    private final String pack;
    private final long packOffset;
    private final String digest;
    private final String backupId;
    private final long diskOffset;
    private final String problem;

    public ChunkCorruptException(String pack, long packOffset, String digest, String backupId, long diskOffset,
                                 String problem) {
        super("chunk " + digest + " is damaged (" + problem + ") in pack " + pack + " at offset " + packOffset
            + (backupId == null ? "" : "; read for backup " + backupId + " at disk offset " + diskOffset)
            + "; run 'jbackup verify' to list every backup that uses it");
        this.pack = pack;
        this.packOffset = packOffset;
        this.digest = digest;
        this.backupId = backupId;
        this.diskOffset = diskOffset;
        this.problem = problem;
    }

    /** The pack: its file, or its object in an object store. */
    public String pack() {
        return pack;
    }

    public long packOffset() {
        return packOffset;
    }

    /** The chunk digest in hex. */
    public String digest() {
        return digest;
    }

    /** The backup being read, or null. */
    public String backupId() {
        return backupId;
    }

    /** The disk offset being read, or -1. */
    public long diskOffset() {
        return diskOffset;
    }

    /** What failed: checksum, authentication tag, decompression, length or digest. */
    public String problem() {
        return problem;
    }
}
