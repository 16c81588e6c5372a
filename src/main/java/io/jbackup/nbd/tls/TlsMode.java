package io.jbackup.nbd.tls;

/** Whether a connection negotiates TLS with {@code NBD_OPT_STARTTLS}. */
public enum TlsMode {
    /** Never send STARTTLS. */
    OFF,
    /** Send STARTTLS; continue in plaintext only if the server answers that it does not support TLS. */
    PREFER,
    /** Send STARTTLS and fail if it is refused; never fall back to plaintext. */
    REQUIRE
}
