package io.jbackup.catalog;

import java.util.List;

/**
 * The catalog schema as numbered migrations. {@code PRAGMA user_version} holds the number of migrations applied;
 * {@link SqliteDb#open} applies the missing ones in one transaction and refuses a catalog newer than this list.
 * Never edit a released migration: append a new one.
 *
 * <p>Row counts grow with unique chunks and packs, never with backups × chunks: which chunk sits at which position
 * of a backup lives only in that backup's index file.
 */
final class Migrations {
    private Migrations() {
    }

    static final List<String[]> ALL = List.<String[]>of(
        // 1: initial schema
        new String[] {
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
            "CREATE TABLE disks (id INTEGER PRIMARY KEY, vm TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (vm, name))",
            """
            CREATE TABLE backups (
              id TEXT PRIMARY KEY,
              uuid TEXT NOT NULL,
              disk_id INTEGER NOT NULL REFERENCES disks(id),
              type TEXT NOT NULL,
              parent_id TEXT,
              created_ms INTEGER NOT NULL,
              completed_ms INTEGER,
              image_size INTEGER NOT NULL,
              chunk_size INTEGER NOT NULL,
              state TEXT NOT NULL,
              state_reason TEXT,
              note TEXT,
              source_json TEXT NOT NULL DEFAULT '{}',
              chunks_total INTEGER NOT NULL DEFAULT 0,
              chunks_new INTEGER NOT NULL DEFAULT 0,
              chunks_dedup INTEGER NOT NULL DEFAULT 0,
              chunks_zero INTEGER NOT NULL DEFAULT 0,
              bytes_new INTEGER NOT NULL DEFAULT 0,
              bytes_dedup INTEGER NOT NULL DEFAULT 0,
              bytes_zero INTEGER NOT NULL DEFAULT 0,
              bytes_stored INTEGER NOT NULL DEFAULT 0,
              owner TEXT
            )""",
            "CREATE INDEX backups_by_disk ON backups (disk_id, state, created_ms)",
            """
            CREATE TABLE labels (
              backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
              key TEXT NOT NULL,
              value TEXT NOT NULL,
              PRIMARY KEY (backup_id, key)
            ) WITHOUT ROWID""",
            """
            CREATE TABLE packs (
              id INTEGER PRIMARY KEY,
              name TEXT NOT NULL UNIQUE,
              size INTEGER NOT NULL,
              chunk_count INTEGER NOT NULL,
              created_ms INTEGER NOT NULL
            )""",
            """
            CREATE TABLE chunks (
              digest BLOB PRIMARY KEY,
              pack_id INTEGER NOT NULL REFERENCES packs(id),
              offset INTEGER NOT NULL,
              length INTEGER NOT NULL,
              raw_length INTEGER NOT NULL
            ) WITHOUT ROWID""",
            "CREATE INDEX chunks_by_pack ON chunks (pack_id, offset)",
            """
            CREATE TABLE runs (
              id INTEGER PRIMARY KEY,
              command TEXT NOT NULL,
              started_ms INTEGER NOT NULL,
              finished_ms INTEGER,
              status TEXT NOT NULL,
              owner TEXT,
              message TEXT
            )""",
        },
        // 2: protection, verification state, gc's condemned chunks
        new String[] {
            "ALTER TABLE backups ADD COLUMN protected INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE backups ADD COLUMN protect_reason TEXT",
            "ALTER TABLE backups ADD COLUMN verified_ms INTEGER",
            "ALTER TABLE backups ADD COLUMN verified_sample REAL",
            """
            CREATE TABLE gc_condemned (
              digest BLOB PRIMARY KEY,
              pack_id INTEGER NOT NULL,
              offset INTEGER NOT NULL,
              length INTEGER NOT NULL,
              raw_length INTEGER NOT NULL
            ) WITHOUT ROWID""",
            "CREATE INDEX gc_condemned_by_pack ON gc_condemned (pack_id)",
        },
        // 3: chunks found damaged: out of the dedup index until a backup stores them again
        new String[] {
            """
            CREATE TABLE damaged_chunks (
              digest BLOB PRIMARY KEY,
              pack TEXT NOT NULL,
              offset INTEGER NOT NULL,
              length INTEGER NOT NULL,
              raw_length INTEGER NOT NULL,
              problem TEXT NOT NULL,
              found_ms INTEGER NOT NULL
            ) WITHOUT ROWID""",
        },
        // 4: backup attachments (name and size; the content is in the backup's index metadata and chunks)
        new String[] {
            """
            CREATE TABLE attachments (
              backup_id TEXT NOT NULL REFERENCES backups(id) ON DELETE CASCADE,
              name TEXT NOT NULL,
              size INTEGER NOT NULL,
              PRIMARY KEY (backup_id, name)
            ) WITHOUT ROWID""",
        });
}
