package io.jbackup.cli;

import io.jbackup.error.UsageException;
import io.jbackup.store.DiskLock;
import io.jbackup.text.DurationText;
import picocli.CommandLine.ITypeConverter;

import java.time.Duration;
import java.util.Locale;

/**
 * The value of {@code --wait-lock[=DURATION]}: {@code 30s}, {@code 10m}, {@code 1h}, {@code 2d}, a plain number of
 * seconds, or (the option without a value) {@value #UNLIMITED}: wait as long as it takes.
 */
final class WaitDuration implements ITypeConverter<Duration> {
    /** What picocli passes for {@code --wait-lock} given without a value. */
    static final String UNLIMITED = "unlimited";

    @Override
    public Duration convert(String value) {
        return parse(value);
    }

    static Duration parse(String value) {
        if (value.trim().toLowerCase(Locale.ROOT).equals(UNLIMITED)) {
            return DiskLock.NO_LIMIT;
        }
        Duration d = DurationText.parse(value).orElseThrow(() -> new UsageException("'" + value + "' is not a "
            + "duration (expected e.g. 30s, 10m, 1h, 2d, a number of seconds, or no value to wait without limit)"));
        return d.compareTo(DiskLock.NO_LIMIT) > 0 ? DiskLock.NO_LIMIT : d;
    }
}
