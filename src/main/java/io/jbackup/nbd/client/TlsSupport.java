package io.jbackup.nbd.client;

import io.jbackup.nbd.tls.TlsConfig;
import io.netty.channel.Channel;

import java.io.IOException;

/** Glue between the handshake and {@code io.jbackup.nbd.tls} (placeholder until that package is merged). */
final class TlsSupport {
    private TlsSupport() {
    }

    static boolean isHandshakeEvent(Object evt) {
        return false;
    }

    static void addClientHandler(Channel ch, TlsConfig cfg, NbdUri uri) throws IOException {
        throw new NbdHandshakeException("TLS is not available in this build", null);
    }

    static void checkHandshake(Object evt, NbdUri uri) throws IOException {
        throw new NbdHandshakeException("TLS is not available in this build", null);
    }

    static String describe(Object evt) {
        return String.valueOf(evt);
    }
}
