package io.jbackup.cli;

import io.jbackup.engine.ExternalToolException;
import io.jbackup.engine.BackupRefusedException;
import io.jbackup.engine.RestoreTargetException;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.RepositoryException;
import io.jbackup.model.RepositoryFullException;
import io.jbackup.nbd.client.NbdCommandException;
import io.jbackup.nbd.client.NbdConnectException;
import io.jbackup.nbd.client.NbdHandshakeException;
import io.jbackup.nbd.client.NbdTimeoutException;
import io.jbackup.nbd.protocol.NbdConnectionClosedException;
import io.jbackup.nbd.protocol.NbdProtocolException;
import io.jbackup.nbd.server.SocketPathException;
import io.jbackup.nbd.tls.NbdTlsException;
import io.jbackup.qmp.QmpConnectionException;
import io.jbackup.qmp.QmpException;
import io.jbackup.qmp.QmpTimeoutException;
import io.jbackup.store.ChunkCorruptException;
import io.jbackup.store.DiskBusyException;
import io.jbackup.store.IndexCorruptException;
import io.jbackup.store.KeyRefusedException;
import io.jbackup.store.NotARepositoryException;
import io.jbackup.store.PassphraseRequiredException;
import io.jbackup.store.RepositoryLockedException;
import io.jbackup.store.WrongPassphraseException;
import picocli.CommandLine;

import java.util.List;
import java.util.concurrent.CancellationException;

/**
 * Every exit code jbackup returns, and the one place exceptions are mapped to them and to the error codes of
 * {@code --json} ({@code {"status":"error","exitCode":N,"error":{"code":"...","message":"..."}}}).
 *
 * <p>What each code means is {@link #TABLE}: the EXIT STATUS of every command's {@code --help} and man page.
 *
 * <p>The mapping is by exception type only (never by message or package). An exception matches a rule if it is
 * an instance of the rule's type; the causes are tried in turn, the outermost first, and the first rule in
 * {@link #RULES} that matches wins. A plain {@code IllegalArgumentException} or {@code IllegalStateException} is
 * a failed internal check, so it matches nothing and ends as {@link #INTERNAL} unless a cause matches.
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
        java.util.Map.entry(USAGE, "usage error: a bad option or argument, something named that does not exist, "
            + "an incremental that is not safe (the message names the fix: jbackup full or jbackup auto), a disk "
            + "another run is backing up, a repository locked by another run (on S3: its deletion lease held by another "
            + "host's gc, prune or forget) or a socket a running server uses (nothing was changed), a refused key change"),
        java.util.Map.entry(PARTIAL, "partial: some disks or ranges failed, the rest succeeded (a libvirt domain's "
            + "disk that cannot be backed up, such as a raw image, counts as failed unless --exclude-disk leaves it "
            + "out); or auto made a full "
            + "backup because the named bitmap is missing though the disk has a parent (done, but not as asked)"),
        java.util.Map.entry(SOURCE, "source or target error: the NBD server or QMP peer failed or misbehaved, a "
            + "restore target could not be written (full, read-only), or a qemu tool jbackup runs is missing or failed"),
        java.util.Map.entry(REPOSITORY, "repository error: not a repository, corrupt, unreachable (S3), wrong or "
            + "missing passphrase, disk full"),
        java.util.Map.entry(DAMAGE, "damage: verify found some, or a restore or read met a damaged chunk, or a damaged or missing index"),
        java.util.Map.entry(INTERRUPTED, "interrupted (Ctrl-C, SIGTERM); the repository keeps no half backup"));

    /** The error code of an exception no rule matches (exit {@link #INTERNAL}). */
    public static final String INTERNAL_CODE = "internal";

    /**
     * How one class of failure is reported: exit code and the stable kebab-case {@code --json} error code
     * (documented in docs/operations.md, "Exit codes and JSON errors").
     */
    public record Failure(int exitCode, String code) {
    }

    private record Rule(Class<? extends Throwable> type, Failure failure) {
    }

    private static Rule rule(Class<? extends Throwable> type, int exitCode, String code) {
        return new Rule(type, new Failure(exitCode, code));
    }

    /** Most specific first: subclasses before their superclasses. Adding an exception type is one line here. */
    private static final List<Rule> RULES = List.of(
        rule(CommandLine.ParameterException.class, USAGE, "usage"),
        rule(NotFoundException.class, USAGE, "not-found"),
        rule(UsageException.class, USAGE, "usage"),
        rule(BackupRefusedException.class, USAGE, "backup-refused"),
        rule(DiskBusyException.class, USAGE, "disk-busy"), // nothing was changed: wait with --wait-lock
        rule(SocketPathException.class, USAGE, "socket-in-use"),
        rule(io.jbackup.engine.OverlayBusyException.class, USAGE, "overlay-busy"),
        rule(KeyRefusedException.class, USAGE, "key-refused"),
        rule(ChunkCorruptException.class, DAMAGE, "damage"),
        rule(IndexCorruptException.class, DAMAGE, "damage"),
        rule(io.jbackup.store.AttachmentCorruptException.class, DAMAGE, "damage"),
        // like disk-busy: nothing was changed, another run holds the lock; wait with --wait-lock
        rule(RepositoryLockedException.class, USAGE, "repository-locked"),
        rule(NotARepositoryException.class, REPOSITORY, "not-a-repository"),
        rule(WrongPassphraseException.class, REPOSITORY, "wrong-passphrase"),
        rule(PassphraseRequiredException.class, REPOSITORY, "passphrase-required"),
        rule(RepositoryFullException.class, REPOSITORY, "repository-full"),
        rule(io.jbackup.store.LeaseLostException.class, REPOSITORY, "lease-lost"),
        rule(io.jbackup.store.GcCollisionException.class, REPOSITORY, "gc-collision"), // safe to run again
        rule(RepositoryException.class, REPOSITORY, "repository"),
        rule(io.jbackup.objectstore.StoreAccessDeniedException.class, REPOSITORY, "access-denied"),
        rule(io.jbackup.objectstore.StoreNotFoundException.class, REPOSITORY, "store-not-found"),
        rule(io.jbackup.objectstore.TransientStoreException.class, REPOSITORY, "store-unavailable"),
        rule(io.jbackup.objectstore.ObjectStoreException.class, REPOSITORY, "object-store"),
        // a restore's own NBD target: before the NBD client's exceptions, which it wraps
        rule(io.jbackup.engine.NbdTargetException.Unreachable.class, SOURCE, "target-unreachable"),
        rule(io.jbackup.engine.NbdTargetException.class, SOURCE, "target-error"),
        rule(NbdConnectException.class, SOURCE, "source-unreachable"),
        rule(NbdTimeoutException.class, SOURCE, "source-timeout"),
        rule(NbdConnectionClosedException.class, SOURCE, "source-disconnected"),
        rule(NbdProtocolException.class, SOURCE, "source-protocol"),
        rule(NbdHandshakeException.class, SOURCE, "source-refused"),
        rule(NbdCommandException.class, SOURCE, "source-error"),
        rule(NbdTlsException.class, SOURCE, "tls"),
        rule(QmpTimeoutException.class, SOURCE, "source-timeout"),
        rule(QmpConnectionException.class, SOURCE, "qmp-unreachable"),
        rule(QmpException.class, SOURCE, "qmp-error"),
        rule(ExternalToolException.class, SOURCE, "external-tool"),
        rule(io.jbackup.libvirt.DomainBusyException.class, USAGE, "domain-busy"),
        rule(io.jbackup.libvirt.LibvirtConnectionException.class, SOURCE, "libvirt-unreachable"),
        rule(io.jbackup.libvirt.LibvirtException.class, SOURCE, "libvirt-error"),
        rule(RestoreTargetException.class, SOURCE, "target-error"),
        rule(InterruptedException.class, INTERRUPTED, "interrupted"),
        rule(CancellationException.class, INTERRUPTED, "interrupted"));

    private static final Failure INTERNAL_FAILURE = new Failure(INTERNAL, INTERNAL_CODE);

    @Override
    public int getExitCode(Throwable t) {
        return forException(t);
    }

    /** Maps an exception (or its causes) to an exit code. */
    public static int forException(Throwable t) {
        return classify(t).exitCode();
    }

    /**
     * Maps an exception (or its causes) to its exit code and error code. A plain {@link RepositoryException} that
     * only adds context ("backup X failed: ...") is refined by its causes: the first cause that matches a rule with
     * the same exit code gives the error code (a store that is unreachable, a full disk), so the exit code never
     * changes but {@code --json} names the failure.
     */
    public static Failure classify(Throwable t) {
        Failure generic = null;
        int depth = 0;
        for (Throwable c = t; c != null && depth < 64; c = c.getCause() == c ? null : c.getCause(), depth++) {
            for (Rule r : RULES) {
                if (!r.type().isInstance(c)) {
                    continue;
                }
                if (generic == null && c.getClass() == RepositoryException.class) {
                    generic = r.failure();
                    break;
                }
                if (generic == null) {
                    return r.failure();
                }
                if (r.failure().exitCode() == generic.exitCode()) {
                    return r.failure();
                }
                break;
            }
        }
        return generic == null ? INTERNAL_FAILURE : generic;
    }
}
