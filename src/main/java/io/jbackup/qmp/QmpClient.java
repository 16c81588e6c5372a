package io.jbackup.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.text.Human;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.function.Predicate;

/**
 * A client of the QEMU Machine Protocol (QMP) over a unix socket ({@code docs/interop/qmp-spec.rst}).
 *
 * <p>On connect it reads the greeting {@code {"QMP": {"version": ..., "capabilities": [...]}}} and leaves
 * capabilities negotiation mode with {@code qmp_capabilities}. Each command carries an {@code id} that QEMU echoes,
 * so replies are matched even when events arrive in between. A reply {@code {"error": {"class", "desc"}}} becomes a
 * {@link QmpException}; a command without a reply within its timeout fails with {@link QmpTimeoutException}; a
 * lost connection fails every pending command with {@link QmpConnectionException}.
 *
 * <p>Events ({@code BLOCK_JOB_*}, {@code JOB_STATUS_CHANGE}, {@code BLOCK_EXPORT_DELETED}, ...) go to listeners,
 * called on the reader thread: they must be quick and must not execute QMP commands themselves (the reply would be
 * read by the thread that is waiting for it). To wait for an event a command causes, call {@link #expect} before
 * sending the command, then {@link EventWait#await}.
 *
 * <p>QEMU serves one client per monitor socket; while another client (libvirt) holds it, the greeting never comes
 * and {@link #connect} times out saying so. Thread-safe.
 */
public final class QmpClient implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(QmpClient.class);
    /** Default bound of one received message; {@code query-named-block-nodes} of a large VM fits easily. */
    public static final int DEFAULT_MAX_MESSAGE_BYTES = 16 << 20;

    private final Path socket;
    private final Duration timeout;
    private final AtomicLong ids = new AtomicLong();
    private final Map<String, Pending> pending = new ConcurrentHashMap<>();
    private final List<Consumer<QmpEvent>> listeners = new CopyOnWriteArrayList<>();
    private final CompletableFuture<JsonNode> greeting = new CompletableFuture<>();
    private final CompletableFuture<QmpConnectionException> closed = new CompletableFuture<>();
    private volatile QmpConnectionException closedBecause;
    private JsonChannel channel;

    private record Pending(String command, CompletableFuture<JsonNode> reply) {
    }

    private QmpClient(Path socket, Duration timeout) {
        this.socket = socket;
        this.timeout = timeout;
    }

    /** Connects with the default message bound; {@code timeout} applies to the greeting and to every command. */
    public static QmpClient connect(Path socket, Duration timeout) throws QmpConnectionException,
        QmpException {
        return connect(socket, timeout, DEFAULT_MAX_MESSAGE_BYTES);
    }

    /** Connects, reads the greeting and negotiates capabilities. */
    public static QmpClient connect(Path socket, Duration timeout, int maxMessageBytes) throws QmpConnectionException,
        QmpException {
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("QMP timeout " + Human.duration(timeout) + " (expected: > 0)");
        }
        QmpClient c = new QmpClient(socket, timeout);
        c.channel = JsonChannel.open(socket, "QMP", maxMessageBytes, false, c::onMessage, c::onClose);
        try {
            c.awaitGreeting();
            c.execute("qmp_capabilities");
            return c;
        } catch (QmpConnectionException | QmpException | RuntimeException e) {
            c.close();
            throw e;
        }
    }

    private void awaitGreeting() throws QmpConnectionException {
        try {
            greeting.get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            throw new QmpTimeoutException("no QMP greeting on " + socket + " within " + seconds(timeout)
                + "; QEMU serves one client per monitor socket, so another client (libvirt?) may hold it: give "
                + "jbackup its own monitor (-chardev socket,id=jb,path=...,server=on,wait=off "
                + "-mon chardev=jb,mode=control)");
        } catch (ExecutionException e) {
            throw asConnection(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new QmpConnectionException("interrupted while waiting for the QMP greeting", e);
        }
    }

    /** The greeting's {@code QMP} object ({@code version}, {@code capabilities}). */
    public JsonNode greeting() {
        return greeting.getNow(null);
    }

    /** QEMU's version as {@code major.minor.micro}. */
    public String version() {
        JsonNode q = greeting().path("version").path("qemu");
        return q.path("major").asInt() + "." + q.path("minor").asInt() + "." + q.path("micro").asInt();
    }

    /** Whether QEMU is at least {@code major.minor}. */
    public boolean versionAtLeast(int major, int minor) {
        JsonNode q = greeting().path("version").path("qemu");
        int ma = q.path("major").asInt();
        return ma > major || (ma == major && q.path("minor").asInt() >= minor);
    }

    public Path socket() {
        return socket;
    }

    /** Whether the connection is still up. */
    public boolean isOpen() {
        return channel.isOpen();
    }

    /** Completes (on the reader thread) with the reason when the connection ends, whoever ended it. */
    public CompletableFuture<QmpConnectionException> closed() {
        return closed;
    }

    /** Runs a command without arguments; returns its {@code return} value. */
    public JsonNode execute(String command) throws QmpException, QmpConnectionException {
        return execute(command, null, timeout);
    }

    /** Runs a command; returns its {@code return} value. */
    public JsonNode execute(String command, JsonNode arguments) throws QmpException, QmpConnectionException {
        return execute(command, arguments, timeout);
    }

    /** Runs a command with its own timeout; returns its {@code return} value. */
    public JsonNode execute(String command, JsonNode arguments, Duration commandTimeout)
        throws QmpException, QmpConnectionException {
        String id = "jbackup-" + ids.incrementAndGet();
        ObjectNode msg = JsonChannel.MAPPER.createObjectNode();
        msg.put("execute", command);
        if (arguments != null && !arguments.isEmpty()) {
            msg.set("arguments", arguments);
        }
        msg.put("id", id);
        Pending p = new Pending(command, new CompletableFuture<>());
        pending.put(id, p);
        QmpConnectionException closed = closedBecause;
        if (closed != null) {
            pending.remove(id);
            throw new QmpConnectionException("cannot run " + command + ": " + closed.getMessage(), closed);
        }
        LOG.debug("QMP -> {}", msg);
        try {
            channel.send((msg + "\r\n").getBytes(StandardCharsets.UTF_8));
            JsonNode reply = p.reply().get(commandTimeout.toMillis(), TimeUnit.MILLISECONDS);
            JsonNode error = reply.get("error");
            if (error != null) {
                throw new QmpException(command, error.path("class").asText("GenericError"),
                    error.path("desc").asText("(no description)"));
            }
            return reply.path("return");
        } catch (TimeoutException e) {
            throw new QmpTimeoutException("QMP command " + command + " got no reply from " + socket + " within "
                + seconds(commandTimeout));
        } catch (ExecutionException e) {
            throw asConnection(e.getCause());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new QmpConnectionException("interrupted while waiting for QMP command " + command, e);
        } finally {
            pending.remove(id);
        }
    }

    /** Runs a {@code transaction} of actions made with {@link #action}: all take effect at one instant, or none. */
    public void transaction(List<ObjectNode> actions) throws QmpException, QmpConnectionException {
        ArrayNode a = JsonChannel.MAPPER.createArrayNode();
        actions.forEach(a::add);
        ObjectNode args = JsonChannel.MAPPER.createObjectNode();
        args.set("actions", a);
        execute("transaction", args);
    }

    /** One transaction action: {@code {"type": TYPE, "data": DATA}}. */
    public static ObjectNode action(String type, ObjectNode data) {
        ObjectNode n = JsonChannel.MAPPER.createObjectNode();
        n.put("type", type);
        n.set("data", data);
        return n;
    }

    /**
     * Builds an argument object from alternating names and values ({@code args("node", "disk0", "persistent", true)});
     * values are converted by Jackson (strings, numbers, booleans, lists, maps, JsonNodes).
     */
    public static ObjectNode args(Object... namesAndValues) {
        if (namesAndValues.length % 2 != 0) {
            throw new IllegalArgumentException("args needs name/value pairs, got " + namesAndValues.length + " items");
        }
        ObjectNode n = JsonChannel.MAPPER.createObjectNode();
        for (int i = 0; i < namesAndValues.length; i += 2) {
            n.set((String) namesAndValues[i], JsonChannel.MAPPER.valueToTree(namesAndValues[i + 1]));
        }
        return n;
    }

    /** Adds an event listener (called on the reader thread; must not run QMP commands). */
    public void addListener(Consumer<QmpEvent> listener) {
        listeners.add(listener);
    }

    public void removeListener(Consumer<QmpEvent> listener) {
        listeners.remove(listener);
    }

    /**
     * Starts waiting for the first event that matches; call it before the command that causes the event, so an
     * event that arrives before the command's reply is not missed.
     */
    public EventWait expect(String description, Predicate<QmpEvent> match) {
        EventWait w = new EventWait(description, match);
        listeners.add(w);
        QmpConnectionException closed = closedBecause;
        if (closed != null) {
            w.future.completeExceptionally(closed);
        }
        return w;
    }

    /** A pending wait for one event; see {@link #expect}. */
    public final class EventWait implements Consumer<QmpEvent>, AutoCloseable {
        private final String description;
        private final Predicate<QmpEvent> match;
        private final CompletableFuture<QmpEvent> future = new CompletableFuture<>();

        private EventWait(String description, Predicate<QmpEvent> match) {
            this.description = description;
            this.match = match;
        }

        @Override
        public void accept(QmpEvent e) {
            if (!future.isDone() && match.test(e)) {
                future.complete(e);
                listeners.remove(this);
            }
        }

        /** Waits for the event. */
        public QmpEvent await(Duration waitFor) throws QmpConnectionException {
            try {
                return future.get(waitFor.toMillis(), TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                throw new QmpTimeoutException("QEMU did not report " + description + " within " + seconds(waitFor));
            } catch (ExecutionException e) {
                throw asConnection(e.getCause());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new QmpConnectionException("interrupted while waiting for " + description, e);
            } finally {
                listeners.remove(this);
            }
        }

        /** Stops waiting. */
        @Override
        public void close() {
            listeners.remove(this);
        }
    }

    private void onMessage(JsonNode msg) {
        if (!greeting.isDone()) {
            JsonNode q = msg.get("QMP");
            if (q == null) {
                onClose(new QmpConnectionException("the peer on " + socket + " is not a QMP monitor (first message: "
                    + abbreviate(msg) + ")"));
                channel.close();
            } else {
                greeting.complete(q);
            }
            return;
        }
        JsonNode event = msg.get("event");
        if (event != null) {
            QmpEvent e = new QmpEvent(event.asText(), msg.has("data") ? msg.get("data")
                : JsonChannel.MAPPER.createObjectNode(), timestamp(msg.path("timestamp")));
            LOG.debug("QMP event {}", msg);
            for (Consumer<QmpEvent> l : listeners) {
                try {
                    l.accept(e);
                } catch (RuntimeException ex) {
                    LOG.warn("QMP event listener failed on {}", e.name(), ex);
                }
            }
            return;
        }
        LOG.debug("QMP <- {}", msg);
        JsonNode id = msg.get("id");
        Pending p = id == null ? null : pending.get(id.asText());
        if (p == null) {
            LOG.warn("QMP on {}: reply to no pending command (late reply after a timeout?): {}", socket,
                abbreviate(msg));
            return;
        }
        if (!msg.has("return") && !msg.has("error")) {
            p.reply().completeExceptionally(new QmpConnectionException("QMP reply to " + p.command()
                + " has neither 'return' nor 'error': " + abbreviate(msg)));
            return;
        }
        p.reply().complete(msg);
    }

    private void onClose(QmpConnectionException why) {
        if (closedBecause == null) {
            closedBecause = why;
        }
        closed.complete(closedBecause); // first: whoever sees a failed command also sees the connection closed
        greeting.completeExceptionally(why);
        for (Pending p : pending.values()) {
            p.reply().completeExceptionally(why);
        }
        for (Consumer<QmpEvent> l : listeners) {
            if (l instanceof EventWait w) {
                w.future.completeExceptionally(why);
            }
        }
    }

    private static Instant timestamp(JsonNode t) {
        if (!t.isObject()) {
            return Instant.now();
        }
        return Instant.ofEpochSecond(t.path("seconds").asLong(), t.path("microseconds").asLong() * 1000);
    }

    private static String abbreviate(JsonNode n) {
        String s = n.toString();
        return s.length() > 300 ? s.substring(0, 300) + "..." : s;
    }

    static String seconds(Duration d) {
        return Human.duration(d);
    }

    private static QmpConnectionException asConnection(Throwable t) {
        if (t instanceof QmpConnectionException q) {
            return q;
        }
        return new QmpConnectionException(String.valueOf(t.getMessage()), t);
    }

    @Override
    public void close() {
        if (channel != null) {
            channel.close();
        }
    }
}
