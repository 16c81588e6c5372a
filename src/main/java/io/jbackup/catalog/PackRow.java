package io.jbackup.catalog;

import java.time.Instant;

/** A sealed pack known to the catalog. */
public record PackRow(String name, long size, int chunkCount, Instant created) {
}
