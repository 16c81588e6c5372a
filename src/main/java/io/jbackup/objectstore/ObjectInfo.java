package io.jbackup.objectstore;

import java.time.Instant;

/** An object as a listing or a stat shows it: key, size in bytes, time of its last write. */
public record ObjectInfo(String key, long size, Instant lastModified) {
}
