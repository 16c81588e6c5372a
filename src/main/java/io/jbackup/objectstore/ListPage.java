package io.jbackup.objectstore;

import java.util.List;

/**
 * One page of a listing, in ascending key order; {@code truncated} when more keys follow (ask again with the last
 * key as {@code startAfter}).
 */
public record ListPage(List<ObjectInfo> objects, boolean truncated) {
    public ListPage {
        objects = List.copyOf(objects);
    }
}
