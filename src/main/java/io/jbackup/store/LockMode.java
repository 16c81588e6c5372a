package io.jbackup.store;

/**
 * How a process holds the repository lock. Backups and restores share it; maintenance that rewrites or removes
 * files (verify --repair, repair --rebuild-catalog, gc) takes it exclusively.
 */
public enum LockMode {
    SHARED,
    EXCLUSIVE
}
