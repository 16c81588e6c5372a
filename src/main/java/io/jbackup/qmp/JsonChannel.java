package io.jbackup.qmp;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.net.ConnectException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.SocketChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

/**
 * A JSON message stream over a unix socket: a blocking {@link SocketChannel} for writes and one daemon reader thread
 * that frames ({@link JsonFramer}), parses and hands each object to {@code onMessage}. When the stream ends or fails,
 * {@code onClose} runs once with the reason. Shared by {@link QmpClient} and {@link GuestAgent}.
 */
final class JsonChannel implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(JsonChannel.class);
    static final ObjectMapper MAPPER = new ObjectMapper();

    private final Path socket;
    private final String peer;
    private final SocketChannel channel;
    private final JsonFramer framer;
    private final Consumer<JsonNode> onMessage;
    private final Consumer<QmpConnectionException> onClose;
    private final AtomicBoolean closed = new AtomicBoolean();
    private final Object writeLock = new Object();
    private final Thread reader;

    private JsonChannel(Path socket, String peer, SocketChannel channel, JsonFramer framer,
                        Consumer<JsonNode> onMessage, Consumer<QmpConnectionException> onClose) {
        this.socket = socket;
        this.peer = peer;
        this.channel = channel;
        this.framer = framer;
        this.onMessage = onMessage;
        this.onClose = onClose;
        this.reader = new Thread(this::readLoop, peer + "-reader " + socket.getFileName());
        reader.setDaemon(true);
    }

    /**
     * Connects to {@code socket} and starts the reader.
     *
     * @param peer            what the socket is, for messages ("QMP", "guest agent")
     * @param maxMessageBytes bound of one received object
     * @param resync          guest-agent framing (see {@link JsonFramer})
     */
    static JsonChannel open(Path socket, String peer, int maxMessageBytes, boolean resync,
                            Consumer<JsonNode> onMessage, Consumer<QmpConnectionException> onClose)
        throws QmpConnectionException {
        SocketChannel ch = null;
        try {
            ch = SocketChannel.open(StandardProtocolFamily.UNIX);
            ch.connect(UnixDomainSocketAddress.of(socket));
        } catch (IOException e) {
            closeQuietly(ch);
            throw new QmpConnectionException(connectFailure(socket, peer, e), e);
        }
        JsonChannel c = new JsonChannel(socket, peer, ch, new JsonFramer(maxMessageBytes, resync), onMessage, onClose);
        c.reader.start();
        return c;
    }

    private static String connectFailure(Path socket, String peer, IOException e) {
        if (!Files.exists(socket)) {
            return "no " + peer + " socket at " + socket + " (is QEMU running with that socket configured?)";
        }
        // connect(2) on a socket file this user may not write fails with EACCES, a plain SocketException in Java
        if (e instanceof AccessDeniedException || !Files.isWritable(socket)) {
            return "permission denied connecting to the " + peer + " socket " + socket
                + " (run jbackup as the user QEMU runs as, or as root)";
        }
        if (e instanceof ConnectException) {
            return "nothing listens on the " + peer + " socket " + socket + " (" + e.getMessage()
                + "); is QEMU still running?";
        }
        return "cannot connect to the " + peer + " socket " + socket + ": " + e.getMessage();
    }

    Path socket() {
        return socket;
    }

    /** Writes bytes (one or more complete messages). */
    void send(byte[] bytes) throws QmpConnectionException {
        if (closed.get()) {
            throw new QmpConnectionException("the " + peer + " connection to " + socket + " is closed");
        }
        synchronized (writeLock) {
            try {
                ByteBuffer b = ByteBuffer.wrap(bytes);
                while (b.hasRemaining()) {
                    channel.write(b);
                }
            } catch (IOException e) {
                QmpConnectionException ex = new QmpConnectionException("writing to the " + peer + " socket " + socket
                    + " failed: " + e.getMessage(), e);
                shutdown(ex);
                throw ex;
            }
        }
    }

    boolean isOpen() {
        return !closed.get();
    }

    private void readLoop() {
        ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
        List<byte[]> messages = new ArrayList<>();
        try {
            while (true) {
                buf.clear();
                int n = channel.read(buf);
                if (n < 0) {
                    shutdown(new QmpConnectionException("the " + peer + " peer closed the connection on " + socket));
                    return;
                }
                framer.feed(buf.array(), 0, n, messages::add);
                for (byte[] m : messages) {
                    JsonNode node;
                    try {
                        node = MAPPER.readTree(m);
                    } catch (IOException e) {
                        String why = e instanceof JsonProcessingException j ? j.getOriginalMessage() : e.getMessage();
                        throw new QmpConnectionException("the " + peer + " peer on " + socket + " sent invalid JSON: "
                            + why + " (first bytes: " + preview(m) + ")");
                    }
                    if (node == null || !node.isObject()) {
                        throw new QmpConnectionException("the " + peer + " peer on " + socket
                            + " sent a message that is not a JSON object: " + preview(m));
                    }
                    try {
                        onMessage.accept(node);
                    } catch (RuntimeException e) {
                        LOG.warn("{} message handler failed on {}", peer, preview(m), e);
                    }
                }
                messages.clear();
            }
        } catch (QmpConnectionException e) {
            shutdown(e);
        } catch (IOException e) {
            shutdown(new QmpConnectionException(closed.get() ? "the " + peer + " connection to " + socket
                + " is closed" : "reading from the " + peer + " socket " + socket + " failed: " + e.getMessage(), e));
        }
    }

    private static String preview(byte[] m) {
        String s = new String(m, 0, Math.min(m.length, 200), java.nio.charset.StandardCharsets.UTF_8);
        return m.length > 200 ? s + "..." : s;
    }

    private void shutdown(QmpConnectionException why) {
        if (closed.compareAndSet(false, true)) {
            closeQuietly(channel);
            onClose.accept(why);
        }
    }

    @Override
    public void close() {
        shutdown(new QmpConnectionException("the " + peer + " connection to " + socket + " is closed"));
    }

    private static void closeQuietly(SocketChannel ch) {
        if (ch != null) {
            try {
                ch.close();
            } catch (IOException e) {
                LOG.debug("closing socket", e);
            }
        }
    }
}
