package io.jbackup.store;

import io.jbackup.model.RepositoryException;

/**
 * An attachment of a backup failed its checks on read: one of its chunks is damaged (the cause is then the
 * {@link ChunkCorruptException} naming the pack and offset) or missing. The message names the backup and the
 * attachment.
 */
public final class AttachmentCorruptException extends RepositoryException {
    private static final long serialVersionUID = 1L;

    private final String backupId;
    private final String attachment;

    public AttachmentCorruptException(String backupId, String attachment, String problem, Throwable cause) {
        super("attachment " + attachment + " of backup " + backupId + " is damaged: " + problem, cause);
        this.backupId = backupId;
        this.attachment = attachment;
    }

    /** The backup whose attachment was read. */
    public String backupId() {
        return backupId;
    }

    /** The attachment's name. */
    public String attachment() {
        return attachment;
    }
}
