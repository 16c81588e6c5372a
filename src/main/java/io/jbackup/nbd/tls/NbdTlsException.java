package io.jbackup.nbd.tls;

import java.io.IOException;

/**
 * TLS for an NBD connection failed or cannot be set up: credentials missing or malformed, the handshake
 * was rejected (wrong PSK key or identity, untrusted or mismatching certificate), or the TLS record layer
 * failed afterwards. The message says what went wrong and which option or file to check.
 *
 * <p>Raised by {@link NbdTls} when loading credentials, and delivered by the TLS handlers as
 * {@code exceptionCaught} and as the cause of a failed {@link TlsHandshakeCompletion}.
 */
public class NbdTlsException extends IOException {
    private static final long serialVersionUID = 1L;

    public NbdTlsException(String message) {
        super(message);
    }

    public NbdTlsException(String message, Throwable cause) {
        super(message, cause);
    }
}
