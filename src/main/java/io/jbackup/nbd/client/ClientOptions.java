package io.jbackup.nbd.client;

import io.jbackup.error.UsageException;
import io.jbackup.nbd.protocol.NbdConstants;
import io.jbackup.nbd.tls.TlsConfig;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;

/**
 * Settings of an {@link NbdClient}, validated up front.
 *
 * @param tls              TLS settings ({@link TlsConfig#OFF} for plaintext); an {@code nbds://} URI requires TLS
 *                         whatever the mode says
 * @param metaContexts     meta contexts to select with {@code NBD_OPT_SET_META_CONTEXT} (e.g. {@code base:allocation},
 *                         {@code qemu:dirty-bitmap:NAME}); those the server does not know are silently not selected
 * @param connectTimeout   TCP/unix connect
 * @param handshakeTimeout whole option negotiation, TLS included
 * @param requestTimeout   longest wait for the reply to one request; on expiry the connection is closed and every
 *                         request on it fails (a server that stops answering is broken)
 * @param maxInFlight      requests in flight per connection; more are queued in the client
 * @param connections      connections to open when the server advertises {@code CAN_MULTI_CONN} (else 1)
 * @param maxReplyPayload  bound on every length the server sends (reply chunk payloads, read data); a larger value
 *                         is a protocol error
 * @param maxRequestSize   largest READ/WRITE sent in one request; larger calls are split (further limited by the
 *                         server's maximum payload, and aligned to its minimum block size)
 * @param extendedHeaders  ask for {@code NBD_OPT_EXTENDED_HEADERS} (QEMU 8.2+) before structured replies; off only to
 *                         test the fallback or to work around a broken server
 */
public record ClientOptions(TlsConfig tls, List<String> metaContexts, Duration connectTimeout,
                            Duration handshakeTimeout, Duration requestTimeout, int maxInFlight, int connections,
                            int maxReplyPayload, int maxRequestSize, boolean extendedHeaders) {

    public static final int DEFAULT_MAX_IN_FLIGHT = 64;
    public static final int DEFAULT_MAX_REPLY_PAYLOAD = 32 << 20;
    /** qemu-nbd 7.2 gets much slower with requests of 1 MiB and more; 512 KiB keeps it at full speed. */
    public static final int DEFAULT_MAX_REQUEST_SIZE = 512 << 10;

    public ClientOptions {
        if (tls == null) {
            throw new IllegalArgumentException("tls must be set (TlsConfig.OFF for plaintext)");
        }
        metaContexts = List.copyOf(metaContexts == null ? List.of() : metaContexts);
        for (String c : metaContexts) {
            if (c.indexOf(':') <= 0 || c.getBytes(StandardCharsets.UTF_8).length > NbdConstants.MAX_STRING_LENGTH) {
                throw new UsageException("meta context '" + c + "' must be NAMESPACE:NAME (e.g. "
                    + "base:allocation, qemu:allocation-depth, qemu:dirty-bitmap:BITMAP), at most 4096 bytes");
            }
        }
        if (metaContexts.stream().distinct().count() != metaContexts.size()) {
            throw new UsageException("meta contexts listed twice: " + metaContexts);
        }
        positive(connectTimeout, "connectTimeout");
        positive(handshakeTimeout, "handshakeTimeout");
        positive(requestTimeout, "requestTimeout");
        if (maxInFlight < 1 || maxInFlight > 4096) {
            throw new IllegalArgumentException("maxInFlight " + maxInFlight + " must be in 1..4096");
        }
        if (connections < 1 || connections > 64) {
            throw new IllegalArgumentException("connections " + connections + " must be in 1..64");
        }
        if (maxReplyPayload < (64 << 10) || maxReplyPayload > (1 << 30)) {
            throw new IllegalArgumentException("maxReplyPayload " + maxReplyPayload + " must be in 64 KiB..1 GiB");
        }
        if (maxRequestSize < 4096 || maxRequestSize > maxReplyPayload) {
            throw new IllegalArgumentException("maxRequestSize " + maxRequestSize + " must be in 4096..maxReplyPayload ("
                + maxReplyPayload + ")");
        }
    }

    private static void positive(Duration d, String what) {
        if (d == null || d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException(what + " must be a positive duration, got " + d);
        }
    }

    /** Plaintext, no meta contexts, timeouts 10 s connect / 30 s handshake / 120 s per request, 64 in flight. */
    public static ClientOptions defaults() {
        return new ClientOptions(TlsConfig.OFF, List.of(), Duration.ofSeconds(10), Duration.ofSeconds(30),
            Duration.ofSeconds(120), DEFAULT_MAX_IN_FLIGHT, 1, DEFAULT_MAX_REPLY_PAYLOAD, DEFAULT_MAX_REQUEST_SIZE,
            true);
    }

    public ClientOptions withTls(TlsConfig v) {
        return new ClientOptions(v, metaContexts, connectTimeout, handshakeTimeout, requestTimeout, maxInFlight,
            connections, maxReplyPayload, maxRequestSize, extendedHeaders);
    }

    public ClientOptions withMetaContexts(List<String> v) {
        return new ClientOptions(tls, v, connectTimeout, handshakeTimeout, requestTimeout, maxInFlight,
            connections, maxReplyPayload, maxRequestSize, extendedHeaders);
    }

    public ClientOptions withConnectTimeout(Duration v) {
        return new ClientOptions(tls, metaContexts, v, handshakeTimeout, requestTimeout, maxInFlight,
            connections, maxReplyPayload, maxRequestSize, extendedHeaders);
    }

    public ClientOptions withHandshakeTimeout(Duration v) {
        return new ClientOptions(tls, metaContexts, connectTimeout, v, requestTimeout, maxInFlight,
            connections, maxReplyPayload, maxRequestSize, extendedHeaders);
    }

    public ClientOptions withRequestTimeout(Duration v) {
        return new ClientOptions(tls, metaContexts, connectTimeout, handshakeTimeout, v, maxInFlight,
            connections, maxReplyPayload, maxRequestSize, extendedHeaders);
    }

    /**
     * One bound for a whole backup's patience: {@code t} as the request timeout, and as the connect and handshake
     * timeouts where it is shorter than theirs (it never lengthens them). {@code t} must be 1 s .. 1 day.
     */
    public ClientOptions withTimeout(Duration t) {
        if (t == null || t.compareTo(Duration.ofSeconds(1)) < 0 || t.compareTo(Duration.ofDays(1)) > 0) {
            throw new IllegalArgumentException("timeout " + (t == null ? null : t.toSeconds() + " s")
                + " (expected: 1 .. 86400 seconds)");
        }
        return withRequestTimeout(t)
            .withHandshakeTimeout(t.compareTo(handshakeTimeout) < 0 ? t : handshakeTimeout)
            .withConnectTimeout(t.compareTo(connectTimeout) < 0 ? t : connectTimeout);
    }

    public ClientOptions withMaxInFlight(int v) {
        return new ClientOptions(tls, metaContexts, connectTimeout, handshakeTimeout, requestTimeout, v,
            connections, maxReplyPayload, maxRequestSize, extendedHeaders);
    }

    public ClientOptions withConnections(int v) {
        return new ClientOptions(tls, metaContexts, connectTimeout, handshakeTimeout, requestTimeout, maxInFlight,
            v, maxReplyPayload, maxRequestSize, extendedHeaders);
    }

    public ClientOptions withMaxReplyPayload(int v) {
        return new ClientOptions(tls, metaContexts, connectTimeout, handshakeTimeout, requestTimeout, maxInFlight,
            connections, v, Math.min(maxRequestSize, v), extendedHeaders);
    }

    public ClientOptions withMaxRequestSize(int v) {
        return new ClientOptions(tls, metaContexts, connectTimeout, handshakeTimeout, requestTimeout, maxInFlight,
            connections, maxReplyPayload, v, extendedHeaders);
    }

    public ClientOptions withExtendedHeaders(boolean v) {
        return new ClientOptions(tls, metaContexts, connectTimeout, handshakeTimeout, requestTimeout, maxInFlight,
            connections, maxReplyPayload, maxRequestSize, v);
    }
}
