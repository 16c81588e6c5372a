package io.jbackup.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.text.Human;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

/**
 * A client of the QEMU guest agent (qemu-ga) through the host side of its virtio-serial channel, a unix socket
 * ({@code -chardev socket,path=SOCKET,server=on,wait=off,id=qga0 -device virtserialport,chardev=qga0,
 * name=org.qemu.guest_agent.0}; libvirt: {@code /var/lib/libvirt/qemu/channel/target/DOMAIN/org.qemu.guest_agent.0}).
 *
 * <p>The agent has no greeting and answers one command at a time, in order. The channel may hold stale output of
 * an earlier client, so the client first synchronizes: it sends a {@code 0xFF} byte (which resets the agent's
 * parser) and {@code guest-sync-delimited} with a random id; the agent answers with {@code 0xFF} followed by the
 * id, and everything before that is discarded ({@code docs/interop/qemu-ga.rst}). After a command times out the
 * next command synchronizes again, so a late reply is never taken for the answer to another command.
 *
 * <p>Used for {@code guest-fsfreeze-freeze}/{@code guest-fsfreeze-thaw} around a backup's point in time; see
 * {@link FsFreeze}, which guarantees the thaw. Thread-safe (commands are serialized).
 */
public final class GuestAgent implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(GuestAgent.class);
    private static final int MAX_MESSAGE_BYTES = 1 << 20;
    private static final SecureRandom RANDOM = new SecureRandom();

    private final Path socket;
    private final Duration timeout;
    private final LinkedBlockingQueue<Object> inbox = new LinkedBlockingQueue<>();
    private JsonChannel channel;
    private boolean synced;

    private GuestAgent(Path socket, Duration timeout) {
        this.socket = socket;
        this.timeout = timeout;
    }

    /** Connects and synchronizes; {@code timeout} applies to each command (fsfreeze has its own). */
    public static GuestAgent connect(Path socket, Duration timeout) throws QmpConnectionException, QmpException {
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("guest agent timeout " + Human.duration(timeout) + " (expected: > 0)");
        }
        GuestAgent g = new GuestAgent(socket, timeout);
        g.channel = JsonChannel.open(socket, "guest agent", MAX_MESSAGE_BYTES, true, g.inbox::add, g.inbox::add);
        try {
            g.sync();
            return g;
        } catch (QmpConnectionException | QmpException | RuntimeException e) {
            g.close();
            throw e;
        }
    }

    public Path socket() {
        return socket;
    }

    /** Synchronizes the stream with {@code guest-sync-delimited} (see the class comment). */
    public synchronized void sync() throws QmpConnectionException, QmpException {
        long id = RANDOM.nextLong() & 0x7fff_ffff_ffffL;
        byte[] cmd = ("{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":" + id + "}}\n")
            .getBytes(StandardCharsets.UTF_8);
        byte[] msg = new byte[cmd.length + 1];
        msg[0] = (byte) 0xFF;
        System.arraycopy(cmd, 0, msg, 1, cmd.length);
        inbox.clear();
        channel.send(msg);
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            JsonNode r = next(deadline, timeout, "guest-sync-delimited");
            if (r.has("error")) {
                throw error("guest-sync-delimited", r);
            }
            if (r.path("return").asLong(-1) == id) {
                synced = true;
                return;
            }
            LOG.debug("guest agent {}: discarding stale message {}", socket, r);
        }
    }

    /** Runs a command with the default timeout; returns its {@code return} value. */
    public JsonNode execute(String command, ObjectNode arguments) throws QmpConnectionException, QmpException {
        return execute(command, arguments, timeout);
    }

    /** Runs a command; returns its {@code return} value. */
    public synchronized JsonNode execute(String command, ObjectNode arguments, Duration commandTimeout)
        throws QmpConnectionException, QmpException {
        if (!synced) {
            sync();
        }
        ObjectNode msg = JsonChannel.MAPPER.createObjectNode();
        msg.put("execute", command);
        if (arguments != null && !arguments.isEmpty()) {
            msg.set("arguments", arguments);
        }
        LOG.debug("guest agent -> {}", msg);
        channel.send((msg + "\n").getBytes(StandardCharsets.UTF_8));
        synced = false; // until the reply arrives: a timeout leaves a reply in flight
        JsonNode r = next(System.nanoTime() + commandTimeout.toNanos(), commandTimeout, command);
        synced = true;
        if (r.has("error")) {
            throw error(command, r);
        }
        if (!r.has("return")) {
            throw new QmpConnectionException("the guest agent's reply to " + command + " has no 'return': " + r);
        }
        return r.get("return");
    }

    /** {@code guest-fsfreeze-freeze}: flushes and freezes the guest's filesystems; returns how many. */
    public int freeze(Duration commandTimeout) throws QmpConnectionException, QmpException {
        return execute("guest-fsfreeze-freeze", null, commandTimeout).asInt();
    }

    /** {@code guest-fsfreeze-thaw}: thaws them; returns how many were thawed. */
    public int thaw(Duration commandTimeout) throws QmpConnectionException, QmpException {
        return execute("guest-fsfreeze-thaw", null, commandTimeout).asInt();
    }

    /** {@code guest-fsfreeze-status}: {@code "thawed"} or {@code "frozen"}. */
    public String freezeStatus() throws QmpConnectionException, QmpException {
        return execute("guest-fsfreeze-status", null).asText();
    }

    private JsonNode next(long deadlineNanos, Duration limit, String command) throws QmpConnectionException {
        try {
            long wait = deadlineNanos - System.nanoTime();
            Object o = wait <= 0 ? inbox.poll() : inbox.poll(wait, TimeUnit.NANOSECONDS);
            if (o == null) {
                throw new QmpTimeoutException("the guest agent on " + socket + " did not answer " + command
                    + " within " + QmpClient.seconds(limit) + " (is qemu-guest-agent running in the guest?)");
            }
            if (o instanceof QmpConnectionException e) {
                inbox.add(e); // stays closed for later calls
                throw new QmpConnectionException("guest agent " + command + ": " + e.getMessage(), e);
            }
            return (JsonNode) o;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new QmpConnectionException("interrupted while waiting for the guest agent's " + command, e);
        }
    }

    private static QmpException error(String command, JsonNode r) {
        JsonNode e = r.get("error");
        return new QmpException(command, e.path("class").asText("GenericError"),
            e.path("desc").asText("(no description)"));
    }

    @Override
    public void close() {
        if (channel != null) {
            channel.close();
        }
    }
}
