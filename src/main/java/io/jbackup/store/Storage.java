package io.jbackup.store;

import io.jbackup.model.RepositoryException;
import io.jbackup.objectstore.LocalObjectStore;
import io.jbackup.objectstore.ObjectInfo;
import io.jbackup.objectstore.ObjectNotFoundException;
import io.jbackup.objectstore.ObjectStore;
import io.jbackup.store.layout.RepositoryLayout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * Where a repository's objects live, and where this host keeps its working files: the one place the store reaches
 * its storage, through the object-store port ({@link ObjectStore}) with names from {@link RepositoryLayout}.
 *
 * <ul>
 *   <li><b>Local</b> ({@link #local}): the objects are the files of the repository directory, which is also the
 *       host directory (catalog, locks, temporary files). Publishing a pack or an index is an fsync and a rename, as
 *       it always was; reads go to the files directly.</li>
 *   <li><b>Remote</b> ({@link #remote}, e.g. S3): packs and indexes are uploaded from the host directory's
 *       {@code tmp/} and then removed there; the host directory is a cache ({@code catalog.db}, locks, and copies of
 *       the immutable index objects under {@code indexes/}). A backup is complete once its manifest object exists
 *       ({@link RepositoryLayout#manifest}), written after its packs and its index.</li>
 * </ul>
 */
final class Storage implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Storage.class);

    private final ObjectStore objects;
    private final Path hostDir;
    private final boolean remote;
    private final String location;
    private volatile DeletionLease lease;

    private Storage(ObjectStore objects, Path hostDir, boolean remote, String location) {
        this.objects = objects;
        this.hostDir = hostDir;
        this.remote = remote;
        this.location = location;
    }

    /** The repository directory {@code dir}: objects and working files in one place. */
    static Storage local(Path dir) throws IOException {
        return new Storage(LocalObjectStore.open(dir, 100_000), dir, false, dir.toString());
    }

    /** A repository in {@code objects} (which this storage closes), with this host's working files in {@code hostDir}. */
    static Storage remote(ObjectStore objects, Path hostDir) {
        return new Storage(objects, hostDir, true, objects.describe());
    }

    /** The object store. */
    ObjectStore objects() {
        return objects;
    }

    /** Whether the objects live elsewhere than the host directory (an S3 bucket). */
    boolean remote() {
        return remote;
    }

    /** The repository for messages: {@code /srv/repo} or {@code s3://bucket/prefix}. */
    String location() {
        return location;
    }

    /** This host's working directory: the repository itself when local, the cache directory when remote. */
    Path hostDir() {
        return hostDir;
    }

    /** An object for messages: its file, or {@code s3://bucket/prefix/KEY}. */
    String describe(String key) {
        return remote ? location + "/" + key : RepositoryLayout.file(hostDir, key).toString();
    }

    /** The local file of {@code key} in a local repository (never called for a remote one). */
    private Path file(String key) {
        assert !remote;
        return RepositoryLayout.file(hostDir, key);
    }

    // --------------------------------------------------------------------------------------------------- packs

    /** Makes the sealed pack file {@code tmp} (already fsynced) the pack {@code name}; {@code tmp} is gone after. */
    void publishPack(Path tmp, String name) throws IOException {
        String key = RepositoryLayout.pack(name);
        if (remote) {
            objects.put(key, tmp);
            Files.deleteIfExists(tmp);
            return;
        }
        Path target = file(key);
        if (!Files.isDirectory(target.getParent())) {
            Files.createDirectories(target.getParent());
            FileSync.syncDir(target.getParent().getParent());
        }
        FileSync.rename(tmp, target);
    }

    /** The names of the sealed packs, sorted. */
    List<String> packNames() throws IOException {
        List<String> out = new ArrayList<>();
        for (ObjectInfo o : objects.listAll(RepositoryLayout.PACKS)) {
            RepositoryLayout.parse(o.key()).filter(e -> e.kind() == RepositoryLayout.Kind.PACK)
                .ifPresent(e -> out.add(e.name()));
        }
        out.sort(null);
        return out;
    }

    /** The sealed packs with their sizes and times, sorted by name. */
    List<ObjectInfo> packObjects() throws IOException {
        List<ObjectInfo> out = new ArrayList<>();
        for (ObjectInfo o : objects.listAll(RepositoryLayout.PACKS)) {
            if (RepositoryLayout.parse(o.key()).filter(e -> e.kind() == RepositoryLayout.Kind.PACK).isPresent()) {
                out.add(o);
            }
        }
        return out;
    }

    boolean packExists(String name) throws IOException {
        return remote ? objects.stat(RepositoryLayout.pack(name)).isPresent()
            : Files.exists(file(RepositoryLayout.pack(name)));
    }

    /** The size of pack {@code name}, or -1 when it does not exist. */
    long packSize(String name) throws IOException {
        return objects.stat(RepositoryLayout.pack(name)).map(ObjectInfo::size).orElse(-1L);
    }

    void deletePack(String name) throws IOException {
        checkDeletion();
        objects.delete(RepositoryLayout.pack(name));
    }

    /**
     * The deletion lease this process holds while it prunes, forgets or collects garbage in an object store (null
     * when released): every deletion of a pack, an index or a manifest there checks it first.
     */
    void guardDeletions(DeletionLease l) {
        this.lease = l;
    }

    /** Refuses to delete from an object store without a valid deletion lease (the only coordination of hosts). */
    private void checkDeletion() throws IOException {
        if (!remote) {
            return;
        }
        DeletionLease l = lease;
        if (l == null) {
            throw new IllegalStateException("deleting from " + location + " without the deletion lease");
        }
        l.check();
    }

    /** Pack {@code name} for messages. */
    String describePack(String name) {
        return describe(RepositoryLayout.pack(name));
    }

    /** Random access to a sealed pack, for reading its footer or scanning its records. */
    Ranged openPack(String name) throws IOException {
        String key = RepositoryLayout.pack(name);
        if (!remote) {
            return rangedFile(file(key));
        }
        long size = objects.stat(key).orElseThrow(() -> new ObjectNotFoundException(location, key)).size();
        return new Ranged() {
            @Override
            public long size() {
                return size;
            }

            @Override
            public void readFully(ByteBuffer dst, long pos) throws IOException {
                readRange(key, dst, pos);
            }

            @Override
            public String describe() {
                return Storage.this.describe(key);
            }

            @Override
            public void close() {
            }
        };
    }

    /** Random access to the local file {@code f}. */
    static Ranged rangedFile(Path f) throws IOException {
        FileChannel ch = FileChannel.open(f, StandardOpenOption.READ);
        return new Ranged() {
            @Override
            public long size() throws IOException {
                return ch.size();
            }

            @Override
            public void readFully(ByteBuffer dst, long pos) throws IOException {
                FileSync.readFully(ch, dst, pos, f);
            }

            @Override
            public String describe() {
                return f.toString();
            }

            @Override
            public void close() throws IOException {
                ch.close();
            }
        };
    }

    /**
     * Reads exactly {@code dst.remaining()} bytes of object {@code key} at {@code pos}: a short answer is a truncated
     * object ({@link TruncatedObjectException}).
     */
    void readRange(String key, ByteBuffer dst, long pos) throws IOException {
        int want = dst.remaining();
        byte[] b = objects.get(key, pos, want);
        if (b.length < want) {
            throw new TruncatedObjectException(describe(key) + " is truncated: " + b.length + " of " + want
                + " bytes at offset " + pos);
        }
        dst.put(b);
    }

    /** Random read access to one object. */
    interface Ranged extends AutoCloseable {
        long size() throws IOException;

        /** Reads exactly {@code dst.remaining()} bytes at {@code pos}. */
        void readFully(ByteBuffer dst, long pos) throws IOException;

        String describe();

        @Override
        void close() throws IOException;
    }

    // ------------------------------------------------------------------------------------------------- indexes

    /**
     * The local file of the index of backup {@code id}: in a local repository, the index itself; in a remote one, a
     * cached copy, downloaded on first use (an index never changes under its name). A missing index gives a path
     * that does not exist, so the reader reports it as missing.
     */
    Path indexFile(String id) throws IOException {
        String key = RepositoryLayout.index(id);
        Path f = RepositoryLayout.file(hostDir, key);
        if (!remote || Files.exists(f)) {
            return f;
        }
        Optional<io.jbackup.objectstore.VersionedObject> o = objects.getVersioned(key);
        if (o.isEmpty()) {
            return f;
        }
        Files.createDirectories(f.getParent());
        Path tmp = f.resolveSibling("." + f.getFileName() + ".part-" + ProcessHandle.current().pid() + "-"
            + Thread.currentThread().getId());
        Files.write(tmp, o.get().data());
        Files.move(tmp, f, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        LOG.debug("cached index {} ({} bytes)", key, o.get().data().length);
        return f;
    }

    /**
     * The index of backup {@code id} as the repository stores it, for verify: in a local repository the index itself;
     * in a remote one the object downloaded anew next to this host's cached copy (never the cached copy, which would
     * hide damage to the object that other hosts read). Pass the result to {@link #releaseStoredIndex}. A missing
     * index gives a path that does not exist.
     */
    Path storedIndexFile(String id) throws IOException {
        String key = RepositoryLayout.index(id);
        Path f = RepositoryLayout.file(hostDir, key);
        if (!remote) {
            return f;
        }
        Path tmp = f.resolveSibling("." + f.getFileName() + ".verify-" + ProcessHandle.current().pid() + "-"
            + Thread.currentThread().getId());
        Optional<io.jbackup.objectstore.VersionedObject> o = objects.getVersioned(key);
        if (o.isEmpty()) {
            return tmp;
        }
        Files.createDirectories(f.getParent());
        Files.write(tmp, o.get().data());
        return tmp;
    }

    /**
     * Done with {@link #storedIndexFile}: in a remote repository an {@code intact} download becomes this host's cached
     * copy of the index (replacing a copy that may have been damaged locally), a damaged one is deleted.
     */
    void releaseStoredIndex(Path stored, String id, boolean intact) throws IOException {
        if (!remote) {
            return;
        }
        if (intact) {
            Files.move(stored, RepositoryLayout.file(hostDir, RepositoryLayout.index(id)),
                StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } else {
            Files.deleteIfExists(stored);
        }
    }

    /**
     * This host's cached copy of the index of {@code id} in a remote repository, if it has one (null otherwise, and
     * always for a local repository).
     */
    Path cachedIndexFile(String id) {
        Path f = RepositoryLayout.file(hostDir, RepositoryLayout.index(id));
        return remote && Files.isRegularFile(f) ? f : null;
    }

    /** Uploads {@code file} (an intact copy) as the index object of backup {@code id}, replacing a damaged one. */
    void reuploadIndex(Path file, String id) throws IOException {
        objects.put(RepositoryLayout.index(id), file);
    }

    boolean indexExists(String id) throws IOException {
        String key = RepositoryLayout.index(id);
        return remote ? objects.stat(key).isPresent() : Files.exists(file(key));
    }

    /** Makes the finished, fsynced index file {@code tmp} the index of backup {@code id}; {@code tmp} is gone after. */
    void publishIndex(Path tmp, String id) throws IOException {
        String key = RepositoryLayout.index(id);
        Path f = RepositoryLayout.file(hostDir, key);
        if (remote) {
            objects.put(key, tmp);
            Files.createDirectories(f.getParent());
            Files.move(tmp, f, StandardCopyOption.REPLACE_EXISTING);
            return;
        }
        FileSync.rename(tmp, f);
    }

    /** The ids of the backups whose index exists, sorted. */
    List<String> indexIds() throws IOException {
        List<String> out = new ArrayList<>();
        for (ObjectInfo o : objects.listAll(RepositoryLayout.INDEXES)) {
            RepositoryLayout.parse(o.key()).filter(e -> e.kind() == RepositoryLayout.Kind.INDEX)
                .ifPresent(e -> out.add(e.name()));
        }
        out.sort(null);
        return out;
    }

    /** The ids that have a {@code kind} entry under {@code indexes/} ({@code .bad}, {@code .keep}, {@code .deleted}). */
    List<String> indexEntries(RepositoryLayout.Kind kind) throws IOException {
        List<String> out = new ArrayList<>();
        for (ObjectInfo o : objects.listAll(RepositoryLayout.INDEXES)) {
            RepositoryLayout.parse(o.key()).filter(e -> e.kind() == kind).ifPresent(e -> out.add(e.name()));
        }
        out.sort(null);
        return out;
    }

    /**
     * First step of deleting backup {@code id}: afterwards no reader finds it. Local: the index is renamed to
     * {@code ID.deleted} (finished by {@link #finishDelete}, or by the next open after a crash). Remote: the manifest
     * is deleted (the index and markers follow in {@link #finishDelete}).
     */
    void beginDelete(String id) throws IOException {
        checkDeletion();
        if (remote) {
            objects.delete(RepositoryLayout.manifest(id));
            return;
        }
        Path idx = file(RepositoryLayout.index(id));
        if (Files.exists(idx)) {
            FileSync.rename(idx, file(RepositoryLayout.deletedIndex(id)));
        }
    }

    /** Removes what is left of deleted backup {@code id}: index, markers, and its cached copy. */
    void finishDelete(String id) throws IOException {
        checkDeletion();
        if (remote) {
            objects.delete(RepositoryLayout.index(id));
            Files.deleteIfExists(RepositoryLayout.file(hostDir, RepositoryLayout.index(id)));
        }
        for (String key : List.of(RepositoryLayout.badMarker(id), RepositoryLayout.keepMarker(id),
                RepositoryLayout.deletedIndex(id))) {
            delete(key);
        }
    }

    /** Deletes the index object of a backup that has no manifest (a dead commit), holding the deletion lease. */
    void deleteOrphanIndex(String id) throws IOException {
        checkDeletion();
        objects.delete(RepositoryLayout.index(id));
        Files.deleteIfExists(RepositoryLayout.file(hostDir, RepositoryLayout.index(id)));
    }

    /** Removes the index of a backup whose commit failed after the index was published. */
    void unpublishIndex(String id) throws IOException {
        String key = RepositoryLayout.index(id);
        if (remote) {
            objects.delete(key);
        }
        Files.deleteIfExists(RepositoryLayout.file(hostDir, key));
    }

    // ----------------------------------------------------------------------------------- small objects, manifests

    /** A small object (config, marker, manifest, key slot), or empty. */
    Optional<byte[]> read(String key) throws IOException {
        if (!remote) {
            try {
                return Optional.of(Files.readAllBytes(file(key)));
            } catch (NoSuchFileException e) {
                return Optional.empty();
            }
        }
        return objects.getVersioned(key).map(io.jbackup.objectstore.VersionedObject::data);
    }

    /** Writes a small object atomically and durably. */
    void write(String key, byte[] data) throws IOException {
        if (remote) {
            objects.put(key, data);
        } else {
            FileSync.writeAtomically(file(key), data);
        }
    }

    void delete(String key) throws IOException {
        if (remote) {
            objects.delete(key);
        } else {
            Files.deleteIfExists(file(key));
        }
    }

    boolean exists(String key) throws IOException {
        return remote ? objects.stat(key).isPresent() : Files.exists(file(key));
    }

    /** The backup ids that have a manifest (remote repositories), sorted. */
    List<String> manifestIds() throws IOException {
        List<String> out = new ArrayList<>();
        for (ObjectInfo o : objects.listAll(RepositoryLayout.MANIFESTS)) {
            RepositoryLayout.parse(o.key()).filter(e -> e.kind() == RepositoryLayout.Kind.MANIFEST)
                .ifPresent(e -> out.add(e.name()));
        }
        out.sort(null);
        return out;
    }

    @Override
    public void close() {
        try {
            objects.close();
        } catch (IOException e) {
            LOG.debug("closing {}: {}", location, e.toString());
        }
    }
}
