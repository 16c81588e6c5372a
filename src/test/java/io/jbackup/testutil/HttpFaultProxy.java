package io.jbackup.testutil;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Pattern;

/**
 * An HTTP/1.1 reverse proxy for S3 tests, between the SDK and s3proxy (path-style requests), on a free port of
 * 127.0.0.1. It counts requests by {@link Kind} and injects the faults of a real network, by rules that match a kind
 * and a pattern and fire a given number of times. The pattern matches the key, followed by {@code ?QUERY} when the
 * request has a query ({@code big\\?uploadId=.*} is the completion of a multipart upload of {@code big}):
 * <ul>
 *   <li>{@link #internalError()} and {@link #slowDown()}: the answer is a 500 InternalError or 503 SlowDown with an S3
 *       XML error body, and the request never reaches the server;</li>
 *   <li>{@link #cutRequest(long)}: the connection is closed after K bytes of the request body (an upload cut
 *       halfway: the server sees a short body and stores nothing);</li>
 *   <li>{@link #cutResponse(long)}: the connection is closed after K bytes of the response body;</li>
 *   <li>{@link #stall(Duration)}: the server's response is held back that long (the client should give up first);</li>
 *   <li>{@link #dropRange()}: the answer to a ranged GET comes back as a 200 without Content-Range.</li>
 * </ul>
 * Each request travels on its own server connection with {@code Connection: close} (both ways), so a request's
 * bytes are easy to tell apart; the proxy is slow, which tests do not mind. Close to stop it.
 */
public final class HttpFaultProxy implements AutoCloseable {
    /** What a request does: the HTTP method, or LIST for a GET of a bucket listing (list-type, or no key). */
    public enum Kind { GET, PUT, POST, DELETE, HEAD, LIST }

    /** A fault to inject. */
    public sealed interface Fault permits ErrorAnswer, CutRequest, CutResponse, Stall, DropRange {
    }

    /** An S3 error answer instead of the server's. */
    public record ErrorAnswer(int status, String code) implements Fault {
    }

    /** Close the connection after {@code bytes} of the request body. */
    public record CutRequest(long bytes) implements Fault {
    }

    /** Close the connection after {@code bytes} of the response body. */
    public record CutResponse(long bytes) implements Fault {
    }

    /** Hold the response back for {@code time}. */
    public record Stall(Duration time) implements Fault {
    }

    /**
     * The answer to a ranged GET loses its Content-Range and becomes a 200, as a server's that ignores Range (the
     * Range header itself is signed and cannot be taken out; the body stays the range's).
     */
    public record DropRange() implements Fault {
    }

    public static Fault dropRange() {
        return new DropRange();
    }

    public static Fault internalError() {
        return new ErrorAnswer(500, "InternalError");
    }

    public static Fault slowDown() {
        return new ErrorAnswer(503, "SlowDown");
    }

    public static Fault cutRequest(long bytes) {
        return new CutRequest(bytes);
    }

    public static Fault cutResponse(long bytes) {
        return new CutResponse(bytes);
    }

    public static Fault stall(Duration time) {
        return new Stall(time);
    }

    private record Rule(Kind kind, Pattern key, Fault fault, AtomicInteger left) {
    }

    private final URI backend;
    private final ServerSocket server;
    private final List<Rule> rules = new CopyOnWriteArrayList<>();
    private final Map<Kind, AtomicInteger> counts = new EnumMap<>(Kind.class);
    private final AtomicInteger injected = new AtomicInteger();

    private HttpFaultProxy(URI backend) throws IOException {
        this.backend = backend;
        this.server = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        for (Kind k : Kind.values()) {
            counts.put(k, new AtomicInteger());
        }
        Thread t = new Thread(this::accept, "http-fault-proxy");
        t.setDaemon(true);
        t.start();
    }

    /** A proxy to {@code backend} (http://host:port). */
    public static HttpFaultProxy start(URI backend) throws IOException {
        return new HttpFaultProxy(backend);
    }

    /** Where clients should connect. */
    public URI endpoint() {
        return URI.create("http://127.0.0.1:" + server.getLocalPort());
    }

    /**
     * Injects {@code fault} into the next {@code times} requests of {@code kind} whose key (then {@code ?QUERY} if
     * any) matches {@code keyRegex}.
     */
    public HttpFaultProxy inject(Kind kind, String keyRegex, Fault fault, int times) {
        rules.add(new Rule(kind, Pattern.compile(keyRegex), fault, new AtomicInteger(times)));
        return this;
    }

    /** Forgets the rules that are left, and the counts. */
    public void reset() {
        rules.clear();
        counts.values().forEach(c -> c.set(0));
        injected.set(0);
    }

    /** How many requests of {@code kind} came in (faulted ones included). */
    public int count(Kind kind) {
        return counts.get(kind).get();
    }

    /** How many faults were injected. */
    public int injected() {
        return injected.get();
    }

    private void accept() {
        while (!server.isClosed()) {
            try {
                Socket client = server.accept();
                Thread t = new Thread(() -> serve(client), "http-fault-proxy-conn");
                t.setDaemon(true);
                t.start();
            } catch (IOException e) {
                return;
            }
        }
    }

    private void serve(Socket client) {
        try (client) {
            InputStream in = new BufferedInputStream(client.getInputStream());
            String head = readHead(in);
            if (head == null) {
                return;
            }
            String[] line = head.substring(0, head.indexOf('\r')).split(" ");
            String target = line[1];
            int q = target.indexOf('?');
            String path = URLDecoder.decode(q < 0 ? target : target.substring(0, q), StandardCharsets.UTF_8);
            String query = q < 0 ? "" : target.substring(q + 1);
            String key = path.replaceFirst("^/[^/]*/?", "");
            Kind kind = line[0].equals("GET") && (query.contains("list-type") || key.isEmpty()) ? Kind.LIST
                : Kind.valueOf(line[0]);
            counts.get(kind).incrementAndGet();
            Fault fault = null;
            String subject = query.isEmpty() ? key : key + "?" + query;
            for (Rule r : rules) {
                if (r.kind == kind && r.key.matcher(subject).matches() && r.left.getAndDecrement() > 0) {
                    fault = r.fault;
                    injected.incrementAndGet();
                    break;
                }
            }
            if (fault instanceof ErrorAnswer e) {
                answerError(client, in, head, e, key);
                return;
            }
            try (Socket server = new Socket(backend.getHost(), backend.getPort())) {
                OutputStream toServer = server.getOutputStream();
                toServer.write(withConnectionClose(head).getBytes(StandardCharsets.ISO_8859_1));
                long cutUp = fault instanceof CutRequest c ? c.bytes : Long.MAX_VALUE;
                Thread up = new Thread(() -> pump(in, toServer, cutUp, client, server), "http-fault-proxy-up");
                up.setDaemon(true);
                up.start();
                if (fault instanceof Stall s) {
                    Thread.sleep(s.time.toMillis());
                }
                InputStream fromServer = new BufferedInputStream(server.getInputStream());
                OutputStream toClient = client.getOutputStream();
                String answer;
                do {
                    answer = readHead(fromServer);
                    if (answer == null) {
                        return;
                    }
                    String forward = answer.startsWith("HTTP/1.1 1") ? answer : withConnectionClose(answer);
                    if (fault instanceof DropRange) {
                        forward = forward.replaceFirst("^HTTP/1.1 206 [^\r]*", "HTTP/1.1 200 OK")
                            .replaceAll("(?i)\r\ncontent-range:[^\r]*", "");
                    }
                    toClient.write(forward.getBytes(StandardCharsets.ISO_8859_1));
                    toClient.flush();
                } while (answer.startsWith("HTTP/1.1 100"));
                pump(fromServer, toClient, fault instanceof CutResponse c ? c.bytes : Long.MAX_VALUE, client, server);
            }
        } catch (IOException | InterruptedException | RuntimeException e) {
            // a connection cut on purpose, or a client that gave up: nothing to do
        }
    }

    /** Answers {@code e} after reading the request body (unless the client waits for 100-continue). */
    private static void answerError(Socket client, InputStream in, String head, ErrorAnswer e, String key)
            throws IOException {
        String lower = head.toLowerCase(Locale.ROOT);
        var length = Pattern.compile("\r\ncontent-length: *(\\d+)").matcher(lower);
        if (!lower.contains("expect: 100-continue") && length.find()) {
            in.skipNBytes(Long.parseLong(length.group(1)));
        }
        byte[] body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + e.code + "</Code><Message>"
            + "injected by HttpFaultProxy</Message><Key>" + key + "</Key><RequestId>fault</RequestId></Error>")
            .getBytes(StandardCharsets.UTF_8);
        boolean headRequest = head.startsWith("HEAD ");
        OutputStream out = client.getOutputStream();
        out.write(("HTTP/1.1 " + e.status + " " + e.code + "\r\nContent-Type: application/xml\r\nContent-Length: "
            + (headRequest ? 0 : body.length) + "\r\nConnection: close\r\n\r\n").getBytes(StandardCharsets.UTF_8));
        if (!headRequest) {
            out.write(body);
        }
        out.flush();
    }

    /** Copies until the end, or closes both sockets after {@code limit} bytes. */
    private static void pump(InputStream from, OutputStream to, long limit, Socket a, Socket b) {
        byte[] buf = new byte[16 << 10];
        long left = limit;
        try {
            int n;
            while ((n = from.read(buf, 0, (int) Math.min(buf.length, Math.max(left, 0)))) > 0) {
                to.write(buf, 0, n);
                to.flush();
                left -= n;
                if (left <= 0) {
                    a.close();
                    b.close();
                    return;
                }
            }
            if (left <= 0) {
                a.close();
                b.close();
            }
        } catch (IOException e) {
            // the other side went away
        }
    }

    /** The head of a request or response (up to the blank line, included), or null at the end of the stream. */
    private static String readHead(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        int c;
        int state = 0;
        while (state < 4 && (c = in.read()) >= 0) {
            b.write(c);
            state = (c == '\r' && state % 2 == 0) || (c == '\n' && state % 2 == 1) ? state + 1 : (c == '\r' ? 1 : 0);
        }
        return state < 4 ? null : b.toString(StandardCharsets.ISO_8859_1);
    }

    private static String withConnectionClose(String head) {
        return head.replaceAll("(?im)^(connection|keep-alive):[^\r\n]*\r\n", "")
            .replaceFirst("\r\n\r\n$", "\r\nConnection: close\r\n\r\n");
    }

    @Override
    public void close() throws IOException {
        server.close();
    }
}
