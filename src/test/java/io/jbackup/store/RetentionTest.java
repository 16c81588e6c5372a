package io.jbackup.store;

import io.jbackup.model.BackupInfo;
import org.junit.jupiter.api.Test;

import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Retention rules with restic/borg semantics, including calendar edge cases. */
class RetentionTest {
    static final ZoneId BERLIN = ZoneId.of("Europe/Berlin");

    private static int seq;

    static BackupInfo at(String instant) {
        return at(instant, BackupInfo.COMPLETE);
    }

    static BackupInfo at(String instant, String state) {
        Instant t = Instant.parse(instant);
        return new BackupInfo("b" + (seq++) + "-" + instant, "vm", "vda", "full", null, t, t, 1, 65536, state, null,
            null, null, null);
    }

    static RetentionPolicy policy(int last, int hourly, int daily, int weekly, int monthly, int yearly, String within,
                                  ZoneId zone) {
        return new RetentionPolicy(last, hourly, daily, weekly, monthly, yearly,
            within == null ? null : RetentionPolicy.Span.parse(within), zone);
    }

    /** The creation instants kept, newest first. */
    static List<String> kept(RetentionPolicy p, List<BackupInfo> backups, Set<String> prot) {
        return Retention.apply(p, backups, prot).stream().filter(Retention.Decision::keep)
            .map(d -> d.backup().created().toString()).collect(Collectors.toList());
    }

    static List<BackupInfo> all(String... instants) {
        List<BackupInfo> l = new ArrayList<>();
        for (String s : instants) {
            l.add(at(s));
        }
        return l;
    }

    @Test
    void keepLastKeepsTheNewestAndSaysWhy() {
        List<BackupInfo> b = all("2026-11-20T10:00:00Z", "2026-11-21T10:00:00Z", "2026-11-22T10:00:00Z");
        List<Retention.Decision> d = Retention.apply(RetentionPolicy.keepLast(2), b, Set.of());
        assertEquals(3, d.size());
        assertEquals("2026-11-22T10:00:00Z", d.get(0).backup().created().toString(), "newest first");
        assertEquals(List.of("last 1"), d.get(0).reasons());
        assertEquals(List.of("last 2"), d.get(1).reasons());
        assertTrue(!d.get(2).keep() && d.get(2).reasons().isEmpty());
    }

    @Test
    void severalBackupsPerDayKeepTheNewestOfEachDay() {
        List<BackupInfo> b = all("2026-11-22T06:00:00Z", "2026-11-22T12:00:00Z", "2026-11-22T18:00:00Z",
            "2026-11-23T01:00:00Z", "2026-11-23T23:59:59Z", "2026-11-24T00:00:00Z");
        assertEquals(List.of("2026-11-24T00:00:00Z", "2026-11-23T23:59:59Z", "2026-11-22T18:00:00Z"),
            kept(policy(0, 0, 7, 0, 0, 0, null, ZoneOffset.UTC), b, Set.of()));
        // only two days asked: the oldest day goes
        assertEquals(List.of("2026-11-24T00:00:00Z", "2026-11-23T23:59:59Z"),
            kept(policy(0, 0, 2, 0, 0, 0, null, ZoneOffset.UTC), b, Set.of()));
        // hourly: every backup here is in its own hour
        assertEquals(6, kept(policy(0, 24, 0, 0, 0, 0, null, ZoneOffset.UTC), b, Set.of()).size());
    }

    @Test
    void isoWeek53SpansTheTurnOfTheYear() {
        // 2026-12-27 is Sunday of 2026-W52; 2026-12-28 .. 2027-01-03 is 2026-W53; 2027-01-04 starts 2027-W01
        List<BackupInfo> b = all("2026-12-27T12:00:00Z", "2026-12-28T12:00:00Z", "2026-12-31T12:00:00Z",
            "2027-01-02T12:00:00Z", "2027-01-04T12:00:00Z");
        List<Retention.Decision> d = Retention.apply(policy(0, 0, 0, 10, 0, 0, null, ZoneOffset.UTC), b, Set.of());
        assertEquals(List.of("weekly 2027-W01"), d.get(0).reasons());
        assertEquals(List.of("weekly 2026-W53"), d.get(1).reasons(), "2027-01-02 is in 2026-W53");
        assertTrue(!d.get(2).keep() && !d.get(3).keep(), "2026-12-31 and 12-28 share W53 with a newer backup");
        assertEquals(List.of("weekly 2026-W52"), d.get(4).reasons());
        // monthly and yearly split the same week differently
        assertEquals(List.of("2027-01-04T12:00:00Z", "2026-12-31T12:00:00Z"),
            kept(policy(0, 0, 0, 0, 5, 0, null, ZoneOffset.UTC), b, Set.of()));
        assertEquals(List.of("2027-01-04T12:00:00Z", "2026-12-31T12:00:00Z"),
            kept(policy(0, 0, 0, 0, 0, 5, null, ZoneOffset.UTC), b, Set.of()));
    }

    @Test
    void daysAreCountedInTheConfiguredZoneAcrossSpringForward() {
        // Europe/Berlin springs forward on 2026-03-29 (a 23-hour day)
        List<BackupInfo> b = all(
            "2026-03-28T22:30:00Z",  // Berlin 2026-03-28 23:30 CET
            "2026-03-28T23:30:00Z",  // Berlin 2026-03-29 00:30 CET
            "2026-03-29T21:30:00Z",  // Berlin 2026-03-29 23:30 CEST
            "2026-03-29T22:30:00Z"); // Berlin 2026-03-30 00:30 CEST
        assertEquals(List.of("2026-03-29T22:30:00Z", "2026-03-29T21:30:00Z", "2026-03-28T22:30:00Z"),
            kept(policy(0, 0, 10, 0, 0, 0, null, BERLIN), b, Set.of()));
        // the same backups counted in UTC fall on two days
        assertEquals(List.of("2026-03-29T22:30:00Z", "2026-03-28T23:30:00Z"),
            kept(policy(0, 0, 10, 0, 0, 0, null, ZoneOffset.UTC), b, Set.of()));
        // keep-within 1d before the newest: Berlin 2026-03-29 00:30 CEST is 23 hours of wall clock but the
        // calendar day back from 2026-03-30 00:30 CEST is 2026-03-29 00:30 CET = 2026-03-28T23:30Z
        assertEquals(List.of("2026-03-29T22:30:00Z", "2026-03-29T21:30:00Z", "2026-03-28T23:30:00Z"),
            kept(policy(0, 0, 0, 0, 0, 0, "1d", BERLIN), b, Set.of()));
    }

    @Test
    void theRepeatedHourOfFallBackIsTwoHoursButOneDay() {
        // Europe/Berlin falls back on 2026-10-25: 02:00-03:00 local happens twice
        List<BackupInfo> b = all(
            "2026-10-25T00:10:00Z",  // 02:10 CEST
            "2026-10-25T00:50:00Z",  // 02:50 CEST
            "2026-10-25T01:10:00Z",  // 02:10 CET (the repeated hour)
            "2026-10-25T01:50:00Z",  // 02:50 CET
            "2026-10-25T22:30:00Z",  // 23:30 CET, still 2026-10-25 (a 25-hour day)
            "2026-10-25T23:30:00Z"); // 2026-10-26 00:30 CET
        List<Retention.Decision> hourly = Retention.apply(policy(0, 10, 0, 0, 0, 0, null, BERLIN), b, Set.of());
        List<String> hours = hourly.stream().filter(Retention.Decision::keep).map(d -> d.reasons().get(0))
            .collect(Collectors.toList());
        assertEquals(List.of("hourly 2026-10-26T00:00+01:00", "hourly 2026-10-25T23:00+01:00",
            "hourly 2026-10-25T02:00+01:00", "hourly 2026-10-25T02:00+02:00"), hours);
        assertEquals(List.of("2026-10-25T23:30:00Z", "2026-10-25T22:30:00Z"),
            kept(policy(0, 0, 10, 0, 0, 0, null, BERLIN), b, Set.of()));
    }

    @Test
    void rulesCombineAndProtectedAndBadBackupsAreNeverRemoved() {
        List<BackupInfo> b = new ArrayList<>(all("2025-06-01T00:00:00Z", "2026-01-15T00:00:00Z",
            "2026-02-15T00:00:00Z", "2026-11-01T00:00:00Z", "2026-11-23T00:00:00Z", "2026-11-24T00:00:00Z"));
        BackupInfo bad = at("2026-11-24T06:00:00Z", BackupInfo.BAD);
        BackupInfo running = at("2026-11-24T07:00:00Z", BackupInfo.INCOMPLETE);
        b.add(bad);
        b.add(running);
        String old = b.get(0).id();
        List<Retention.Decision> d = Retention.apply(policy(1, 0, 2, 0, 2, 0, null, ZoneOffset.UTC), b, Set.of(old));
        assertEquals(7, d.size(), "incomplete backups are not considered");
        Retention.Decision first = d.get(0);
        assertEquals(bad.id(), first.backup().id());
        assertTrue(first.keep() && first.reasons().get(0).startsWith("bad"));
        assertEquals(List.of("last 1", "daily 2026-11-24", "monthly 2026-11"), d.get(1).reasons(),
            "the newest good backup fills every rule");
        assertEquals(List.of("daily 2026-11-23"), d.get(2).reasons());
        assertTrue(!d.get(3).keep(), "2026-11-01: November is already kept by a newer backup");
        assertEquals(List.of("monthly 2026-02"), d.get(4).reasons());
        assertTrue(!d.get(5).keep(), "monthly 2 is used up");
        assertEquals(List.of("protected"), d.get(6).reasons());
    }

    @Test
    void policyIsValidatedUpFront() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> policy(0, 0, 0, 0, 0, 0, null, null));
        assertTrue(e.getMessage().contains("every backup would be removed"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> policy(-1, 0, 0, 0, 0, 0, null, null));
        assertThrows(IllegalArgumentException.class, () -> RetentionPolicy.Span.parse("3 fortnights"));
        assertThrows(IllegalArgumentException.class, () -> RetentionPolicy.Span.parse("0d"));
        RetentionPolicy.Span s = RetentionPolicy.Span.parse("1y2m3w4d5h");
        assertEquals(java.time.Period.of(1, 2, 25), s.period());
        assertEquals(java.time.Duration.ofHours(5), s.duration());
        assertEquals(java.time.Period.ofDays(14), RetentionPolicy.Span.parse("P14D").period());
        assertEquals(java.time.Duration.ofHours(36), RetentionPolicy.Span.parse("PT36H").duration());
    }
}
