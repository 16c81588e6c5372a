package io.jbackup.objectstore;

/** The content of an object and the version it had when it was read. */
public record VersionedObject(byte[] data, ObjectVersion version) {
}
