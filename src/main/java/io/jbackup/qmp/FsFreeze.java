package io.jbackup.qmp;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.time.Duration;

/**
 * Guest filesystems frozen through the guest agent, for as short as possible: from {@link #freeze} to
 * {@link #close}. The thaw is guaranteed as far as the host can guarantee it:
 * <ul>
 *   <li>{@code close()} thaws (use try-with-resources), retrying once after re-synchronizing the channel;</li>
 *   <li>a JVM shutdown hook thaws if the process is stopped (Ctrl-C, SIGTERM) while frozen;</li>
 *   <li>a freeze that fails or times out is followed by a thaw anyway, because the agent may have frozen some
 *       filesystems before failing, or may still finish freezing after the timeout (its commands run in order,
 *       so the thaw runs after it).</li>
 * </ul>
 * A SIGKILL of jbackup cannot be caught; qemu-ga itself thaws after its own freeze timeout only on some guests
 * (Windows VSS: 10 s), so keep the QGA timeout short. Thread-safe.
 */
public final class FsFreeze implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(FsFreeze.class);

    private final GuestAgent agent;
    private final Duration timeout;
    private final Thread hook;
    private volatile int frozen;
    private boolean thawed;

    private FsFreeze(GuestAgent agent, Duration timeout) {
        this.agent = agent;
        this.timeout = timeout;
        this.hook = new Thread(this::close, "jbackup-fsfreeze-thaw");
    }

    /**
     * Freezes the guest's filesystems.
     *
     * @throws QmpException           the agent refused (e.g. fsfreeze is blocked or unsupported); a thaw was sent
     * @throws QmpConnectionException the agent did not answer within {@code timeout}; a thaw was sent
     */
    public static FsFreeze freeze(GuestAgent agent, Duration timeout) throws QmpConnectionException, QmpException {
        FsFreeze f = new FsFreeze(agent, timeout);
        try {
            Runtime.getRuntime().addShutdownHook(f.hook);
        } catch (IllegalStateException shuttingDown) {
            throw new QmpConnectionException("not freezing the guest: the JVM is shutting down");
        }
        try {
            f.frozen = agent.freeze(timeout);
            LOG.info("guest agent {}: froze {} filesystem(s)", agent.socket(), f.frozen);
            return f;
        } catch (QmpConnectionException | QmpException | RuntimeException e) {
            f.close();
            throw e;
        }
    }

    /** How many filesystems the agent froze. */
    public int frozenCount() {
        return frozen;
    }

    /** Thaws (idempotent); failures are logged, never thrown, so they cannot mask the backup's own outcome. */
    @Override
    public synchronized void close() {
        if (thawed) {
            return;
        }
        thawed = true;
        removeHook(hook);
        try {
            int n = agent.thaw(timeout);
            LOG.info("guest agent {}: thawed {} filesystem(s)", agent.socket(), n);
        } catch (Exception first) {
            LOG.warn("guest agent {}: thaw failed ({}); retrying once", agent.socket(), first.getMessage());
            try {
                agent.sync();
                agent.thaw(timeout);
            } catch (Exception second) {
                LOG.error("guest agent {}: the guest may still be FROZEN: thaw failed twice ({}); thaw it by hand: "
                    + "virsh domfsthaw DOMAIN, or send {\"execute\":\"guest-fsfreeze-thaw\"} to the agent socket",
                    agent.socket(), second.getMessage());
            }
        }
    }

    private static void removeHook(Thread t) {
        try {
            Runtime.getRuntime().removeShutdownHook(t);
        } catch (IllegalStateException shuttingDown) {
            // the hook runs (or ran) now
        }
    }
}
