package io.jbackup.store;

import io.jbackup.objectstore.ObjectStore;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Objects;

/**
 * Where a repository is: a local directory, or a prefix of an object store (S3) with this host's cache directory.
 */
public sealed interface RepositoryLocation permits RepositoryLocation.Local, RepositoryLocation.Remote {

    /** The repository for messages: its directory, or {@code s3://bucket/prefix}. */
    String describe();

    /** A repository directory. */
    record Local(Path dir) implements RepositoryLocation {
        public Local {
            Objects.requireNonNull(dir, "dir");
        }

        @Override
        public String describe() {
            return dir.toString();
        }
    }

    /**
     * A repository in an object store.
     *
     * @param url       {@code s3://bucket/prefix}, as the user gave it
     * @param opener    connects to the store (checks bucket and credentials)
     * @param cacheRoot the directory under which this host keeps one cache directory per repository id
     */
    record Remote(String url, Opener opener, Path cacheRoot) implements RepositoryLocation {
        public Remote {
            Objects.requireNonNull(url, "url");
            Objects.requireNonNull(opener, "opener");
            Objects.requireNonNull(cacheRoot, "cacheRoot");
        }

        @Override
        public String describe() {
            return url;
        }
    }

    /** Connects to an object store. */
    @FunctionalInterface
    interface Opener {
        ObjectStore open() throws IOException;
    }
}
