package io.jbackup.store;

/**
 * Computes chunk ids the way the repository does (SHA-256, or HMAC-SHA256 under its chunk-id key when encrypted), for
 * a caller that hashes a chunk while its bytes are still in the CPU's cache (a backup hashes each piece of a chunk
 * right after copying it off the socket) and then hands the id to
 * {@link BackupWriter#putChunk(long, byte[], int, byte[])}. One hasher serves one chunk at a time; not thread-safe.
 */
public interface ChunkHasher {
    /** Feeds {@code b[off, off + len)}, the next bytes of the chunk. */
    void update(byte[] b, int off, int len);

    /** The id of every byte fed since the last call; the hasher is then empty again. */
    byte[] finish();

    /** Plain SHA-256: the chunk ids of an unencrypted repository. */
    static ChunkHasher sha256() {
        java.security.MessageDigest md;
        try {
            md = java.security.MessageDigest.getInstance("SHA-256");
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 not available", e);
        }
        return of(md::update, md::digest);
    }

    /** HMAC-SHA256 under {@code idKey}: the chunk ids of an encrypted repository. */
    static ChunkHasher hmacSha256(java.security.Key idKey) {
        javax.crypto.Mac mac;
        try {
            mac = javax.crypto.Mac.getInstance("HmacSHA256");
            mac.init(idKey);
        } catch (java.security.GeneralSecurityException e) {
            throw new IllegalStateException("HMAC-SHA256 not available", e);
        }
        return of(mac::update, mac::doFinal);
    }

    /** The input half of a hash: what {@link #update} calls. */
    @FunctionalInterface
    interface Input {
        void update(byte[] b, int off, int len);
    }

    private static ChunkHasher of(Input input, java.util.function.Supplier<byte[]> finish) {
        return new ChunkHasher() {
            @Override
            public void update(byte[] b, int off, int len) {
                input.update(b, off, len);
            }

            @Override
            public byte[] finish() {
                return finish.get();
            }
        };
    }
}
