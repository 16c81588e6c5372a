package io.jbackup.store;

import io.jbackup.model.BackupInfo;

import java.time.Instant;
import java.time.ZonedDateTime;
import java.time.temporal.ChronoUnit;
import java.time.temporal.IsoFields;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Applies a {@link RetentionPolicy} to the backups of one disk, with the semantics of restic's and borg's
 * {@code forget}/{@code prune}: backups are walked newest first; each bucket rule (hourly, daily, weekly, monthly,
 * yearly) keeps a backup when its bucket differs from the previous backup's bucket and the rule still has room,
 * so the <em>newest</em> backup of each bucket is kept. {@code keep-last} keeps the N newest and
 * {@code keep-within} everything created within the span before the newest backup.
 *
 * <p>Buckets are counted in the policy's time zone: days, months and years by local date (a 23- or 25-hour DST
 * day is one day), weeks by ISO week-based year and week (2027-01-01 is in 2026-W53), hours by the real hour (the
 * repeated hour when clocks go back is two hours).
 *
 * <p>Protected backups are always kept, and fill buckets like any other. Bad backups (marked by verify) neither
 * fill buckets nor are removed: they are reported as kept so a person decides. Incomplete backups are not
 * considered at all.
 */
public final class Retention {
    private Retention() {
    }

    /** What happens to one backup, and the rules that kept it (empty when removed). */
    public record Decision(BackupInfo backup, boolean keep, List<String> reasons) {
        public Decision {
            reasons = List.copyOf(reasons);
        }
    }

    /**
     * Decides for the backups of one disk (any order in, newest first out). {@code protectedIds} are kept
     * whatever the rules say.
     */
    public static List<Decision> apply(RetentionPolicy p, List<BackupInfo> backups, Set<String> protectedIds) {
        List<BackupInfo> sorted = new ArrayList<>();
        for (BackupInfo b : backups) {
            if (!BackupInfo.INCOMPLETE.equals(b.state())) {
                sorted.add(b);
            }
        }
        sorted.sort(Comparator.comparing(BackupInfo::created).thenComparing(BackupInfo::id).reversed());
        Map<String, List<String>> reasons = new LinkedHashMap<>();
        for (BackupInfo b : sorted) {
            reasons.put(b.id(), new ArrayList<>());
        }
        Instant newest = null;
        for (BackupInfo b : sorted) {
            if (!BackupInfo.BAD.equals(b.state())) {
                newest = b.created();
                break;
            }
        }
        Instant withinFrom = null;
        if (p.keepWithin() != null && newest != null) {
            withinFrom = newest.atZone(p.zone()).minus(p.keepWithin().period()).toInstant()
                .minus(p.keepWithin().duration());
        }
        Bucket[] rules = {
            new Bucket("hourly", p.keepHourly()), new Bucket("daily", p.keepDaily()),
            new Bucket("weekly", p.keepWeekly()), new Bucket("monthly", p.keepMonthly()),
            new Bucket("yearly", p.keepYearly()),
        };
        int last = 0;
        for (BackupInfo b : sorted) {
            List<String> r = reasons.get(b.id());
            if (protectedIds.contains(b.id())) {
                r.add("protected");
            }
            if (BackupInfo.BAD.equals(b.state())) {
                r.add("bad (not counted by the rules; remove it by hand once investigated)");
                continue;
            }
            if (last < p.keepLast()) {
                last++;
                r.add("last " + last);
            }
            if (withinFrom != null && !b.created().isBefore(withinFrom)) {
                r.add("within " + p.keepWithin());
            }
            ZonedDateTime t = b.created().atZone(p.zone());
            for (Bucket rule : rules) {
                String key = rule.key(t);
                if (rule.used < rule.max && !key.equals(rule.previous)) {
                    rule.used++;
                    r.add(rule.name + " " + key);
                }
                rule.previous = key;
            }
        }
        List<Decision> out = new ArrayList<>();
        for (BackupInfo b : sorted) {
            List<String> r = reasons.get(b.id());
            out.add(new Decision(b, !r.isEmpty(), r));
        }
        return out;
    }

    /** One bucket rule while walking: its count, and the bucket of the previous backup. */
    private static final class Bucket {
        final String name;
        final int max;
        int used;
        String previous;

        Bucket(String name, int max) {
            this.name = name;
            this.max = max;
        }

        String key(ZonedDateTime t) {
            return switch (name) {
                case "hourly" -> t.truncatedTo(ChronoUnit.HOURS).toOffsetDateTime().toString();
                case "daily" -> t.toLocalDate().toString();
                case "weekly" -> String.format("%d-W%02d", t.get(IsoFields.WEEK_BASED_YEAR),
                    t.get(IsoFields.WEEK_OF_WEEK_BASED_YEAR));
                case "monthly" -> String.format("%d-%02d", t.getYear(), t.getMonthValue());
                case "yearly" -> Integer.toString(t.getYear());
                default -> throw new IllegalStateException(Objects.requireNonNull(name));
            };
        }
    }
}
