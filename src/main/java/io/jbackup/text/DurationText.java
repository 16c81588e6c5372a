package io.jbackup.text;

import java.time.Duration;
import java.util.Locale;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Durations as users write them, on the command line and in job files: {@code 30s}, {@code 10m}, {@code 1h},
 * {@code 2d}, or a plain number of seconds (at most nine digits).
 */
public final class DurationText {
    private static final Pattern FORM = Pattern.compile("([0-9]{1,9})([smhd]?)");

    private DurationText() {
    }

    /** The duration {@code value} writes, or empty when it is not one. */
    public static Optional<Duration> parse(String value) {
        Matcher m = FORM.matcher(value.trim().toLowerCase(Locale.ROOT));
        if (!m.matches()) {
            return Optional.empty();
        }
        long n = Long.parseLong(m.group(1));
        return Optional.of(switch (m.group(2)) {
            case "m" -> Duration.ofMinutes(n);
            case "h" -> Duration.ofHours(n);
            case "d" -> Duration.ofDays(n);
            default -> Duration.ofSeconds(n);
        });
    }
}
