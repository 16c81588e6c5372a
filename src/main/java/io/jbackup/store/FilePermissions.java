package io.jbackup.store;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * The POSIX permissions jbackup gives what it must keep private (see docs/security.md): the repository directory
 * {@code 0700}, so no other local user reaches anything inside it; the key file and the catalog {@code 0600}, so
 * they stay private even if an administrator opens the directory to a group. On a file system without POSIX
 * permissions this does nothing (logged at debug level).
 */
public final class FilePermissions {
    private static final Logger LOG = LoggerFactory.getLogger(FilePermissions.class);
    /** {@code rwx------}. */
    public static final Set<PosixFilePermission> OWNER_DIR = PosixFilePermissions.fromString("rwx------");
    /** {@code rw-------}. */
    public static final Set<PosixFilePermission> OWNER_FILE = PosixFilePermissions.fromString("rw-------");

    private FilePermissions() {
    }

    /** Sets {@code perms} on {@code path}. */
    public static void restrict(Path path, Set<PosixFilePermission> perms) throws IOException {
        try {
            Files.setPosixFilePermissions(path, perms);
        } catch (UnsupportedOperationException e) {
            LOG.debug("{}: no POSIX permissions on this file system", path);
        }
    }
}
