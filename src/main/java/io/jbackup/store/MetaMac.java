package io.jbackup.store;

import javax.crypto.Mac;
import java.nio.ByteBuffer;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;

/**
 * The 32-byte integrity code of repository metadata (pack footers, index files): SHA-256 in a plain repository,
 * HMAC-SHA256 under the metadata subkey in an encrypted one, so there nobody without the key can forge or alter
 * an index or a footer undetected. One instance per computation.
 */
final class MetaMac {
    private final MessageDigest digest;
    private final Mac mac;

    private MetaMac(MessageDigest digest, Mac mac) {
        this.digest = digest;
        this.mac = mac;
    }

    static MetaMac create(RepositoryKeys keys) {
        try {
            if (keys == null) {
                return new MetaMac(MessageDigest.getInstance("SHA-256"), null);
            }
            Mac m = Mac.getInstance("HmacSHA256");
            m.init(keys.metadataKey);
            return new MetaMac(null, m);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("SHA-256/HMAC-SHA256 not available", e);
        }
    }

    /** Whether this is a keyed MAC (encrypted repository). */
    boolean keyed() {
        return mac != null;
    }

    MetaMac update(byte[] b, int off, int len) {
        if (mac != null) {
            mac.update(b, off, len);
        } else {
            digest.update(b, off, len);
        }
        return this;
    }

    MetaMac update(byte[] b) {
        return update(b, 0, b.length);
    }

    MetaMac update(ByteBuffer b) {
        if (mac != null) {
            mac.update(b);
        } else {
            digest.update(b);
        }
        return this;
    }

    byte[] finish() {
        return mac != null ? mac.doFinal() : digest.digest();
    }
}
