package io.jbackup.nbd.server;

import io.jbackup.error.UsageException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.net.ConnectException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Objects;

/**
 * The one rule for every unix socket jbackup listens on (or has QEMU listen on): a path that accepts connections
 * belongs to a running server and is never taken over; a stale socket file (nothing accepts on it) is replaced;
 * anything that is not a socket is never deleted. At shutdown the file is removed only if it is still the one this
 * process created (same inode): a later server on the same path keeps its socket.
 */
public final class UnixSockets {
    private static final Logger LOG = LoggerFactory.getLogger(UnixSockets.class);
    private static final int S_IFMT = 0170000;
    private static final int S_IFSOCK = 0140000;

    private UnixSockets() {
    }

    /**
     * Makes {@code path} free to bind: nothing there, or a stale socket (removed here). Throws
     * {@link SocketPathException} when a server accepts on it or when it is not a socket; {@code option} names the
     * option that chose the path, for the message (e.g. {@code --socket}).
     */
    public static void claim(Path path, String option) throws IOException {
        Path p = path.toAbsolutePath();
        if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
            Path parent = p.getParent();
            if (parent != null && !Files.isDirectory(parent)) {
                // else bind fails with a bare "No such file or directory"
                throw new UsageException("cannot listen on " + p + ": directory " + parent + " does not exist; "
                    + "create it first or choose another " + option + " path");
            }
            return;
        }
        if (!isSocket(p)) {
            String kind = Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS) ? "a directory"
                : Files.isSymbolicLink(p) ? "a symbolic link" : Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)
                ? "a regular file" : "not a socket";
            throw new SocketPathException(p, SocketPathException.Reason.NOT_A_SOCKET, "cannot listen on " + p
                + ": the path exists and is not a socket (" + kind + "); jbackup does not delete it: remove it "
                + "yourself or choose another " + option + " path");
        }
        if (accepts(p)) {
            throw new SocketPathException(p, SocketPathException.Reason.IN_USE, "cannot listen on " + p
                + ": it is already in use by a running server (it accepts connections); stop that server or "
                + "choose another " + option + " path");
        }
        LOG.debug("removing stale socket {} (nothing accepts on it)", p);
        try {
            Files.delete(p);
        } catch (NoSuchFileException gone) {
            // someone else removed it: free all the same
        }
    }

    /** Whether a server accepts connections on the socket at {@code p}. */
    static boolean accepts(Path p) throws IOException {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            ch.connect(UnixDomainSocketAddress.of(p));
            return true;
        } catch (ConnectException refused) {
            return false; // ECONNREFUSED: a socket file nobody listens on
        } catch (IOException e) {
            throw new IOException("cannot check whether a server listens on " + p + ": " + e.getMessage(), e);
        }
    }

    private static boolean isSocket(Path p) throws IOException {
        Object mode = Files.getAttribute(p, "unix:mode", LinkOption.NOFOLLOW_LINKS);
        return mode instanceof Integer m && (m & S_IFMT) == S_IFSOCK;
    }

    /** The identity (device and inode) of the file at {@code p} now, to recognise it at {@link #removeIfOurs}. */
    public static Object identity(Path p) {
        try {
            return Files.readAttributes(p, java.nio.file.attribute.BasicFileAttributes.class, LinkOption.NOFOLLOW_LINKS)
                .fileKey();
        } catch (IOException e) {
            return null;
        }
    }

    /**
     * Removes the socket file at {@code p} if it is still the file recorded by {@link #identity} (another server
     * may have replaced it since); logs, never throws.
     */
    public static void removeIfOurs(Path p, Object identity) {
        Object now = identity(p);
        if (now == null) {
            return;
        }
        if (identity == null || !Objects.equals(now, identity)) {
            LOG.debug("not removing {}: it is no longer the socket this process created", p);
            return;
        }
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            LOG.warn("cannot remove socket {}: {}", p, e.toString());
        }
    }
}
