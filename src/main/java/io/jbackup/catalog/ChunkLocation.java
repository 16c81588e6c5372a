package io.jbackup.catalog;

/**
 * Where a chunk record lives: the pack file's name (32 hex characters, see {@code PackFormat}), the record's
 * byte offset in it, the whole record's length and the chunk's raw (plaintext) length.
 */
public record ChunkLocation(String pack, long offset, int length, int rawLength) {
}
