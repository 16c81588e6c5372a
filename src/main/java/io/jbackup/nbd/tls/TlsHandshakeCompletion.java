package io.jbackup.nbd.tls;

/**
 * User event fired down the pipeline (via {@code fireUserEventTriggered}) exactly once by every handler
 * {@link NbdTls} creates, when the TLS handshake succeeded or failed. Both the TLS-PSK handler
 * ({@link BcTlsHandler}) and the X.509 handler (netty {@code SslHandler}) report with this one type.
 *
 * <p>On failure {@code cause} is an {@link NbdTlsException} with a message for the user, and the handler
 * closes the channel; the same exception is also passed to {@code exceptionCaught}, except when the
 * connection was simply closed during the handshake.
 *
 * @param success     whether the handshake completed
 * @param cause       why it failed, or null on success
 * @param protocol    negotiated protocol in JSSE spelling ({@code "TLSv1.3"}, {@code "TLSv1.2"}), or null on failure
 * @param cipherSuite negotiated cipher suite in IANA spelling (e.g. {@code "TLS_AES_128_GCM_SHA256"}), or null on failure
 */
public record TlsHandshakeCompletion(boolean success, Throwable cause, String protocol, String cipherSuite) {

    public TlsHandshakeCompletion {
        if (success == (cause != null)) {
            throw new IllegalArgumentException("success=" + success + " but cause=" + cause);
        }
    }

    /** A successful handshake. */
    public static TlsHandshakeCompletion succeeded(String protocol, String cipherSuite) {
        return new TlsHandshakeCompletion(true, null, protocol, cipherSuite);
    }

    /** A failed handshake. */
    public static TlsHandshakeCompletion failed(Throwable cause) {
        return new TlsHandshakeCompletion(false, cause, null, null);
    }
}
