package io.jbackup.cli;

import io.jbackup.text.Human;
import io.jbackup.error.UsageException;
import picocli.CommandLine.ITypeConverter;

import java.util.Locale;

/** Byte sizes on the command line ({@code 64K}, {@code 1M}, {@code 1MiB}, {@code 1048576}) and in output. */
final class Sizes implements ITypeConverter<Long> {
    @Override
    public Long convert(String value) {
        return parse(value);
    }

    static long parse(String value) {
        String s = value.trim().toUpperCase(Locale.ROOT);
        if (s.endsWith("IB")) {
            s = s.substring(0, s.length() - 2);
        } else if (s.endsWith("B")) {
            s = s.substring(0, s.length() - 1);
        }
        long mult = 1;
        if (!s.isEmpty()) {
            switch (s.charAt(s.length() - 1)) {
                case 'K' -> mult = 1L << 10;
                case 'M' -> mult = 1L << 20;
                case 'G' -> mult = 1L << 30;
                case 'T' -> mult = 1L << 40;
                default -> mult = 1;
            }
            if (mult != 1) {
                s = s.substring(0, s.length() - 1);
            }
        }
        try {
            long n = Long.parseLong(s.trim());
            if (n < 0 || n > Long.MAX_VALUE / mult) {
                throw new NumberFormatException();
            }
            return n * mult;
        } catch (NumberFormatException e) {
            throw new UsageException("'" + value + "' is not a size (examples: 64K, 1M, 4MiB, 1048576)");
        }
    }

    /** {@code 1.25 GiB}-style text: {@link Human#bytes(long)}. */
    static String format(long bytes) {
        return Human.bytes(bytes);
    }
}
