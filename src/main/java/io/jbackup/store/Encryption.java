package io.jbackup.store;

import io.jbackup.error.UsageException;

import java.util.Locale;

/** How chunk records are protected in a repository, chosen once at {@code jbackup init}. */
public enum Encryption {
    /** Chunks are compressed only; the chunk id is the SHA-256 of the plaintext. */
    NONE("none"),
    /**
     * Every chunk record is sealed with AES-256-GCM under a random 96-bit nonce; the chunk id is an HMAC-SHA256
     * keyed from the repository key, so equal data still deduplicates but ids reveal nothing about the content.
     */
    AES_256_GCM("aes-256-gcm");

    private final String text;

    Encryption(String text) {
        this.text = text;
    }

    /** The name used on the command line and in {@code config.json}. */
    public String text() {
        return text;
    }

    /** Parses {@code none} or {@code aes-256-gcm} (case-insensitive; the enum constant name is accepted too). */
    public static Encryption parse(String s) {
        if (s != null) {
            String t = s.trim().toLowerCase(Locale.ROOT);
            for (Encryption e : values()) {
                if (e.text.equals(t) || e.name().toLowerCase(Locale.ROOT).equals(t)) {
                    return e;
                }
            }
        }
        throw new UsageException("unknown encryption '" + s + "' (expected: none or aes-256-gcm)");
    }

    @Override
    public String toString() {
        return text;
    }
}
