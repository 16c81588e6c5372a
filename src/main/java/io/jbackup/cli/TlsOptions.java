package io.jbackup.cli;

import io.jbackup.error.UsageException;
import io.jbackup.nbd.tls.TlsConfig;
import io.jbackup.nbd.tls.TlsMode;
import picocli.CommandLine.Option;

import java.nio.file.Path;

/** TLS options shared by every command that talks NBD (client or server). */
public final class TlsOptions {
    @Option(names = "--tls", paramLabel = "off|prefer|require",
        description = "Negotiate TLS with NBD_OPT_STARTTLS: off, prefer (fall back to plaintext only if the server "
            + "does not support TLS) or require (never plaintext). Default: require for nbds:// URIs and when "
            + "credentials are given, otherwise off.")
    TlsMode mode;

    @Option(names = "--tls-creds", paramLabel = "DIR",
        description = "X.509 credentials directory in qemu layout: ca-cert.pem, client-cert.pem, client-key.pem. "
            + "For serve: server-cert.pem, server-key.pem, and ca-cert.pem, which turns on client certificate "
            + "verification: only clients with a certificate issued by that CA are accepted.")
    Path x509Dir;

    @Option(names = "--tls-psk-file", paramLabel = "FILE",
        description = "qemu keys.psk file (lines of username:hexkey) for TLS-PSK.")
    Path pskFile;

    @Option(names = "--tls-username", paramLabel = "NAME", defaultValue = "qemu",
        description = "PSK identity to present (default: ${DEFAULT-VALUE}, like qemu).")
    String pskUser;

    @Option(names = "--tls-hostname", paramLabel = "HOST",
        description = "Host name expected in the server certificate (default: the URI host; localhost for unix sockets).")
    String hostname;

    @Option(names = "--tls-no-verify", description = "X.509: do not verify the peer certificate; for serve: accept "
        + "clients without a client certificate (insecure; testing only).")
    boolean noVerify;

    /**
     * Builds the TLS configuration. {@code uriWantsTls} is true for {@code nbds://} URIs, which always require TLS.
     */
    public TlsConfig toConfig(boolean uriWantsTls) {
        boolean haveCreds = x509Dir != null || pskFile != null;
        TlsMode m = mode;
        if (m == null) {
            m = (uriWantsTls || haveCreds) ? TlsMode.REQUIRE : TlsMode.OFF;
        }
        if (uriWantsTls && m != TlsMode.REQUIRE) {
            throw new UsageException("an nbds:// URI requires TLS; drop --tls=" + mode.name().toLowerCase()
                + " or use nbd://");
        }
        if (m == TlsMode.OFF) {
            return TlsConfig.OFF;
        }
        return new TlsConfig(m, x509Dir, pskFile, pskUser, hostname, !noVerify);
    }

    /**
     * The server side ({@code serve}): {@code --tls-creds DIR} holds {@code server-cert.pem}, {@code server-key.pem}
     * and, to require client certificates, {@code ca-cert.pem} ({@code --tls-no-verify} stops requiring them);
     * {@code --tls-psk-file} accepts every identity in the file. {@code prefer} makes TLS optional for clients,
     * {@code require} (the default with credentials) refuses plaintext. {@code --tls-username} and
     * {@code --tls-hostname} are client options and are refused here.
     */
    public TlsConfig toServerConfig() {
        if (hostname != null) {
            throw new UsageException("--tls-hostname is a client option; the server presents the "
                + "certificate in --tls-creds DIR/server-cert.pem");
        }
        TlsConfig c = toConfig(false);
        return c.enabled() ? new TlsConfig(c.mode(), c.x509Dir(), c.pskFile(), null, null, c.verifyPeer()) : c;
    }
}
