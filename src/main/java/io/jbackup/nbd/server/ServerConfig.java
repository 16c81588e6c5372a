package io.jbackup.nbd.server;

import io.jbackup.error.UsageException;
import io.jbackup.nbd.tls.TlsConfig;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Settings of an {@link NbdServer}, validated when built.
 *
 * @param tcpAddress         TCP address to listen on (port 0 picks a free one), or null
 * @param unixSocket         Unix socket path to listen on, or null (at least one listener is required)
 * @param tls                TLS mode and credentials; {@code PREFER} accepts clients with and without TLS,
 *                           {@code REQUIRE} answers every option but STARTTLS and ABORT with ERR_TLS_REQD until TLS
 * @param maxConnections     connections served at once; further ones are closed right after accept
 * @param maxOptionLength    longest handshake option buffered; longer ones are skipped and refused (ERR_TOO_BIG)
 * @param maxPayload         server-wide cap on READ/WRITE payloads (the advertised maximum is the smaller of this
 *                           and the export's); longer WRITE payloads are discarded, not buffered
 * @param maxInFlight        requests processed at once per connection; beyond it the server stops reading
 * @param maxInFlightBytes   READ/WRITE bytes in flight per connection (counted until the reply is written to the
 *                           socket); beyond it the server stops reading, so a client that does not read its
 *                           replies cannot make the server buffer more
 * @param handshakeTimeout   a connection still negotiating after this long is closed (defeats slowloris)
 * @param requestTimeout     in transmission, a request that has partly arrived must make progress (more bytes) within
 *                           this long while the server is reading, or the connection is closed; idle connections
 *                           with no request under way are not affected (a VM may leave its disk idle for hours)
 * @param shutdownTimeout    on {@link NbdServer#close()}, how long in-flight requests may take to finish
 * @param ioThreads          network event loop threads
 * @param blockingThreads    threads for {@link ExportProvider} calls and export close
 */
public record ServerConfig(InetSocketAddress tcpAddress, Path unixSocket, TlsConfig tls, int maxConnections,
                           int maxOptionLength, int maxPayload, int maxInFlight, long maxInFlightBytes,
                           Duration handshakeTimeout, Duration requestTimeout, Duration shutdownTimeout, int ioThreads,
                           int blockingThreads) {

    public ServerConfig {
        if (tcpAddress == null && unixSocket == null) {
            throw new UsageException("the NBD server needs a TCP address or a Unix socket path to listen on");
        }
        if (tls == null) {
            tls = TlsConfig.OFF;
        }
        requireRange("maxConnections", maxConnections, 1, 1 << 20);
        requireRange("maxOptionLength", maxOptionLength, 4096 + 64, 16 << 20);
        requireRange("maxPayload", maxPayload, 64 << 10, 1 << 30);
        requireRange("maxInFlight", maxInFlight, 1, 1 << 16);
        if (maxInFlightBytes < maxPayload) {
            throw new IllegalArgumentException("maxInFlightBytes: " + maxInFlightBytes
                + " (expected: >= maxPayload " + maxPayload + ")");
        }
        if (handshakeTimeout == null || handshakeTimeout.isNegative() || handshakeTimeout.isZero()) {
            throw new IllegalArgumentException("handshakeTimeout: " + handshakeTimeout + " (expected: > 0)");
        }
        if (requestTimeout == null || requestTimeout.isNegative() || requestTimeout.isZero()) {
            throw new IllegalArgumentException("requestTimeout: " + requestTimeout + " (expected: > 0)");
        }
        if (shutdownTimeout == null || shutdownTimeout.isNegative()) {
            throw new IllegalArgumentException("shutdownTimeout: " + shutdownTimeout + " (expected: >= 0)");
        }
        requireRange("ioThreads", ioThreads, 1, 1024);
        requireRange("blockingThreads", blockingThreads, 1, 1024);
    }

    private static void requireRange(String name, long value, long min, long max) {
        if (value < min || value > max) {
            throw new IllegalArgumentException(name + ": " + value + " (expected: " + min + ".." + max + ")");
        }
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder starting from the defaults. */
    public static final class Builder {
        private InetSocketAddress tcpAddress;
        private Path unixSocket;
        private TlsConfig tls = TlsConfig.OFF;
        private int maxConnections = 256;
        private int maxOptionLength = 64 << 10;
        private int maxPayload = 32 << 20;
        private int maxInFlight = 128;
        private long maxInFlightBytes = 64L << 20;
        private Duration handshakeTimeout = Duration.ofSeconds(10);
        private Duration requestTimeout = Duration.ofSeconds(60);
        private Duration shutdownTimeout = Duration.ofSeconds(10);
        private int ioThreads = Math.max(1, Math.min(4, Runtime.getRuntime().availableProcessors()));
        private int blockingThreads = 8;

        public Builder tcp(InetSocketAddress address) {
            this.tcpAddress = address;
            return this;
        }

        public Builder tcp(String host, int port) {
            return tcp(new InetSocketAddress(host, port));
        }

        public Builder unixSocket(Path path) {
            this.unixSocket = path;
            return this;
        }

        public Builder tls(TlsConfig tls) {
            this.tls = tls;
            return this;
        }

        public Builder maxConnections(int n) {
            this.maxConnections = n;
            return this;
        }

        public Builder maxOptionLength(int n) {
            this.maxOptionLength = n;
            return this;
        }

        public Builder maxPayload(int n) {
            this.maxPayload = n;
            return this;
        }

        public Builder maxInFlight(int n) {
            this.maxInFlight = n;
            return this;
        }

        public Builder maxInFlightBytes(long n) {
            this.maxInFlightBytes = n;
            return this;
        }

        public Builder handshakeTimeout(Duration d) {
            this.handshakeTimeout = d;
            return this;
        }

        public Builder requestTimeout(Duration d) {
            this.requestTimeout = d;
            return this;
        }

        public Builder shutdownTimeout(Duration d) {
            this.shutdownTimeout = d;
            return this;
        }

        public Builder ioThreads(int n) {
            this.ioThreads = n;
            return this;
        }

        public Builder blockingThreads(int n) {
            this.blockingThreads = n;
            return this;
        }

        public ServerConfig build() {
            return new ServerConfig(tcpAddress, unixSocket, tls, maxConnections, maxOptionLength, maxPayload,
                maxInFlight, maxInFlightBytes, handshakeTimeout, requestTimeout, shutdownTimeout, ioThreads,
                blockingThreads);
        }
    }
}
