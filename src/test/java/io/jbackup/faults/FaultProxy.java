package io.jbackup.faults;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A TCP proxy on 127.0.0.1 in front of an NBD server's unix socket that injects network faults: the N-th
 * connection is {@linkplain Fault#cut cut} (both sides closed) or {@linkplain Fault#stall stalled} (nothing more is
 * forwarded to the client, the sockets stay open) once a given number of bytes went from the server to the client,
 * or {@linkplain Fault#stallRequests stalled} as soon as the handshake is over (the client's first request, found by
 * the NBD request magic, gets no reply). Connections past the list of faults get the last one.
 *
 * <p>In front of a TCP server (an S3 endpoint, {@link #FaultProxy(InetSocketAddress, List, Fault)}) a connection can
 * also be {@linkplain Fault#cutUpload cut} once a number of bytes went from the client to the server (in the middle
 * of an upload), and the answers can be {@linkplain #pause paused}: requests still reach the server, but nothing it
 * sends back is forwarded until they are resumed, so that a client holds whatever it holds (a lease it has just
 * created) for as long as a test needs; {@link #pauseAfter} pauses them as soon as a request names something.
 */
final class FaultProxy implements AutoCloseable {
    /**
     * What happens to one connection after {@code afterBytes} server-to-client bytes ({@code upstream}:
     * client-to-server bytes).
     */
    record Fault(long afterBytes, boolean stall, boolean onRequests, boolean upstream) {
        static Fault cut(long afterBytes) {
            return new Fault(afterBytes, false, false, false);
        }

        static Fault stall(long afterBytes) {
            return new Fault(afterBytes, true, false, false);
        }

        /** Handshake served, then no reply to any request. */
        static Fault stallRequests() {
            return new Fault(Long.MAX_VALUE, true, true, false);
        }

        /** Both sides closed once {@code afterBytes} went from the client to the server. */
        static Fault cutUpload(long afterBytes) {
            return new Fault(afterBytes, false, false, true);
        }

        static final Fault NONE = new Fault(Long.MAX_VALUE, false, false, false);
    }

    private static final byte[] REQUEST_MAGIC = {0x25, 0x60, (byte) 0x95, 0x13};

    private final ServerSocket server;
    private final SocketAddress target;
    private final List<Fault> faults;
    private final Fault rest;
    private final List<Socket> open = new CopyOnWriteArrayList<>();
    private final AtomicInteger connections = new AtomicInteger();
    private final AtomicInteger injected = new AtomicInteger();
    private volatile boolean closed;
    private volatile boolean paused;
    private volatile byte[] pauseTrigger;
    private volatile int maxFaults = Integer.MAX_VALUE;

    /** Faults for the first connections in order; later ones get {@code rest}. */
    FaultProxy(Path unixSocket, List<Fault> faults, Fault rest) throws IOException {
        this((SocketAddress) UnixDomainSocketAddress.of(unixSocket), faults, rest);
    }

    /** In front of the TCP server at {@code server}; faults for the first connections, later ones get {@code rest}. */
    FaultProxy(InetSocketAddress server, List<Fault> faults, Fault rest) throws IOException {
        this((SocketAddress) server, faults, rest);
    }

    private FaultProxy(SocketAddress target, List<Fault> faults, Fault rest) throws IOException {
        this.target = target;
        this.faults = List.copyOf(faults);
        this.rest = rest;
        this.server = new ServerSocket(0, 16, InetAddress.getLoopbackAddress());
        Thread t = new Thread(this::acceptLoop, "fault-proxy-accept");
        t.setDaemon(true);
        t.start();
    }

    int port() {
        return server.getLocalPort();
    }

    /** {@code nbd://127.0.0.1:PORT/} (qemu-nbd's default export ""). */
    String uri() {
        return "nbd://127.0.0.1:" + port() + "/";
    }

    /** Connections accepted so far. */
    int connections() {
        return connections.get();
    }

    /** {@code http://127.0.0.1:PORT}: the proxy as an HTTP (S3) endpoint. */
    String httpEndpoint() {
        return "http://127.0.0.1:" + port();
    }

    /**
     * Pauses (true) or resumes (false) the answers: while paused, requests still reach the server but what it sends
     * back waits in the proxy, so the clients get no answer (none is lost: it is forwarded on resume).
     */
    void pause(boolean pause) {
        paused = pause;
    }

    /**
     * Pauses the answers (see {@link #pause}) once a client sends bytes containing {@code marker} (an object name in
     * a request line), before they reach the server: the server acts on that request, the client never hears of it
     * until {@link #pause pause(false)}.
     */
    FaultProxy pauseAfter(String marker) {
        pauseTrigger = marker.getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        return this;
    }

    /** Whether the answers are paused now ({@link #pause}, or {@link #pauseAfter} triggered). */
    boolean paused() {
        return paused;
    }

    /**
     * Injects at most {@code max} faults in all: a connection that reaches its fault after that goes on untouched
     * (for faults on every connection, when which connections carry uploads is not known in advance).
     */
    FaultProxy limitFaults(int max) {
        maxFaults = max;
        return this;
    }

    /** Faults injected so far (cuts done, stalls begun). */
    int injected() {
        return injected.get();
    }

    private void acceptLoop() {
        while (!closed) {
            try {
                Socket c = server.accept();
                int n = connections.getAndIncrement();
                Fault f = n < faults.size() ? faults.get(n) : rest;
                SocketChannel up = SocketChannel.open(target);
                open.add(c);
                Runnable closeBoth = () -> {
                    closeQuietly(c);
                    try {
                        up.close();
                    } catch (IOException ignored) {
                        // closing anyway
                    }
                };
                java.util.concurrent.atomic.AtomicBoolean requested = new java.util.concurrent.atomic.AtomicBoolean();
                start(() -> pump(c.getInputStream(), out(up), true, f.upstream() ? f : Fault.NONE, closeBoth,
                    f.onRequests() ? requested : null));
                start(() -> pump(in(up), c.getOutputStream(), false, f.upstream() ? Fault.NONE : f, closeBoth,
                    f.onRequests() ? requested : null));
            } catch (IOException e) {
                if (!closed) {
                    throw new UncheckedIOException(e);
                }
            }
        }
    }

    /**
     * Streams over the unix socket channel. Not {@code Channels.newInputStream/newOutputStream}: on a blocking
     * socket channel those share one lock, so a pending read would block every write.
     */
    private static InputStream in(SocketChannel ch) {
        return new InputStream() {
            @Override
            public int read() throws IOException {
                byte[] b = new byte[1];
                return read(b, 0, 1) < 0 ? -1 : b[0] & 0xff;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                return ch.read(java.nio.ByteBuffer.wrap(b, off, len));
            }
        };
    }

    private static OutputStream out(SocketChannel ch) {
        return new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                java.nio.ByteBuffer bb = java.nio.ByteBuffer.wrap(b, off, len);
                while (bb.hasRemaining()) {
                    ch.write(bb);
                }
            }
        };
    }

    private interface Io {
        void run() throws IOException;
    }

    private static void start(Io body) {
        Thread t = new Thread(() -> {
            try {
                body.run();
            } catch (IOException ignored) {
                // the other side went away
            }
        }, "fault-proxy-pump");
        t.setDaemon(true);
        t.start();
    }

    /**
     * Copies {@code in} to {@code out} until the fault hits. Client to server ({@code watch} not null): sets
     * {@code watch} once the NBD request magic went by. Server to client: {@code watch} set means stall now.
     */
    private void pump(InputStream in, OutputStream out, boolean toServer, Fault f, Runnable closeBoth,
                      java.util.concurrent.atomic.AtomicBoolean watch) throws IOException {
        byte[] buf = new byte[64 << 10];
        long left = f.afterBytes();
        int matched = 0;
        try {
            while (!closed) {
                if (left == 0) {
                    if (injected.incrementAndGet() > maxFaults) {
                        injected.decrementAndGet();
                        left = Long.MAX_VALUE;
                        continue;
                    }
                    if (!f.stall()) {
                        return; // cut: finally closes both sides
                    }
                    while (!closed && in.read(buf) >= 0) {
                        // stalled: swallow what the server sends, forward nothing, until someone closes
                    }
                    return;
                }
                int n = in.read(buf, 0, (int) Math.min(buf.length, left));
                if (n < 0) {
                    return;
                }
                byte[] trigger = pauseTrigger;
                if (toServer && trigger != null && contains(buf, n, trigger)) {
                    paused = true;
                    pauseTrigger = null;
                }
                while (!toServer && paused && !closed) {
                    sleepQuietly();
                }
                if (watch != null && f == Fault.NONE && !watch.get()) {
                    for (int i = 0; i < n && matched < REQUEST_MAGIC.length; i++) {
                        matched = buf[i] == REQUEST_MAGIC[matched] ? matched + 1 : buf[i] == REQUEST_MAGIC[0] ? 1 : 0;
                    }
                    if (matched == REQUEST_MAGIC.length) {
                        watch.set(true);
                    }
                }
                if (f.onRequests() && watch.get()) {
                    injected.incrementAndGet();
                    while (!closed && in.read(buf) >= 0) {
                        // the reply to a request and all after it: swallowed until someone closes
                    }
                    return;
                }
                out.write(buf, 0, n);
                out.flush();
                left -= n;
            }
        } finally {
            closeBoth.run();
        }
    }

    private static boolean contains(byte[] buf, int n, byte[] marker) {
        for (int i = 0; i + marker.length <= n; i++) {
            if (java.util.Arrays.equals(buf, i, i + marker.length, marker, 0, marker.length)) {
                return true;
            }
        }
        return false;
    }

    private static void sleepQuietly() {
        try {
            Thread.sleep(5);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void closeQuietly(Socket s) {
        try {
            s.close();
        } catch (IOException ignored) {
            // closing anyway
        }
    }

    @Override
    public void close() throws IOException {
        closed = true;
        server.close();
        open.forEach(FaultProxy::closeQuietly);
    }
}
