package io.jbackup.nbd.client;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The transmission connections of one {@link NbdClient}: opened (the first, then, when the server advertises
 * {@code CAN_MULTI_CONN}, more up to {@link ClientOptions#connections()}, each negotiating the same parameters),
 * requests spread over them, and closed.
 */
final class Connections {
    /** Logs under {@link NbdClient}'s name, as before the connections were split off. */
    private static final Logger LOG = LoggerFactory.getLogger(NbdClient.class);

    /** What the first connection negotiated; every other one negotiated the same. */
    final Handshake.Negotiated first;
    private final List<Connection> connections;
    private final AtomicInteger roundRobin = new AtomicInteger();

    private Connections(Handshake.Negotiated first, List<Connection> connections) {
        this.first = first;
        this.connections = List.copyOf(connections);
    }

    /** Opens the connections as {@link NbdClient#connect} describes. */
    static Connections open(NbdUri uri, ClientOptions opts) throws IOException {
        Handshake h = Handshake.start(uri, opts);
        Handshake.Negotiated first;
        List<Connection> conns = new ArrayList<>();
        try {
            first = h.negotiate(opts.metaContexts());
            conns.add(h.toTransmission(first));
        } catch (IOException | RuntimeException e) {
            endFailedHandshake(h, e);
            throw e;
        }
        ExportInfo info = first.info();
        LOG.debug("{}: connected: size {}, flags {}, block sizes {}/{}/{}, structured replies {}, contexts {}", uri,
            info.size(), info.flagNames(), info.minBlock(), info.preferredBlock(), info.maxBlock(), first.structured(),
            first.contexts());
        if (opts.connections() > 1 && info.canMultiConn()) {
            for (int i = 1; i < opts.connections(); i++) {
                try {
                    conns.add(extraConnection(uri, opts, first));
                } catch (IOException | RuntimeException e) {
                    LOG.warn("{}: could not open connection {} of {} ({}); continuing with {}", uri, i + 1,
                        opts.connections(), e.getMessage(), conns.size());
                    break;
                }
            }
        }
        return new Connections(first, conns);
    }

    private static Connection extraConnection(NbdUri uri, ClientOptions opts, Handshake.Negotiated first)
        throws IOException {
        // a server that advertises multi-conn but accepts one client at a time would stall us: give up sooner
        Duration cap = Duration.ofSeconds(5);
        ClientOptions o = opts.handshakeTimeout().compareTo(cap) > 0 ? opts.withHandshakeTimeout(cap) : opts;
        Handshake h = Handshake.start(uri, o);
        try {
            Handshake.Negotiated n = h.negotiate(opts.metaContexts());
            if (n.info().size() != first.info().size()
                || n.info().transmissionFlags() != first.info().transmissionFlags()
                || n.structured() != first.structured() || n.mode() != first.mode()
                || !Set.copyOf(n.contexts().values()).equals(Set.copyOf(first.contexts().values()))) {
                throw new IOException("the server negotiated different parameters on this connection");
            }
            return h.toTransmission(n);
        } catch (IOException | RuntimeException e) {
            endFailedHandshake(h, e);
            throw e;
        }
    }

    /** A refused option ends with a soft disconnect (NBD_OPT_ABORT); a broken or silent peer is just dropped. */
    private static void endFailedHandshake(Handshake h, Exception e) {
        if (e instanceof NbdHandshakeException) {
            h.abort();
        } else {
            h.close();
        }
    }

    /** All connections, live or not, in the order they were opened. */
    List<Connection> all() {
        return connections;
    }

    /** Number of open connections. */
    int alive() {
        return (int) connections.stream().filter(Connection::alive).count();
    }

    /** Sends the parts over the connections and completes the result when every part has been answered. */
    CompletableFuture<Void> dispatch(List<Request> parts, List<CompletableFuture<Void>> futures) {
        if (connections.size() == 1 || parts.size() == 1) {
            pick().submit(parts, futures);
        } else {
            Map<Connection, List<Request>> byConn = new LinkedHashMap<>();
            Map<Connection, List<CompletableFuture<Void>>> futByConn = new LinkedHashMap<>();
            List<Connection> alive = connections.stream().filter(Connection::alive).toList();
            if (alive.isEmpty()) {
                alive = connections;
            }
            int base = roundRobin.getAndAdd(parts.size());
            for (int i = 0; i < parts.size(); i++) {
                Connection c = alive.get(Math.floorMod(base + i, alive.size()));
                byConn.computeIfAbsent(c, k -> new ArrayList<>()).add(parts.get(i));
                futByConn.computeIfAbsent(c, k -> new ArrayList<>()).add(futures.get(i));
            }
            byConn.forEach((c, rs) -> c.submit(rs, futByConn.get(c)));
        }
        return futures.size() == 1 ? futures.get(0) : allParts(futures);
    }

    /** Completes when all parts completed; fails with the first part's failure (not wrapped). */
    private static CompletableFuture<Void> allParts(List<CompletableFuture<Void>> parts) {
        CompletableFuture<Void> all = new CompletableFuture<>();
        AtomicInteger left = new AtomicInteger(parts.size());
        AtomicReference<Throwable> first = new AtomicReference<>();
        for (CompletableFuture<Void> p : parts) {
            p.whenComplete((v, e) -> {
                if (e != null) {
                    first.compareAndSet(null, e);
                }
                if (left.decrementAndGet() == 0) {
                    Throwable t = first.get();
                    if (t == null) {
                        all.complete(null);
                    } else {
                        all.completeExceptionally(t);
                    }
                }
            });
        }
        return all;
    }

    /** The least busy live connection (the first one if all are dead: its requests fail with the cause). */
    Connection pick() {
        if (connections.size() == 1) {
            return connections.get(0);
        }
        Connection best = null;
        int start = Math.floorMod(roundRobin.getAndIncrement(), connections.size());
        for (int i = 0; i < connections.size(); i++) {
            Connection c = connections.get((start + i) % connections.size());
            if (c.alive() && (best == null || c.outstanding() < best.outstanding())) {
                best = c;
            }
        }
        return best != null ? best : connections.get(0);
    }

    /**
     * Waits (up to {@code graceNanos}) for submitted requests, sends {@code NBD_CMD_DISC} and closes every
     * connection. Called from a completion callback (an I/O thread) it starts the same sequence without waiting.
     */
    void close(NbdUri uri, long graceNanos) {
        List<CompletableFuture<Void>> done = new ArrayList<>();
        boolean onIoThread = false;
        for (Connection c : connections) {
            done.add(c.shutdown(graceNanos));
            onIoThread |= c.channel.eventLoop().inEventLoop();
        }
        if (onIoThread) {
            // called from a completion callback: waiting here would block the replies being waited for
            return;
        }
        try {
            CompletableFuture.allOf(done.toArray(new CompletableFuture<?>[0]))
                .get(graceNanos + TimeUnit.SECONDS.toNanos(5), TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (Exception e) {
            LOG.debug("{}: close did not finish cleanly: {}", uri, e.toString());
        }
        for (Connection c : connections) {
            c.channel.close();
        }
    }
}
