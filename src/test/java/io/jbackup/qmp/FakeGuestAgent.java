package io.jbackup.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;

/**
 * A stand-in for qemu-ga on the host side of its channel (a real agent would freeze this machine's filesystems):
 * answers {@code guest-sync-delimited} with 0xFF and the id, and {@code guest-fsfreeze-*} with counts, after
 * calling a hook with the command name. Options make it stale (garbage before the sync reply), slow or failing.
 */
public final class FakeGuestAgent implements AutoCloseable {
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final Path socket;
    private final ServerSocketChannel server;
    private final Consumer<String> hook;
    private final Thread thread;
    private final List<String> commands = new CopyOnWriteArrayList<>();
    volatile long freezeDelayMillis;
    volatile String failFreeze;
    volatile boolean staleOutput;
    private volatile boolean frozen;

    public FakeGuestAgent(Path socket, Consumer<String> hook) throws IOException {
        this.socket = socket;
        this.hook = hook;
        Files.deleteIfExists(socket);
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socket));
        thread = new Thread(this::serve, "fake-qga");
        thread.setDaemon(true);
        thread.start();
    }

    public Path socket() {
        return socket;
    }

    /** Every command received, in order. */
    public List<String> commands() {
        return List.copyOf(commands);
    }

    public boolean frozen() {
        return frozen;
    }

    private void serve() {
        while (server.isOpen()) {
            try (SocketChannel c = server.accept()) {
                JsonFramer framer = new JsonFramer(1 << 16, true);
                ByteBuffer buf = ByteBuffer.allocate(4096);
                List<byte[]> msgs = new ArrayList<>();
                while (c.read(buf.clear()) > 0) {
                    framer.feed(buf.array(), 0, buf.position(), msgs::add);
                    for (byte[] m : msgs) {
                        answer(c, MAPPER.readTree(m));
                    }
                    msgs.clear();
                }
            } catch (IOException e) {
                // client gone or server closed
            }
        }
    }

    private void answer(SocketChannel c, JsonNode m) throws IOException {
        String cmd = m.path("execute").asText();
        commands.add(cmd);
        String reply;
        switch (cmd) {
            case "guest-sync-delimited" -> {
                String stale = staleOutput ? "{\"return\": 4}\n{\"ret" : "";
                send(c, stale.getBytes(StandardCharsets.UTF_8));
                send(c, new byte[] {(byte) 0xFF});
                reply = "{\"return\": " + m.path("arguments").path("id").asLong() + "}";
            }
            case "guest-fsfreeze-freeze" -> {
                hook.accept(cmd);
                sleep(freezeDelayMillis);
                if (failFreeze != null) {
                    reply = "{\"error\": {\"class\": \"GenericError\", \"desc\": \"" + failFreeze + "\"}}";
                } else {
                    frozen = true;
                    reply = "{\"return\": 2}";
                }
            }
            case "guest-fsfreeze-thaw" -> {
                hook.accept(cmd);
                reply = "{\"return\": " + (frozen ? 2 : 0) + "}";
                frozen = false;
            }
            case "guest-fsfreeze-status" -> reply = "{\"return\": \"" + (frozen ? "frozen" : "thawed") + "\"}";
            default -> reply = "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command " + cmd
                + " has not been found\"}}";
        }
        send(c, (reply + "\n").getBytes(StandardCharsets.UTF_8));
    }

    private static void send(SocketChannel c, byte[] b) throws IOException {
        ByteBuffer bb = ByteBuffer.wrap(b);
        while (bb.hasRemaining()) {
            c.write(bb);
        }
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        try {
            server.close();
            Files.deleteIfExists(socket);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
