package io.jbackup.cli;

import io.jbackup.engine.BackupRefusedException;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.store.ChunkCorruptException;
import io.jbackup.store.IndexCorruptException;
import io.jbackup.store.RepositoryException;
import picocli.CommandLine;

/**
 * Every exit code jbackup returns, and the one place exceptions are mapped to them.
 *
 * <table>
 *   <tr><th>code</th><th>meaning</th></tr>
 *   <tr><td>0</td><td>success</td></tr>
 *   <tr><td>1</td><td>unexpected internal error (a bug: please report it with the log)</td></tr>
 *   <tr><td>2</td><td>usage error: bad option or argument</td></tr>
 *   <tr><td>3</td><td>partial: some disks or ranges failed, the rest succeeded; or {@code auto} made a full
 *       backup because the named bitmap is missing though the disk has a parent (done, but not as asked)</td></tr>
 *   <tr><td>4</td><td>source error: the NBD server or QMP peer failed or misbehaved, or a qemu tool jbackup
 *       runs is missing or failed</td></tr>
 *   <tr><td>5</td><td>repository error: missing, locked, corrupt, wrong passphrase, disk full</td></tr>
 *   <tr><td>6</td><td>damage: verify found some, or a restore or read met a damaged chunk or index</td></tr>
 *   <tr><td>7</td><td>interrupted (Ctrl-C / SIGTERM); the repository is consistent</td></tr>
 * </table>
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

    @Override
    public int getExitCode(Throwable t) {
        return forException(t);
    }

    /** Maps an exception (or its causes) to an exit code. */
    public static int forException(Throwable t) {
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (c instanceof CommandLine.ParameterException || c instanceof IllegalArgumentException
                || c instanceof BackupRefusedException) {
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
