package io.jbackup.cli;

import io.jbackup.error.UsageException;
import picocli.CommandLine.ITypeConverter;

import java.util.Locale;

/** The value of {@code --limit-upload}: bytes per second as a {@link Sizes} size ({@code 20M}, {@code 1G}), "/s" optional. */
final class UploadRate implements ITypeConverter<Long> {
    @Override
    public Long convert(String value) {
        String v = value.trim().toLowerCase(Locale.ROOT);
        if (v.endsWith("/s")) {
            v = v.substring(0, v.length() - 2);
        }
        long rate = Sizes.parse(v);
        if (rate < 1024) {
            throw new UsageException("--limit-upload " + value + " is below 1K per second: give a rate such as 500K, "
                + "20M or 1G (bytes per second)");
        }
        return rate;
    }
}
