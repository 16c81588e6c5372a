package io.jbackup.objectstore;

import java.util.Objects;

/**
 * The version of an object as its store tells it (an S3 ETag, a content digest in a local store): it changes when
 * the content changes. Only compared for equality, and only passed back to the store that gave it.
 */
public record ObjectVersion(String tag) {
    public ObjectVersion {
        Objects.requireNonNull(tag, "tag");
    }
}
