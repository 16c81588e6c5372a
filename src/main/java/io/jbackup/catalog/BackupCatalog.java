package io.jbackup.catalog;

import io.jbackup.model.AttachmentInfo;
import io.jbackup.model.BackupInfo;
import io.jbackup.model.BackupStats;
import io.jbackup.model.RepositoryException;

import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The catalog's backups: one row per backup of a disk (state, counters, labels, source), with its protection and
 * last verification. Which chunk sits at which position of a backup is in the backup's index file, never here. A
 * part of the {@link Catalog} port.
 */
public interface BackupCatalog {
    /**
     * Inserts a backup row (normally {@code incomplete}, owned by {@code owner}); the id must be new, else
     * {@link DuplicateBackupIdException}.
     */
    void insertBackup(BackupInfo b, String uuid, String owner) throws RepositoryException;

    /** Thrown by {@link #insertBackup} when the id is taken (the caller draws a new one). */
    final class DuplicateBackupIdException extends RepositoryException {
        private static final long serialVersionUID = 1L;

        DuplicateBackupIdException(String id) {
            super("backup id " + id + " is already taken");
        }
    }

    /**
     * Records the attachments of a backup row (name and size), replacing any recorded before. The rows go with the
     * backup's row. They are a cache of the backup's index metadata, like the rest of the row.
     */
    void setAttachments(String backupId, List<AttachmentInfo> attachments) throws RepositoryException;

    /** The attachments recorded for a backup, by name; empty if none (or no such backup). */
    List<AttachmentInfo> attachments(String backupId) throws RepositoryException;

    /** Marks a backup complete with its final counters; its owner is cleared. */
    void completeBackup(String id, Instant completed, BackupStats stats) throws RepositoryException;

    /**
     * Sets a backup's state ({@code complete}, {@code bad}) with an optional reason; returns false if no complete or
     * bad backup has this id.
     */
    boolean setState(String id, String state, String reason) throws RepositoryException;

    /** Removes a backup row and its labels. */
    void deleteBackup(String id) throws RepositoryException;

    /** The reason recorded with a backup's state (why it is bad), or null. */
    String stateReason(String id) throws RepositoryException;

    /** The backup with exactly this id. */
    Optional<BackupInfo> backup(String id) throws RepositoryException;

    /** Every backup, oldest first. */
    List<BackupInfo> backups() throws RepositoryException;

    /** Backups whose id starts with {@code prefix} (taken literally), oldest first. */
    List<BackupInfo> backupsByPrefix(String prefix) throws RepositoryException;

    /**
     * The newest complete backup of a disk ({@code vm} null for a standalone disk) created at or before
     * {@code notAfter} (null: any time).
     */
    Optional<BackupInfo> latestComplete(String vm, String disk, Instant notAfter) throws RepositoryException;

    /** Incomplete backups with the owner recorded when they began ({@code host/pid/start}). */
    Map<String, String> incompleteBackups() throws RepositoryException;

    /** Protects a backup from pruning (or lifts it); returns false if no complete or bad backup has this id. */
    boolean setProtected(String id, boolean protect, String reason) throws RepositoryException;

    /** Ids of protected backups, with the reason given (may be null). */
    Map<String, String> protectedBackups() throws RepositoryException;

    /** When a backup was last verified and with which sample percentage. */
    record Verification(Instant when, double samplePercent) {
    }

    /** Records that these backups passed a verify run (sampling {@code samplePercent} of their chunks). */
    void setVerified(List<String> ids, Instant when, double samplePercent) throws RepositoryException;

    /** The last successful verification of every backup that has one. */
    Map<String, Verification> verifications() throws RepositoryException;
}
