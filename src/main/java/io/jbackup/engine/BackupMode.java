package io.jbackup.engine;

/** The kind of backup asked for. */
public enum BackupMode {
    /** Read every allocated extent. */
    FULL,
    /** Read only the chunks touched by the dirty bitmap since the parent; refuse when that is not safe. */
    INCREMENTAL,
    /** Incremental when it is safe, otherwise full, with the reason reported. */
    AUTO
}
