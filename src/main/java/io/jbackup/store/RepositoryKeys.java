package io.jbackup.store;

import org.bouncycastle.crypto.digests.SHA256Digest;
import org.bouncycastle.crypto.generators.HKDFBytesGenerator;
import org.bouncycastle.crypto.params.HKDFParameters;

import javax.crypto.spec.SecretKeySpec;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The keys of an encrypted repository: the 32-byte random master key (sealed in the key file, see {@link KeyFile})
 * and three subkeys derived from it with HKDF-SHA256 (salt: the repository id; info strings below), so no key
 * serves two purposes:
 * <ul>
 *   <li>{@code "jbackup v1 chunk encryption"}: the AES-256-GCM key of chunk records;</li>
 *   <li>{@code "jbackup v1 chunk id"}: the HMAC-SHA256 key of chunk ids;</li>
 *   <li>{@code "jbackup v1 metadata mac"}: the HMAC-SHA256 key authenticating pack footers and index files.</li>
 * </ul>
 */
final class RepositoryKeys {
    static final int KEY_LENGTH = 32;

    final SecretKeySpec chunkKey;
    final SecretKeySpec idKey;
    final SecretKeySpec metadataKey;

    private RepositoryKeys(SecretKeySpec chunkKey, SecretKeySpec idKey, SecretKeySpec metadataKey) {
        this.chunkKey = chunkKey;
        this.idKey = idKey;
        this.metadataKey = metadataKey;
    }

    static RepositoryKeys derive(byte[] masterKey, String repositoryId) {
        if (masterKey.length != KEY_LENGTH) {
            throw new IllegalArgumentException("master key is " + masterKey.length + " bytes (expected: 32)");
        }
        byte[] salt = repositoryId.getBytes(StandardCharsets.UTF_8);
        byte[] enc = hkdf(masterKey, salt, "jbackup v1 chunk encryption");
        byte[] id = hkdf(masterKey, salt, "jbackup v1 chunk id");
        byte[] meta = hkdf(masterKey, salt, "jbackup v1 metadata mac");
        try {
            return new RepositoryKeys(new SecretKeySpec(enc, "AES"), new SecretKeySpec(id, "HmacSHA256"),
                new SecretKeySpec(meta, "HmacSHA256"));
        } finally {
            Arrays.fill(enc, (byte) 0);
            Arrays.fill(id, (byte) 0);
            Arrays.fill(meta, (byte) 0);
        }
    }

    private static byte[] hkdf(byte[] ikm, byte[] salt, String info) {
        HKDFBytesGenerator g = new HKDFBytesGenerator(new SHA256Digest());
        g.init(new HKDFParameters(ikm, salt, info.getBytes(StandardCharsets.US_ASCII)));
        byte[] out = new byte[KEY_LENGTH];
        g.generateBytes(out, 0, out.length);
        return out;
    }
}
