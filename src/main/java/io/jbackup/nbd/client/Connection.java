package io.jbackup.nbd.client;

import io.netty.channel.Channel;

import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;

/** One connection in transmission phase: its channel, handler, and the meta context ids it negotiated. */
final class Connection {
    final Channel channel;
    final TransmissionHandler handler;
    /** context id to name, as negotiated on this connection (ids are per connection) */
    final Map<Integer, String> contexts;
    private final AtomicInteger outstanding = new AtomicInteger();

    Connection(Channel channel, TransmissionHandler handler, Map<Integer, String> contexts) {
        this.channel = channel;
        this.handler = handler;
        this.contexts = Map.copyOf(contexts);
    }

    boolean alive() {
        return channel.isActive();
    }

    /** Requests submitted and not yet answered (approximate, for load balancing). */
    int outstanding() {
        return outstanding.get();
    }

    /** Submits requests in order; their futures must be the ones passed at construction. */
    void submit(List<Request> requests, List<? extends CompletableFuture<?>> futures) {
        outstanding.addAndGet(requests.size());
        for (CompletableFuture<?> f : futures) {
            f.whenComplete((v, e) -> outstanding.decrementAndGet());
        }
        channel.eventLoop().execute(() -> {
            for (Request r : requests) {
                handler.submit(r);
            }
        });
    }

    CompletableFuture<Void> shutdown(long graceNanos) {
        CompletableFuture<Void> done = new CompletableFuture<>();
        channel.eventLoop().execute(() -> handler.shutdown(graceNanos).whenComplete((v, e) -> done.complete(null)));
        return done;
    }
}
