package io.jbackup.cli;

import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.model.RepositoryException;
import io.jbackup.model.RepositoryFullException;
import io.jbackup.nbd.client.NbdConnectException;
import io.jbackup.objectstore.StoreAccessDeniedException;
import io.jbackup.objectstore.TransientStoreException;
import io.jbackup.store.NotARepositoryException;
import io.jbackup.store.RepositoryLockedException;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.concurrent.CompletionException;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The exception → exit code and error code table: by type only, the outermost matching cause wins (a plain
 * RepositoryException that only adds context is refined by its cause's error code).
 */
class ExitCodesTest {
    private static void assertFailure(int exit, String code, Throwable t) {
        assertEquals(new ExitCodes.Failure(exit, code), ExitCodes.classify(t), t.toString());
    }

    @Test
    void internalChecksAreBugsAndUserMistakesAreUsageErrors() {
        assertFailure(1, "internal", new IllegalArgumentException("chunk 3 must be 65536 bytes"));
        assertFailure(1, "internal", new IllegalStateException("not sealed"));
        assertFailure(1, "internal", new NullPointerException());
        assertFailure(2, "usage", new UsageException("--connections 0 (expected: 1 .. 16)"));
        assertFailure(2, "not-found", new NotFoundException("no backup matches 'NOPE'"));
        assertFailure(2, "usage", new CompletionException(new UsageException("bad")));
        assertFailure(2, "repository-locked", new IllegalStateException("wrapped",
            new RepositoryLockedException("locked")));
        assertFailure(5, "not-a-repository", new NotARepositoryException("no jbackup repository at x"));
        assertFailure(5, "repository", new RepositoryException("x"));
        assertFailure(4, "source-unreachable", new UncheckedIOException(new NbdConnectException("no socket", null)));
        // the same NBD client's failure against a restore's own target is the target's
        assertFailure(4, "target-unreachable", new io.jbackup.engine.NbdTargetException.Unreachable("nbd://h/x",
            new NbdConnectException("no socket", null)));
        assertFailure(4, "target-error", io.jbackup.engine.NbdTargetException.failed("nbd://h/x", "writing to",
            new NbdConnectException("gone", null)));
        assertFailure(7, "interrupted", new InterruptedException());
    }

    @Test
    void aPlainRepositoryExceptionThatAddsContextIsRefinedByItsCause() {
        assertFailure(5, "store-unavailable", new RepositoryException("backup 1 failed: writing packs/x failed",
            new TransientStoreException("writing packs/x failed: connection refused", null)));
        assertFailure(5, "access-denied", new UncheckedIOException(new RepositoryException("backup 1 failed",
            new StoreAccessDeniedException("S3 refused", null))));
        assertFailure(5, "gc-collision", new RepositoryException("backup 1 failed",
            new io.jbackup.store.GcCollisionException("backup 1 reuses 3 chunks that a gc on another host deleted")));
        assertFailure(5, "repository-full", new RepositoryException("backup 1 failed",
            RepositoryFullException.of(Path.of("/repo"), new IOException("No space left on device"))));
        // the exit code never changes: a cause of another class of failure leaves the generic code
        assertFailure(5, "repository", new RepositoryException("backup 1 failed",
            new NbdConnectException("no socket", null)));
        // and a specific outer exception still wins over its causes
        assertFailure(2, "repository-locked", new RepositoryLockedException("locked")
            .initCause(new TransientStoreException("slow down", null)));
    }

    /**
     * The EXIT STATUS of every {@code --help} says where a locked repository lands: exit 2 (as the README's table
     * and {@link #internalChecksAreBugsAndUserMistakesAreUsageErrors} have it), not among the repository errors.
     */
    @Test
    void theHelpTableNamesALockedRepositoryUnderTheCodeItExitsWith() {
        int exit = ExitCodes.classify(new RepositoryLockedException("locked")).exitCode();
        for (var e : ExitCodes.TABLE) {
            boolean says = e.getValue().contains("locked");
            assertEquals(e.getKey() == exit, says, "exit " + e.getKey() + ": " + e.getValue());
        }
    }
}
