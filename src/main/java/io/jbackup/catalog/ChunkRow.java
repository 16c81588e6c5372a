package io.jbackup.catalog;

/** One chunk of a pack as registered in the catalog: its 32-byte digest and record position. */
public record ChunkRow(byte[] digest, long offset, int length, int rawLength) {
}
