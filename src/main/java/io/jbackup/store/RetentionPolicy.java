package io.jbackup.store;

import io.jbackup.error.UsageException;

import java.time.Duration;
import java.time.Period;
import java.time.ZoneId;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Which backups of a disk to keep, validated up front. Counts of 0 mean "rule not used". At least one rule must be
 * given: a policy that keeps nothing is refused rather than deleting every backup.
 *
 * @param keepLast    the N newest backups
 * @param keepHourly  the newest backup of each of the N newest hours that have backups
 * @param keepDaily   ... of each of the N newest days
 * @param keepWeekly  ... of each of the N newest ISO weeks (Monday to Sunday; 2026-12-31 is in 2026-W53)
 * @param keepMonthly ... of each of the N newest months
 * @param keepYearly  ... of each of the N newest years
 * @param keepWithin  every backup created within this span before the newest backup of the disk (like restic:
 *                    relative to the newest backup, so a disk whose backups stopped keeps its last ones); null = unused
 * @param zone        the time zone in which hours, days, weeks, months and years are counted
 */
public record RetentionPolicy(int keepLast, int keepHourly, int keepDaily, int keepWeekly, int keepMonthly,
                              int keepYearly, Span keepWithin, ZoneId zone) {
    public static final int MAX_COUNT = 1_000_000;

    public RetentionPolicy {
        check(keepLast, "keep-last");
        check(keepHourly, "keep-hourly");
        check(keepDaily, "keep-daily");
        check(keepWeekly, "keep-weekly");
        check(keepMonthly, "keep-monthly");
        check(keepYearly, "keep-yearly");
        zone = zone == null ? ZoneId.systemDefault() : zone;
        if (keepLast + keepHourly + keepDaily + keepWeekly + keepMonthly + keepYearly == 0 && keepWithin == null) {
            throw new UsageException("no retention rule given, so every backup would be removed; give at "
                + "least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, "
                + "--keep-yearly, --keep-within");
        }
    }

    private static void check(int n, String name) {
        if (n < 0 || n > MAX_COUNT) {
            throw new UsageException("--" + name + " " + n + " (expected: 0 .. " + MAX_COUNT
                + "; 0 means the rule is not used)");
        }
    }

    /** A policy with only {@code keep-last N} (tests, defaults). */
    public static RetentionPolicy keepLast(int n) {
        return new RetentionPolicy(n, 0, 0, 0, 0, 0, null, null);
    }

    /** The rules in use, as a user would type them. */
    public String describe() {
        List<String> l = new ArrayList<>();
        add(l, "last", keepLast);
        add(l, "hourly", keepHourly);
        add(l, "daily", keepDaily);
        add(l, "weekly", keepWeekly);
        add(l, "monthly", keepMonthly);
        add(l, "yearly", keepYearly);
        if (keepWithin != null) {
            l.add("keep-within " + keepWithin);
        }
        return String.join(", ", l) + " (zone " + zone + ")";
    }

    private static void add(List<String> l, String name, int n) {
        if (n > 0) {
            l.add("keep-" + name + " " + n);
        }
    }

    /**
     * A span of calendar time: years, months and days (a calendar period) plus hours (a duration), as in
     * {@code 1y6m}, {@code 14d}, {@code 2w}, {@code 36h}, or ISO-8601 ({@code P14D}, {@code PT36H}).
     */
    public record Span(Period period, Duration duration, String text) {
        private static final Pattern SHORT = Pattern.compile("(?:(\\d+)y)?(?:(\\d+)m)?(?:(\\d+)w)?(?:(\\d+)d)?(?:(\\d+)h)?");

        public Span {
            if (period.isNegative() || duration.isNegative() || period.isZero() && duration.isZero()) {
                throw new UsageException("keep-within span '" + text + "' must be positive");
            }
        }

        /** Parses {@code 1y2m3w4d5h} (any subset, in this order) or an ISO-8601 period/duration. */
        public static Span parse(String s) {
            String t = s == null ? "" : s.trim().toLowerCase(Locale.ROOT);
            Matcher m = SHORT.matcher(t);
            if (!t.isEmpty() && m.matches()) {
                try {
                    Period p = Period.of(num(m.group(1)), num(m.group(2)), Math.addExact(num(m.group(3)) * 7,
                        num(m.group(4))));
                    return new Span(p, Duration.ofHours(num(m.group(5))), s.trim());
                } catch (ArithmeticException | NumberFormatException e) {
                    throw new UsageException("keep-within span '" + s + "' is too large");
                }
            }
            String iso = t.toUpperCase(Locale.ROOT);
            int tpos = iso.indexOf('T');
            try {
                if (iso.startsWith("P") && tpos < 0) {
                    return new Span(Period.parse(iso), Duration.ZERO, s.trim());
                }
                if (iso.startsWith("P")) {
                    Period p = tpos == 1 ? Period.ZERO : Period.parse(iso.substring(0, tpos));
                    return new Span(p, Duration.parse("PT" + iso.substring(tpos + 1)), s.trim());
                }
            } catch (RuntimeException e) {
                // fall through to the message
            }
            throw new UsageException("cannot read keep-within span '" + s + "'; write e.g. 36h, 14d, 2w, "
                + "6m (months), 1y, 1y6m, or ISO-8601 P14D");
        }

        private static int num(String g) {
            return g == null ? 0 : Integer.parseInt(g);
        }

        @Override
        public String toString() {
            return text;
        }
    }
}
