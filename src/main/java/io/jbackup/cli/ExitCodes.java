package io.jbackup.cli;

import io.jbackup.engine.BackupRefusedException;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.nbd.server.SocketPathException;
import io.jbackup.store.ChunkCorruptException;
import io.jbackup.store.DiskBusyException;
import io.jbackup.store.IndexCorruptException;
import io.jbackup.store.KeyRefusedException;
import io.jbackup.store.RepositoryException;
import picocli.CommandLine;

/**
 * Every exit code jbackup returns, what each means ({@link #TABLE}: the EXIT STATUS of every command's
 * {@code --help} and man page), and the one place exceptions are mapped to them.
 */
public final class ExitCodes implements CommandLine.IExitCodeExceptionMapper {
    public static final int OK = 0;
    public static final int INTERNAL = 1;
    public static final int USAGE = 2;
    public static final int PARTIAL = 3;
    public static final int SOURCE = 4;
    public static final int REPOSITORY = 5;
    public static final int DAMAGE = 6;
    public static final int INTERRUPTED = 7;

    /**
     * Code and meaning of every exit code, in code order: the EXIT STATUS section of each command's {@code --help}
     * and man page (set by {@link ManualSections}), written only here.
     */
    public static final java.util.List<java.util.Map.Entry<Integer, String>> TABLE = java.util.List.of(
        java.util.Map.entry(OK, "success"),
        java.util.Map.entry(INTERNAL, "internal error (a bug: run again with -vv and report it with the log)"),
        java.util.Map.entry(USAGE, "usage error: a bad option or argument, or an incremental that is not safe "
            + "(the message names the fix: jbackup full or jbackup auto)"),
        java.util.Map.entry(PARTIAL, "partial: some disks or ranges failed, the rest succeeded; or auto made a full "
            + "backup because the named bitmap is missing though the disk has a parent (done, but not as asked)"),
        java.util.Map.entry(SOURCE, "source error: the NBD server or QMP peer failed or misbehaved, or a qemu tool "
            + "jbackup runs is missing or failed"),
        java.util.Map.entry(REPOSITORY, "repository error: missing, locked, corrupt, wrong passphrase, disk full"),
        java.util.Map.entry(DAMAGE, "damage: verify found some, or a restore or read met a damaged chunk or index"),
        java.util.Map.entry(INTERRUPTED, "interrupted (Ctrl-C, SIGTERM); the repository keeps no half backup"));

    @Override
    public int getExitCode(Throwable t) {
        return forException(t);
    }

    /** Maps an exception (or its causes) to an exit code. */
    public static int forException(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof CommandLine.ParameterException || c instanceof IllegalArgumentException
                || c instanceof BackupRefusedException || c instanceof KeyRefusedException
                || c instanceof SocketPathException || c instanceof DiskBusyException) { // busy: nothing was changed
                return USAGE;
            }
            if (c instanceof ChunkCorruptException || c instanceof IndexCorruptException) {
                return DAMAGE;
            }
            if (c instanceof RepositoryException) {
                return REPOSITORY;
            }
            if (c instanceof NbdProtocolException || c instanceof ExternalToolException || isSourcePackage(c)) {
                return SOURCE;
            }
            if (c instanceof InterruptedException || c instanceof java.util.concurrent.CancellationException) {
                return INTERRUPTED;
            }
        }
        return INTERNAL;
    }

    private static boolean isSourcePackage(Throwable c) {
        String n = c.getClass().getName();
        return n.startsWith("io.jbackup.nbd.") || n.startsWith("io.jbackup.qmp.");
    }
}
