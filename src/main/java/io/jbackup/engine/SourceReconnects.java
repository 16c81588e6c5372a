package io.jbackup.engine;

import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.nbd.client.NbdUri;

import java.io.IOException;
import java.util.Set;
import java.util.function.Supplier;

/**
 * A backup's reconnections to its NBD source after a transport failure (a dropped connection, or a server silent past
 * the request timeout). Attempts are counted since the last reconnect after which the backup made progress: a server
 * that accepts connections but never answers uses up the retries like one that refuses them, instead of being
 * reconnected to forever. The wait doubles with each attempt without progress (capped at 30 s). A new connection must
 * offer the same export size and meta contexts, or the backup does not resume. Used by the copy loop's thread only.
 */
final class SourceReconnects {
    private final NbdUri uri;
    private final EngineOptions options;
    private final ProgressListener progress;
    private final Cancellation cancel;
    private final Set<String> contexts;
    private int retriesUsed;
    private long stepsAtReconnect = -1;
    private int attemptsWithoutProgress;

    SourceReconnects(NbdUri uri, EngineOptions options, ProgressListener progress, Cancellation cancel,
                     Set<String> contexts) {
        this.uri = uri;
        this.options = options;
        this.progress = progress;
        this.cancel = cancel;
        this.contexts = contexts;
    }

    /** Reconnect attempts made in all. */
    int retriesUsed() {
        return retriesUsed;
    }

    /**
     * Connects again (the failed client already closed); {@code steps} counts the backup's progress so far. Returns
     * the new client, or throws when the retries are used up, the failure is not transient, or the export changed.
     */
    NbdClient reconnect(long size, String label, Throwable cause, long steps, Supplier<ClientOptions> clientOptions)
        throws IOException, InterruptedException {
        if (steps != stepsAtReconnect) {
            attemptsWithoutProgress = 0;
        }
        long backoff = Math.max(1, options.retryBackoff().toMillis());
        for (int i = 0; i < attemptsWithoutProgress; i++) {
            backoff = Math.min(30_000, backoff * 2);
        }
        IOException last = cause instanceof IOException io ? io : new IOException(cause);
        while (attemptsWithoutProgress < options.retries()) {
            attemptsWithoutProgress++;
            retriesUsed++;
            String msg = "connection to " + uri + " lost (" + cause.getMessage() + "); reconnecting in "
                + backoff + " ms (attempt " + attemptsWithoutProgress + " of " + options.retries() + ")";
            progress.warning(label, msg);
            long deadline = System.currentTimeMillis() + backoff;
            while (System.currentTimeMillis() < deadline) {
                cancel.check();
                Thread.sleep(Math.min(100, Math.max(1, deadline - System.currentTimeMillis())));
            }
            try {
                NbdClient c = NbdClient.connect(uri, clientOptions.get());
                if (c.info().size() != size) {
                    DiskBackup.closeQuietly(c);
                    throw new IOException("after reconnecting, the export size is " + c.info().size()
                        + " instead of " + size + "; not resuming");
                }
                if (!c.metaContexts().keySet().containsAll(contexts)) {
                    DiskBackup.closeQuietly(c);
                    throw new IOException("after reconnecting, the export offers contexts " + c.metaContexts().keySet()
                        + " instead of " + contexts + "; not resuming");
                }
                stepsAtReconnect = steps;
                return c;
            } catch (IOException e) {
                if (!SourceFailures.isTransient(e)) {
                    throw e; // a server that breaks the protocol breaks it again on the next connection
                }
                last = e;
                backoff = Math.min(30_000, backoff * 2);
            }
        }
        throw new IOException("giving up on " + uri + " after " + options.retries() + " reconnect attempts "
            + "without progress: " + last.getMessage(), last);
    }
}
