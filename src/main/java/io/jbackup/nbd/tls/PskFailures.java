package io.jbackup.nbd.tls;

import org.bouncycastle.tls.AlertDescription;
import org.bouncycastle.tls.CipherSuite;
import org.bouncycastle.tls.TlsFatalAlert;
import org.bouncycastle.tls.TlsFatalAlertReceived;

import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * How a TLS-PSK failure of {@link BcTlsHandler} reads to the user: from the alert sent or received and what the
 * handshake had learned ({@link Facts}: identities offered and selected, a certificate where a key was expected),
 * a message naming the likely cause (wrong key, unknown identity, a peer set up for X.509) and the option or file to
 * fix. Also the names of alerts and cipher suites, and identities made printable for messages.
 */
final class PskFailures {
    private static final Map<Integer, String> SUITE_NAMES = suiteNames();

    private PskFailures() {
    }

    /** What the handshake had learned when it failed. */
    record Facts(boolean client, boolean handshakeDone, boolean serverSentCertificate, String clientIdentity,
                 Path keySource, List<String> offeredIdentities, String selectedIdentity, short alertRaised,
                 String alertRaisedMessage) {
    }

    /** A BouncyCastle failure as a message for the user: what went wrong and the way out. */
    static NbdTlsException describe(Throwable cause, Facts f) {
        String received = cause instanceof TlsFatalAlertReceived r ? alertName(r.getAlertDescription()) : null;
        String raised = cause instanceof TlsFatalAlert a ? alertName(a.getAlertDescription())
            : f.alertRaised() >= 0 ? alertName(f.alertRaised()) : null;
        String detail = cause.getMessage() != null ? cause.getMessage()
            : f.alertRaisedMessage() != null ? f.alertRaisedMessage() : cause.getClass().getSimpleName();
        String file = f.keySource() == null ? "the PSK key file" : f.keySource().toString();
        if (!f.handshakeDone()) {
            if (f.client()) {
                if (f.serverSentCertificate()) {
                    return new NbdTlsException("TLS-PSK handshake failed: the server presented an X.509 certificate "
                        + "instead of accepting the pre-shared key for identity '" + printable(f.clientIdentity())
                        + "'; it is set up for X.509 (use --tls-creds DIR instead of --tls-psk-file) or does not know this "
                        + "identity", cause);
                }
                if (received != null) {
                    return new NbdTlsException("TLS-PSK handshake rejected by the server (alert " + received
                        + "): the server does not accept identity '" + printable(f.clientIdentity())
                        + "' with this key; check --tls-username and --tls-psk-file (" + file + ")", cause);
                }
                if (raised != null && isKeyMismatchAlert(raised)) {
                    return new NbdTlsException("TLS-PSK handshake failed (alert " + raised + "): the server's key "
                        + "for identity '" + printable(f.clientIdentity()) + "' differs from the one in " + file
                        + "; check --tls-psk-file", cause);
                }
                return new NbdTlsException("TLS-PSK handshake failed"
                    + (raised != null ? " (alert " + raised + ")" : "") + ": " + detail, cause);
            }
            // server
            if (!f.offeredIdentities().isEmpty() && f.selectedIdentity() == null) {
                return new NbdTlsException("TLS-PSK client offered identity '" + printable(f.offeredIdentities().get(0))
                    + "', which is not in " + file + "; add it there (psktool -u NAME -p " + file
                    + ") or give the client the right username", cause);
            }
            if (f.selectedIdentity() != null && (received != null || (raised != null && isKeyMismatchAlert(raised)))) {
                return new NbdTlsException("TLS-PSK handshake with the client failed (alert "
                    + (received != null ? received + " from the client" : raised)
                    + "): the client's key for identity '" + printable(f.selectedIdentity()) + "' does not match "
                    + file, cause);
            }
            if (f.offeredIdentities().isEmpty() && f.selectedIdentity() == null) {
                return new NbdTlsException("TLS-PSK handshake failed"
                    + (received != null ? " (alert " + received + " from the client)"
                        : raised != null ? " (alert " + raised + ")" : "")
                    + ": the client offered no pre-shared key (is it configured for X.509 certificates? this server "
                    + "uses TLS-PSK keys from " + file + "): " + detail, cause);
            }
            return new NbdTlsException("TLS-PSK handshake failed"
                + (received != null ? " (alert " + received + " from the client)"
                    : raised != null ? " (alert " + raised + ")" : "") + ": " + detail, cause);
        }
        if (received != null) {
            return new NbdTlsException("TLS connection failed: the " + (f.client() ? "server" : "client")
                + " sent alert " + received, cause);
        }
        return new NbdTlsException("TLS connection failed" + (raised != null ? " (alert " + raised + ")" : "")
            + ": " + detail, cause);
    }

    /** Why a handshake failed when the peer closed the connection during it, from what it had learned. */
    static String closedDuringHandshake(Facts f) {
        if (f.client()) {
            // qemu-nbd (GnuTLS) drops the connection without an alert when the PSK binder or Finished fails
            return "TLS-PSK handshake rejected by the server (it closed the connection): the server does not accept "
                + "identity '" + printable(f.clientIdentity()) + "' with this key, or is not set up for "
                + "TLS-PSK; check --tls-username and --tls-psk-file ("
                + (f.keySource() == null ? "the PSK key file" : f.keySource()) + ")";
        }
        return "connection closed by the client during the TLS handshake"
            + (f.selectedIdentity() != null ? " (identity '" + printable(f.selectedIdentity()) + "')" : "")
            + "; it may have a different key, or expect X.509 certificates instead of TLS-PSK";
    }

    private static boolean isKeyMismatchAlert(String alert) {
        return alert.equals("decrypt_error") || alert.equals("bad_record_mac") || alert.equals("illegal_parameter")
            || alert.equals("handshake_failure") || alert.equals("unknown_psk_identity");
    }

    static String alertName(short description) {
        String n = AlertDescription.getName(description);
        return n == null ? "alert(" + description + ")" : n;
    }

    static String printable(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder(Math.min(s.length(), 64));
        for (int i = 0; i < s.length() && b.length() < 64; i++) {
            char c = s.charAt(i);
            b.append(c < 0x20 || c == 0x7f ? '?' : c);
        }
        if (s.length() > 64) {
            b.append("...");
        }
        return b.toString();
    }

    /** The IANA name of a cipher suite, or its number. */
    static String suiteName(int suite) {
        return SUITE_NAMES.getOrDefault(suite, String.format("0x%04X", suite));
    }

    private static Map<Integer, String> suiteNames() {
        Map<Integer, String> m = new HashMap<>();
        for (Field f : CipherSuite.class.getFields()) {
            if (f.getType() == int.class && Modifier.isStatic(f.getModifiers()) && f.getName().startsWith("TLS_")) {
                try {
                    m.putIfAbsent(f.getInt(null), f.getName());
                } catch (IllegalAccessException e) {
                    // public constant: cannot happen
                }
            }
        }
        return m;
    }
}
