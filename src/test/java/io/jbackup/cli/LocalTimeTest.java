package io.jbackup.cli;

import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.time.ZoneId;
import java.time.temporal.ChronoUnit;
import java.util.TimeZone;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@link ListCommands#local}: the local time printed by {@code list}, {@code show} and others, computed from
 * {@link TimeZone} (no zone-rule provider search at start-up) and equal to what {@code java.time} prints in the same
 * zone, hour by hour across a year of daylight-saving changes, for zones east and west, with half-hour offsets, in
 * both hemispheres.
 */
class LocalTimeTest {
    @Test
    void equalsJavaTimeInEveryZoneAcrossDaylightSavingChanges() {
        String[] zones = {"UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata",
            "America/St_Johns", "Pacific/Chatham", "Europe/London"};
        Instant start = Instant.parse("2026-01-01T00:00:00Z");
        for (String z : zones) {
            TimeZone tz = TimeZone.getTimeZone(z);
            ZoneId id = ZoneId.of(z);
            for (Instant t = start; t.isBefore(start.plus(366, ChronoUnit.DAYS)); t = t.plus(59, ChronoUnit.MINUTES)) {
                Instant withNanos = t.plusNanos(999_999_999);
                assertEquals(ListCommands.LOCAL.format(withNanos.atZone(id)), ListCommands.local(withNanos, tz),
                    z + " at " + withNanos);
            }
        }
        assertEquals("-", ListCommands.local(null));
    }
}
