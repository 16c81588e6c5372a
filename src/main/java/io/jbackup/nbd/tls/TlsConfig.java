package io.jbackup.nbd.tls;

import io.jbackup.error.UsageException;

import java.nio.file.Path;

/**
 * TLS settings for an NBD connection (client or server).
 *
 * <ul>
 *   <li>X.509: {@code x509Dir} is a qemu-style credentials directory: {@code ca-cert.pem}, and
 *       {@code client-cert.pem}/{@code client-key.pem} (client) or {@code server-cert.pem}/{@code server-key.pem}
 *       (server).</li>
 *   <li>PSK: {@code pskFile} is a qemu {@code keys.psk} file ({@code username:hexkey} lines) and
 *       {@code pskUser} the identity to use (client) - a server accepts any identity in the file.</li>
 * </ul>
 *
 * @param mode           whether TLS is off, preferred or required
 * @param x509Dir        credentials directory for X.509, or null
 * @param pskFile        {@code keys.psk} file for TLS-PSK, or null
 * @param pskUser        PSK identity (client side), or null for the qemu default {@code qemu}
 * @param hostname       host name to verify in the server certificate (X.509 client), or null to use the URI host
 * @param verifyPeer     X.509: verify the peer certificate against {@code ca-cert.pem}
 */
public record TlsConfig(TlsMode mode, Path x509Dir, Path pskFile, String pskUser, String hostname, boolean verifyPeer) {

    /** Plaintext. */
    public static final TlsConfig OFF = new TlsConfig(TlsMode.OFF, null, null, null, null, true);

    public TlsConfig {
        if (mode == null) {
            throw new IllegalArgumentException("TLS mode must be set");
        }
        if (mode != TlsMode.OFF && x509Dir == null && pskFile == null) {
            throw new UsageException(
                "TLS mode " + mode + " needs credentials: --tls-creds DIR (X.509) or --tls-psk-file FILE (PSK)");
        }
        if (x509Dir != null && pskFile != null) {
            throw new UsageException("choose X.509 (--tls-creds) or PSK (--tls-psk-file), not both");
        }
    }

    public boolean isPsk() {
        return pskFile != null;
    }

    public boolean enabled() {
        return mode != TlsMode.OFF;
    }

    /** This configuration with another mode (e.g. REQUIRE for {@code nbds://} URIs). */
    public TlsConfig withMode(TlsMode newMode) {
        return new TlsConfig(newMode, x509Dir, pskFile, pskUser, hostname, verifyPeer);
    }
}
