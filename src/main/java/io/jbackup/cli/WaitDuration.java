package io.jbackup.cli;

import io.jbackup.error.UsageException;
import io.jbackup.store.DiskLock;
import picocli.CommandLine.ITypeConverter;

import java.time.Duration;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The value of {@code --wait-lock[=DURATION]}: {@code 30s}, {@code 10m}, {@code 1h}, {@code 2d}, a plain number of
 * seconds, or (the option without a value) {@value #UNLIMITED}: wait as long as it takes.
 */
final class WaitDuration implements ITypeConverter<Duration> {
    /** What picocli passes for {@code --wait-lock} given without a value. */
    static final String UNLIMITED = "unlimited";
    private static final Pattern FORM = Pattern.compile("([0-9]{1,9})([smhd]?)");

    @Override
    public Duration convert(String value) {
        return parse(value);
    }

    static Duration parse(String value) {
        String v = value.trim().toLowerCase(Locale.ROOT);
        if (v.equals(UNLIMITED)) {
            return DiskLock.NO_LIMIT;
        }
        Matcher m = FORM.matcher(v);
        if (!m.matches()) {
            throw new UsageException("'" + value + "' is not a duration (expected e.g. 30s, 10m, 1h, 2d, "
                + "a number of seconds, or no value to wait without limit)");
        }
        long n = Long.parseLong(m.group(1));
        Duration d = switch (m.group(2)) {
            case "m" -> Duration.ofMinutes(n);
            case "h" -> Duration.ofHours(n);
            case "d" -> Duration.ofDays(n);
            default -> Duration.ofSeconds(n);
        };
        return d.compareTo(DiskLock.NO_LIMIT) > 0 ? DiskLock.NO_LIMIT : d;
    }
}
