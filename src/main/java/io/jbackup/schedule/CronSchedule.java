package io.jbackup.schedule;

import com.cronutils.descriptor.CronDescriptor;
import com.cronutils.model.Cron;
import com.cronutils.model.CronType;
import com.cronutils.model.definition.CronDefinitionBuilder;
import com.cronutils.model.time.ExecutionTime;
import com.cronutils.parser.CronParser;
import io.jbackup.error.UsageException;

import java.time.ZonedDateTime;
import java.util.Locale;
import java.util.Optional;

/**
 * A cron expression of a job file (cron-utils). Five fields are classic crontab syntax
 * ({@code minute hour day-of-month month day-of-week}, e.g. {@code 30 2 * * *}); six fields put seconds first
 * (Spring syntax, e.g. {@code 0 30 2 * * *}), which tests and short cadences use. Times are evaluated in the job
 * file's zone; a time that a DST change skips or repeats fires as cron-utils decides (once).
 */
public final class CronSchedule {
    private static final CronParser UNIX = new CronParser(CronDefinitionBuilder.instanceDefinitionFor(CronType.UNIX));
    private static final CronParser SECONDS =
        new CronParser(CronDefinitionBuilder.instanceDefinitionFor(CronType.SPRING));

    private final String text;
    private final Cron cron;
    private final ExecutionTime times;

    private CronSchedule(String text, Cron cron) {
        this.text = text;
        this.cron = cron;
        this.times = ExecutionTime.forCron(cron);
    }

    /** Parses and validates; the message names the expression and the expected forms. */
    public static CronSchedule parse(String text) {
        if (text == null || text.isBlank()) {
            throw new UsageException("empty cron expression");
        }
        String t = text.trim().replaceAll("\\s+", " ");
        int fields = t.split(" ").length;
        if (fields != 5 && fields != 6) {
            throw new UsageException("cron expression '" + text + "' has " + fields + " fields; write 5 "
                + "(minute hour day-of-month month day-of-week, e.g. '30 2 * * *') or 6 with seconds first");
        }
        try {
            Cron c = (fields == 5 ? UNIX : SECONDS).parse(t);
            c.validate();
            return new CronSchedule(t, c);
        } catch (IllegalArgumentException e) {
            throw new UsageException("cron expression '" + text + "' is invalid: " + e.getMessage());
        }
    }

    /** The latest fire time at or before {@code now}. */
    public Optional<ZonedDateTime> lastFire(ZonedDateTime now) {
        // lastExecution is strictly before; a fire exactly at now counts as past
        Optional<ZonedDateTime> next = times.nextExecution(now.minusNanos(1));
        if (next.isPresent() && !next.get().isAfter(now)) {
            return next;
        }
        return times.lastExecution(now);
    }

    /** The first fire time strictly after {@code now}. */
    public Optional<ZonedDateTime> nextFire(ZonedDateTime now) {
        return times.nextExecution(now);
    }

    /** English description, e.g. "at 02:30". */
    public String describe() {
        try {
            return CronDescriptor.instance(Locale.UK).describe(cron);
        } catch (RuntimeException e) {
            return text;
        }
    }

    @Override
    public String toString() {
        return text;
    }
}
