package io.jbackup.text;

import java.math.BigDecimal;
import java.math.RoundingMode;

/**
 * The human forms of values printed to users: byte sizes ({@code 1.25 GiB}) and counts with the noun in the right
 * number ({@code 1 backup}, {@code 2 backups}). Every size and count in jbackup's output goes through here, so they
 * read the same in every command.
 */
public final class Human {
    private static final String[] UNITS = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};

    private Human() {
    }

    /**
     * {@code 1342177280 -> "1.25 GiB"}: binary units with up to two decimals (trailing zeros dropped, so
     * {@code 64 MiB}, {@code 1.5 KiB}); below 1 KiB exact bytes ({@code 512 B}). A value that rounds to 1024 of a
     * unit is printed as 1 of the next one.
     */
    public static String bytes(long n) {
        if (n < 1024) {
            return n + " B";
        }
        BigDecimal v = BigDecimal.valueOf(n);
        BigDecimal k = BigDecimal.valueOf(1024);
        int u = 0;
        while (v.compareTo(k) >= 0 && u < UNITS.length - 1) {
            v = v.divide(k);
            u++;
        }
        BigDecimal r = v.setScale(2, RoundingMode.HALF_UP);
        if (r.compareTo(k) >= 0 && u < UNITS.length - 1) {
            r = r.divide(k).setScale(2, RoundingMode.HALF_UP);
            u++;
        }
        return r.stripTrailingZeros().toPlainString() + " " + UNITS[u];
    }

    /** {@code "1.25 GiB (1342177280 bytes)"}: the short form and the exact count; below 1 KiB just the bytes. */
    public static String exact(long n) {
        return n < 1024 ? count(n, "byte") : bytes(n) + " (" + n + " bytes)";
    }

    /** {@code "30 s"}, {@code "1500 ms"}, {@code "-1 s"}: a duration as a user reads it (not {@code PT30S}). */
    public static String duration(java.time.Duration d) {
        if (d == null) {
            return "none";
        }
        return d.toMillis() % 1000 == 0 ? d.toSeconds() + " s" : d.toMillis() + " ms";
    }

    /** {@code count(1, "backup") -> "1 backup"}, {@code count(2, "backup") -> "2 backups"}. */
    public static String count(long n, String singular) {
        return count(n, singular, singular + "s");
    }

    /** {@code count(n, "index", "indexes")}: for nouns whose plural is not {@code singular + "s"}. */
    public static String count(long n, String singular, String plural) {
        return n + " " + (n == 1 ? singular : plural);
    }
}
