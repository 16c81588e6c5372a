package io.jbackup.objectstore;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The object-store port: a flat namespace of immutable-once-written objects named by keys, the only way the
 * repository will reach its storage. Two implementations: {@link LocalObjectStore} (a directory) and
 * {@link S3ObjectStore} (a bucket and prefix); {@code ObjectStoreContract} in the tests holds both to the same rules.
 *
 * <p><b>Keys</b> are {@code /}-separated segments (see {@link ObjectKeys#check}); a key is never a prefix-directory
 * of another key in a local store. <b>Writes are atomic</b>: a reader sees an object whole or not at all, never a
 * partial one. <b>Listing</b> returns keys in ascending (UTF-8 byte) order, a page at a time.
 *
 * <p><b>Conditional writes</b> ({@link #create}, {@link #replace}) are the building blocks of leases: exactly one of
 * several racing writers wins. Versions ({@link ObjectVersion}) change whenever the content changes. An
 * implementation whose client retries on its own must not report a lost race that its own earlier attempt won.
 *
 * <p><b>Errors</b> are typed subclasses of {@link ObjectStoreException}: {@link ObjectNotFoundException},
 * {@link StoreNotFoundException} (no such bucket or directory), {@link StoreAccessDeniedException} (bad credentials,
 * no permission), {@link TransientStoreException} (5xx, throttling, connection resets after the client's retries).
 */
public interface ObjectStore extends AutoCloseable {

    /** Stores {@code data} under {@code key}, replacing any previous object; atomic. */
    void put(String key, ObjectSource data) throws IOException;

    /**
     * Stores {@code data} under {@code key} unless an object is there; atomic.
     *
     * @return the new object's version, or empty when an object already existed (it is left unchanged)
     */
    Optional<ObjectVersion> create(String key, ObjectSource data) throws IOException;

    /**
     * Replaces the object under {@code key} if its version is still {@code expected}; atomic.
     *
     * @return the new version, or empty when the object changed or vanished since {@code expected} was read
     */
    Optional<ObjectVersion> replace(String key, ObjectVersion expected, ObjectSource data) throws IOException;

    /** The whole object with its version, or empty when there is none. */
    Optional<VersionedObject> getVersioned(String key) throws IOException;

    /**
     * Reads up to {@code length} bytes at {@code offset}. The result is shorter only where the object ends: empty at
     * or past the end, and for {@code length} 0.
     *
     * @throws ObjectNotFoundException when there is no object under {@code key}
     */
    byte[] get(String key, long offset, int length) throws IOException;

    /** The object's size and modification time, or empty when there is none. */
    Optional<ObjectInfo> stat(String key) throws IOException;

    /**
     * One page of the keys that start with {@code prefix} and sort after {@code startAfter} (null: from the first),
     * at most {@link #pageSize()} of them, in ascending order.
     */
    ListPage list(String prefix, String startAfter) throws IOException;

    /** Deletes the object under {@code key}; deleting a missing object is not an error. */
    void delete(String key) throws IOException;

    /** The most keys {@link #list} returns at once. */
    int pageSize();

    /** A name for messages: {@code /srv/repo} or {@code s3://bucket/prefix}. */
    String describe();

    @Override
    void close() throws IOException;

    /** {@link #put(String, ObjectSource)} of bytes. */
    default void put(String key, byte[] data) throws IOException {
        put(key, ObjectSource.of(data));
    }

    /** {@link #put(String, ObjectSource)} of a file's content. */
    default void put(String key, Path file) throws IOException {
        put(key, ObjectSource.of(file));
    }

    /** Stores {@code data} unless an object is there: true when this call created it. */
    default boolean putIfAbsent(String key, ObjectSource data) throws IOException {
        return create(key, data).isPresent();
    }

    /** {@link #putIfAbsent(String, ObjectSource)} of bytes. */
    default boolean putIfAbsent(String key, byte[] data) throws IOException {
        return putIfAbsent(key, ObjectSource.of(data));
    }

    /** The whole object. @throws ObjectNotFoundException when there is none */
    default byte[] get(String key) throws IOException {
        return getVersioned(key).orElseThrow(() -> new ObjectNotFoundException(describe(), key)).data();
    }

    /** Every key that starts with {@code prefix}, page after page. */
    default List<ObjectInfo> listAll(String prefix) throws IOException {
        List<ObjectInfo> all = new ArrayList<>();
        String after = null;
        ListPage page;
        do {
            page = list(prefix, after);
            all.addAll(page.objects());
            if (!page.objects().isEmpty()) {
                after = page.objects().get(page.objects().size() - 1).key();
            }
        } while (page.truncated());
        return all;
    }
}
