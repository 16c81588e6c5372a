package io.jbackup.cli;

import io.jbackup.store.BackupSpec;
import io.jbackup.store.BackupWriter;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import io.jbackup.text.Human;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Sizes with two decimals, singular and plural counts, and no empty fields, as users see them. */
class PrintedValuesTest {
    private static final int CS = 64 * 1024;

    @TempDir
    Path tmp;

    @Test
    void sizesHaveTwoDecimalsAndCarryIntoTheNextUnit() {
        assertEquals("0 B", Sizes.format(0));
        assertEquals("1023 B", Sizes.format(1023));
        assertEquals("1 KiB", Sizes.format(1024));
        assertEquals("1.5 KiB", Sizes.format(1536));
        assertEquals("1.25 GiB", Sizes.format(1342177280L));
        assertEquals("64 MiB", Sizes.format(64L << 20));
        assertEquals("1.33 MiB", Sizes.format((1L << 20) + (1L << 20) / 3));
        assertEquals("1 MiB", Sizes.format((1L << 20) - 1), "1023.999 KiB rounds up into the next unit");
        assertEquals("8 EiB", Sizes.format(Long.MAX_VALUE));
        // the progress bar and summaries print the same form
        assertEquals(Sizes.format(1342177280L), ConsoleProgress.bytes(1342177280L));
        assertEquals("1.25 GiB (1342177280 bytes)", Human.exact(1342177280L));
        assertEquals("512 bytes", Human.exact(512));
    }

    @Test
    void countsAreSingularOrPlural() {
        assertEquals("0 backups", Human.count(0, "backup"));
        assertEquals("1 backup", Human.count(1, "backup"));
        assertEquals("2 backups", Human.count(2, "backup"));
        assertEquals("1 pack file", Human.count(1, "pack file"));
    }

    @Test
    void durationsInMessagesAreSecondsNotIso() {
        IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
            () -> new io.jbackup.engine.LiveSource(Path.of("/run/q.sock"),
                java.util.List.of(new io.jbackup.engine.LiveSource.Disk("vda", "vda", null)), Path.of("/run/qga.sock"),
                java.time.Duration.ofSeconds(-1), null, null, java.time.Duration.ofSeconds(30)));
        assertEquals("guest agent timeout -1 s (expected: > 0)", e.getMessage());
        assertEquals("1500 ms", Human.duration(java.time.Duration.ofMillis(1500)));
    }

    private static void backup(Path repo, String disk, long size, Map<String, String> source) throws Exception {
        try (Repository r = Repository.open(repo, OpenOptions.defaults());
             BackupWriter w = r.beginBackup(new BackupSpec(null, disk, size, 0, null, BackupSpec.FULL, Map.of(),
                 null, source))) {
            byte[] b = new byte[CS];
            Arrays.fill(b, (byte) 7);
            w.putChunk(0, b, CS).join();
            w.commit();
        }
    }

    @Test
    void verifyStatsAndShowPrintHumanValues() throws Exception {
        Path repo = tmp.resolve("repo");
        String r = repo.toString();
        Cli.run("init", "--repo", r, "--chunk-size", "64K").ok();
        backup(repo, "vda", 20L * CS, Map.of("uri", "nbd+unix:///?socket=/run/x.sock", "export", ""));

        Cli.Result verify = Cli.run("verify", "--repo", r).ok();
        assertTrue(verify.stdout().contains("used by 1 backup "), verify.stdout());
        assertTrue(verify.stdout().contains("Checked 1 chunk "), verify.stdout());

        Cli.Result gc = Cli.run("gc", "--repo", r).ok();
        assertTrue(gc.stdout().contains("0 of 1 chunk unused"), gc.stdout());

        Cli.Result stats = Cli.run("stats", "--repo", r).ok();
        assertTrue(stats.stdout().contains("1 pack file") && stats.stdout().contains("of 1 disk"), stats.stdout());

        Cli.Result show = Cli.run("show", "--repo", r, "--disk", "vda", "latest").ok();
        assertTrue(show.stdout().contains("1.25 MiB (1310720 bytes), 20 chunks of 64 KiB"), show.stdout());
        assertTrue(show.stdout().contains("source.uri:"), show.stdout());
        assertFalse(show.stdout().contains("source.export:"), "empty fields are left out: " + show.stdout());
        for (String line : show.stdout().split("\n")) {
            assertFalse(line.strip().endsWith(":"), "a field without a value: '" + line + "'");
        }
    }
}
