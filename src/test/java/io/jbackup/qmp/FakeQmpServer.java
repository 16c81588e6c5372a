package io.jbackup.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

import java.io.IOException;
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
import java.util.function.Function;

/**
 * A scripted QMP peer for protocol tests: sends a greeting (or raw bytes), then answers each command with what
 * the handler returns: raw text written as is (replies, events, garbage), possibly nothing (a hung QEMU).
 * {@link #reply}, {@link #error} and {@link #event} build well-formed messages.
 */
final class FakeQmpServer implements AutoCloseable {
    static final String GREETING = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, "
        + "\"package\": \"fake\"}, \"capabilities\": [\"oob\"]}}\r\n";
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final Path socket;
    private final ServerSocketChannel server;
    private final List<JsonNode> received = new CopyOnWriteArrayList<>();
    private final Thread thread;
    private volatile SocketChannel client;

    FakeQmpServer(Path socket, String greeting, Function<JsonNode, String> handler) throws IOException {
        this.socket = socket;
        Files.deleteIfExists(socket);
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(socket));
        thread = new Thread(() -> serve(greeting, handler), "fake-qmp");
        thread.setDaemon(true);
        thread.start();
    }

    Path socket() {
        return socket;
    }

    List<JsonNode> received() {
        return List.copyOf(received);
    }

    static String reply(JsonNode cmd, String returnJson) {
        return "{\"return\": " + returnJson + ", \"id\": " + cmd.get("id") + "}\r\n";
    }

    static String error(JsonNode cmd, String cls, String desc) {
        return "{\"id\": " + cmd.get("id") + ", \"error\": {\"class\": \"" + cls + "\", \"desc\": \"" + desc
            + "\"}}\r\n";
    }

    static String event(String name, String dataJson) {
        return "{\"timestamp\": {\"seconds\": 1700000000, \"microseconds\": 5}, \"event\": \"" + name
            + "\", \"data\": " + dataJson + "}\r\n";
    }

    private void serve(String greeting, Function<JsonNode, String> handler) {
        try (SocketChannel c = server.accept()) {
            client = c;
            send(greeting);
            JsonFramer framer = new JsonFramer(1 << 20, false);
            ByteBuffer buf = ByteBuffer.allocate(4096);
            List<byte[]> msgs = new ArrayList<>();
            while (c.read(buf.clear()) > 0) {
                framer.feed(buf.array(), 0, buf.position(), msgs::add);
                for (byte[] m : msgs) {
                    JsonNode cmd = MAPPER.readTree(m);
                    received.add(cmd);
                    String out = cmd.path("execute").asText().equals("qmp_capabilities") ? reply(cmd, "{}")
                        : handler.apply(cmd);
                    if (out != null && !out.isEmpty()) {
                        send(out);
                    }
                }
                msgs.clear();
            }
        } catch (IOException e) {
            // closed
        }
    }

    /** Writes raw text to the connected client. */
    void send(String text) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8));
        while (b.hasRemaining()) {
            client.write(b);
        }
    }

    /** Drops the client connection. */
    void disconnect() throws IOException {
        client.close();
    }

    @Override
    public void close() throws IOException {
        server.close();
        SocketChannel c = client;
        if (c != null) {
            c.close();
        }
        Files.deleteIfExists(socket);
    }
}
