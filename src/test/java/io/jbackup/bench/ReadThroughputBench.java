package io.jbackup.bench;

import io.jbackup.nbd.client.ClientOptions;
import io.jbackup.nbd.client.Extents;
import io.jbackup.nbd.client.NbdClient;
import io.jbackup.nbd.client.NbdUri;
import io.jbackup.nbd.protocol.Extent;
import io.jbackup.nbd.protocol.NbdConstants;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Semaphore;

/**
 * Read throughput of {@link NbdClient} against a running NBD server (not part of the normal build):
 * <pre>
 * qemu-nbd -r -t -f raw -e 4 -k /tmp/bench.sock IMAGE &amp;
 * mvn -q -B -o test -Dgroups=bench -DexcludedGroups= -Dtest=ReadThroughputBench \
 *     -Dbench.uri='nbd+unix:///?socket=/tmp/bench.sock' [-Dbench.connections=1]
 * </pre>
 * Reads (a) every byte and (b) only the allocated extents of base:allocation, with 512 KiB requests and up to 64
 * in flight per connection, into reused buffers; prints MB/s (10^6 bytes) over the export size / bytes read.
 */
@Tag("bench")
class ReadThroughputBench {
    static final int PIECE = 512 << 10;

    @Test
    void read() throws Exception {
        NbdUri uri = NbdUri.parse(System.getProperty("bench.uri", "nbd+unix:///?socket=/tmp/bench.sock"));
        int conns = Integer.getInteger("bench.connections", 1);
        ClientOptions opts = ClientOptions.defaults().withConnections(conns)
            .withMetaContexts(List.of(NbdConstants.CONTEXT_BASE_ALLOCATION));
        for (int round = 0; round < 2; round++) {
            try (NbdClient c = NbdClient.connect(uri, opts)) {
                long size = c.info().size();
                long t0 = System.nanoTime();
                long n = readRanges(c, List.of(new Extent(0, size, 0)), 64 * conns);
                long t1 = System.nanoTime();
                List<Extent> map = Extents.coalesce(Extents.map(c, NbdConstants.CONTEXT_BASE_ALLOCATION, 0, size));
                List<Extent> data = map.stream().filter(e -> (e.flags() & NbdConstants.STATE_ZERO) == 0).toList();
                long m = readRanges(c, data, 64 * conns);
                long t2 = System.nanoTime();
                System.out.printf("round %d, %d connection(s): all %d bytes in %.3f s = %.0f MB/s; allocated only "
                        + "(map + read %d bytes) %.3f s = %.0f MB/s of allocated, %.0f MB/s of disk size%n",
                    round, c.connectionCount(), n, (t1 - t0) / 1e9, n / ((t1 - t0) / 1e3), m, (t2 - t1) / 1e9,
                    m / ((t2 - t1) / 1e3), size / ((t2 - t1) / 1e3));
            }
        }
    }

    /** Reads the ranges in 512 KiB pieces with at most {@code window} pieces outstanding; returns bytes read. */
    static long readRanges(NbdClient c, List<Extent> ranges, int window) throws Exception {
        Semaphore slots = new Semaphore(window);
        List<byte[]> pool = new ArrayList<>();
        java.util.concurrent.ConcurrentLinkedQueue<byte[]> free = new java.util.concurrent.ConcurrentLinkedQueue<>();
        for (int i = 0; i < window; i++) {
            pool.add(new byte[PIECE]);
            free.add(pool.get(i));
        }
        List<CompletableFuture<Void>> last = new ArrayList<>();
        long total = 0;
        for (Extent e : ranges) {
            for (long pos = e.offset(); pos < e.end(); pos += PIECE) {
                int len = (int) Math.min(PIECE, e.end() - pos);
                slots.acquire();
                byte[] buf = free.poll();
                CompletableFuture<Void> f = c.read(pos, buf, 0, len);
                f.whenComplete((v, ex) -> {
                    free.add(buf);
                    slots.release();
                });
                total += len;
            }
        }
        slots.acquire(window);
        return total;
    }
}
