package io.jbackup.nbd.tls;

import org.bouncycastle.tls.CipherSuite;
import org.bouncycastle.tls.ProtocolVersion;

/** Which TLS versions {@link BcTlsHandler} offers or accepts, and the TLS-PSK cipher suites of each. */
public enum TlsVersions {
    /** TLS 1.3 preferred, TLS 1.2 accepted (the default). */
    TLS_1_3_AND_1_2,
    /** TLS 1.3 only. */
    TLS_1_3,
    /** TLS 1.2 only. */
    TLS_1_2;

    ProtocolVersion[] protocolVersions() {
        return switch (this) {
            case TLS_1_3_AND_1_2 -> ProtocolVersion.TLSv13.downTo(ProtocolVersion.TLSv12);
            case TLS_1_3 -> ProtocolVersion.TLSv13.only();
            case TLS_1_2 -> ProtocolVersion.TLSv12.only();
        };
    }

    boolean tls13() {
        return this != TLS_1_2;
    }

    boolean tls12() {
        return this != TLS_1_3;
    }

    int[] cipherSuites() {
        int[] a = tls13() ? TLS13_SUITES : new int[0];
        int[] b = tls12() ? TLS12_SUITES : new int[0];
        int[] all = new int[a.length + b.length];
        System.arraycopy(a, 0, all, 0, a.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    private static final int[] TLS13_SUITES = {
        CipherSuite.TLS_AES_128_GCM_SHA256,
        CipherSuite.TLS_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_AES_128_CCM_SHA256,
    };

    private static final int[] TLS12_SUITES = {
        CipherSuite.TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_DHE_PSK_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_DHE_PSK_WITH_AES_256_GCM_SHA384,
        CipherSuite.TLS_DHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_PSK_WITH_AES_128_GCM_SHA256,
        CipherSuite.TLS_PSK_WITH_AES_256_GCM_SHA384,
        CipherSuite.TLS_PSK_WITH_CHACHA20_POLY1305_SHA256,
        CipherSuite.TLS_PSK_WITH_AES_128_CCM,
        CipherSuite.TLS_DHE_PSK_WITH_AES_128_CCM,
    };
}
