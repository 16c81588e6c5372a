package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.store.BackupSpec;
import io.jbackup.store.BackupWriter;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** list, show, stats, protect, prune and gc through the command line. */
class MaintenanceCommandsTest {
    static final int CS = 64 * 1024;

    @TempDir
    Path tmp;

    static byte[] data(int seed) {
        byte[] b = new byte[CS];
        new Random(seed).nextBytes(b);
        java.util.Arrays.fill(b, CS / 2, CS, (byte) seed);
        return b;
    }

    private String backup(Path repo, String vm, String disk, Map<String, String> labels, int... seeds)
        throws Exception {
        try (Repository r = Repository.open(repo, OpenOptions.defaults());
             BackupWriter w = r.beginBackup(new BackupSpec(vm, disk, (long) seeds.length * CS, 0, null,
                 BackupSpec.FULL, labels, "note " + disk, Map.of("uri", "nbd://example/" + disk)))) {
            for (int i = 0; i < seeds.length; i++) {
                w.putChunk(i, data(seeds[i]), CS).join();
            }
            return w.commit().id();
        }
    }

    @Test
    void listShowStatsProtectPruneAndGc() throws Exception {
        Path repo = tmp.resolve("repo");
        String r = repo.toString();
        Cli.run("init", "--repo", r, "--chunk-size", "64K").ok();
        List<String> vda = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            vda.add(backup(repo, "web1", "vda", Map.of("n", "" + i), 0, 1, 10 + i, 20 + i));
        }
        String vdb = backup(repo, "web1", "vdb", Map.of(), 0, 0, 0, 5);
        String solo = backup(repo, null, "solo", Map.of(), 7);

        Cli.Result list = Cli.run("list", "--repo", r).ok();
        assertTrue(list.stdout().contains("web1/vda (4 backups)") && list.stdout().contains("web1/vdb (1 backup)")
            && list.stdout().contains("solo (1 backup)"), list.stdout());
        assertTrue(list.stdout().contains(vda.get(0)) && list.stdout().contains("unverified"), list.stdout());
        JsonNode lj = Cli.run("list", "--repo", r, "--disk", "vda", "--json").ok().json();
        assertEquals(4, lj.size());
        assertEquals(vda.get(0), lj.get(0).get("id").asText());
        assertTrue(lj.get(0).get("created").asText().matches("\\d{4}-\\d\\d-\\d\\dT.*Z"), lj.toString());
        assertEquals(4 * CS, lj.get(0).get("imageSize").asLong());
        assertEquals("0", lj.get(0).get("labels").get("n").asText());
        assertEquals(4 * CS, lj.get(0).get("stats").get("bytesNew").asLong(), "first backup: all new");
        assertEquals(2 * CS, lj.get(1).get("stats").get("bytesDedup").asLong(), "later ones share two chunks");
        assertEquals(1, Cli.run("list", "--repo", r, "--label", "n=2", "--json").ok().json().size());

        Cli.run("verify", "--repo", r).ok();
        Cli.Result show = Cli.run("show", "--repo", r, vda.get(3)).ok();
        assertTrue(show.stdout().contains("web1/vda") && show.stdout().contains("verified:")
            && show.stdout().contains("source.uri:") && show.stdout().contains("note vda"), show.stdout());
        // every value starts in one column, after the longest label (source.exportSize: and the like)
        assertEquals(1, show.stdout().lines().map(java.util.regex.Pattern.compile("^[A-Za-z.]+: +")::matcher)
            .filter(java.util.regex.Matcher::lookingAt).map(java.util.regex.Matcher::end).distinct().count(),
            show.stdout());
        JsonNode sj = Cli.run("show", "--repo", r, "--vm", "web1", "--disk", "vda", "latest", "--json").ok().json();
        assertEquals(vda.get(3), sj.get("id").asText());
        assertEquals(100.0, sj.get("verifiedSamplePercent").asDouble());

        JsonNode st = Cli.run("stats", "--repo", r, "--json").ok().json();
        assertEquals("ok", st.get("status").asText(), "every result object says how it ended: " + st);
        assertEquals(6, st.get("backups").asLong());
        assertEquals(3, st.get("disks").asLong());
        // unique chunks: 0, 1, 10..13, 20..23, 5, 7
        assertEquals(12, st.get("chunks").asLong());
        assertEquals((4 * 4 + 4 + 1) * CS / (double) (12 * CS), st.get("dedupRatio").asDouble(), 0.01);
        assertTrue(st.get("compressionRatio").asDouble() > 1.5, st.toString());
        assertTrue(Cli.run("stats", "--repo", r).ok().stdout().contains("dedup ratio:"));

        Cli.run("protect", "--repo", r, vda.get(0), "--reason", "golden image").ok();
        Cli.Result dry = Cli.run("prune", "--repo", r, "--keep-last", "1", "--disk", "vda", "--dry-run").ok();
        assertTrue(dry.stdout().contains("keep    " + vda.get(3)) && dry.stdout().contains("last 1")
            && dry.stdout().contains("protected") && dry.stdout().contains("remove  " + vda.get(1)), dry.stdout());
        assertTrue(dry.stdout().lines().noneMatch(l -> l.endsWith(" ")), "trailing blanks:\n" + dry.stdout());
        assertEquals(6, Cli.run("list", "--repo", r, "--json").ok().json().size(), "dry run removes nothing");

        Cli.Result bad = Cli.run("prune", "--repo", r);
        assertEquals(ExitCodes.USAGE, bad.exitCode(), bad.toString());
        assertTrue(bad.stderr().contains("every backup would be removed"), bad.stderr());

        JsonNode pj = Cli.run("prune", "--repo", r, "--keep-last", "1", "--vm", "web1", "--json").ok().json();
        assertEquals("ok", pj.get("status").asText(), pj.toString());
        assertEquals(2, pj.get("removed").asInt(), pj.toString());
        assertFalse(Files.exists(repo.resolve("indexes").resolve(vda.get(1) + ".idx")));
        List<String> left = new ArrayList<>();
        Cli.run("list", "--repo", r, "--json").ok().json().forEach(n -> left.add(n.get("id").asText()));
        assertEquals(List.of(vda.get(0), vda.get(3), vdb, solo).stream().sorted().toList(),
            left.stream().sorted().toList());

        JsonNode gc = Cli.run("gc", "--repo", r, "--repack-threshold", "100", "--json").ok().json();
        // vda 1 and 2 used chunks 11, 12, 21, 22 alone
        assertEquals("ok", gc.get("status").asText(), gc.toString());
        assertEquals(4, gc.get("chunksCondemned").asLong(), gc.toString());
        assertTrue(gc.get("bytesReclaimed").asLong() > 0, gc.toString());
        Cli.run("verify", "--repo", r).ok();
        try (Repository rr = Repository.open(repo, OpenOptions.defaults());
             var b = rr.openBackup(vda.get(3))) {
            assertArrayEquals(data(13), b.readChunk(2));
            assertArrayEquals(data(23), b.readChunk(3));
        }
        Cli.run("unprotect", "--repo", r, vda.get(0)).ok();
        assertEquals(1, Cli.run("prune", "--repo", r, "--keep-last", "1", "--json").ok().json().get("removed").asInt());
    }

    @Test
    void forgetDeletesChosenBackupsOnlyAndRefusesProtectedOnesWithoutDeletingAnything() throws Exception {
        Path repo = tmp.resolve("repo");
        String r = repo.toString();
        Cli.run("init", "--repo", r, "--chunk-size", "64K").ok();
        String a = backup(repo, null, "vda", Map.of(), 0, 1, 2);
        String b = backup(repo, null, "vda", Map.of(), 0, 1, 3);
        String c = backup(repo, null, "vda", Map.of(), 0, 4, 3);
        String other = backup(repo, null, "vdb", Map.of(), 5);

        Cli.Result dry = Cli.run("forget", "--repo", r, "--dry-run", a).ok();
        assertTrue(dry.stdout().contains("Would delete backup " + a + " of vda"), dry.stdout());
        assertEquals(4, Cli.run("list", "--repo", r, "--json").ok().json().size(), "a dry run deletes nothing");

        Cli.run("protect", "--repo", r, c).ok();
        Cli.Result refused = Cli.run("forget", "--repo", r, a, c);
        assertEquals(ExitCodes.USAGE, refused.exitCode(), "a refusal, not damage: " + refused);
        assertTrue(refused.stderr().contains("backup " + c + " is protected") && refused.stderr().contains(
            "jbackup unprotect " + c) && refused.stderr().contains("nothing was deleted"), refused.stderr());
        assertEquals(4, Cli.run("list", "--repo", r, "--json").ok().json().size(), "nothing was deleted");

        // a bad backup can be deleted too; 'latest' needs the disk
        try (Repository rr = Repository.open(repo, OpenOptions.defaults())) {
            rr.markBad(a, "test");
        }
        JsonNode fj = Cli.run("forget", "--repo", r, a.substring(0, a.length() - 2), "--json").ok().json();
        assertEquals(1, fj.get("backups").size(), fj.toString());
        assertEquals(a, fj.get("backups").get(0).get("id").asText());
        assertEquals("deleted", fj.get("backups").get(0).get("action").asText());
        Cli.Result noDisk = Cli.run("delete", "--repo", r, "latest");
        assertEquals(ExitCodes.USAGE, noDisk.exitCode(), noDisk.toString());
        assertTrue(noDisk.stderr().contains("add --disk NAME"), "names the way out: " + noDisk.stderr());
        Cli.Result latest = Cli.run("delete", "--repo", r, "--disk", "vdb", "latest").ok();
        assertTrue(latest.stdout().contains("Deleted backup " + other + " of vdb"), latest.stdout());
        List<String> left = new ArrayList<>();
        Cli.run("list", "--repo", r, "--json").ok().json().forEach(n -> left.add(n.get("id").asText()));
        assertEquals(List.of(b, c), left);
        assertFalse(Files.exists(repo.resolve("indexes").resolve(a + ".idx")));
        assertFalse(Files.exists(repo.resolve("indexes").resolve(a + ".bad")));

        // chunk 2 was a's alone, 5 the other disk's: gc reclaims both; b and c still read back whole
        JsonNode gc = Cli.run("gc", "--repo", r, "--repack-threshold", "100", "--json").ok().json();
        assertEquals(2, gc.get("chunksCondemned").asLong(), gc.toString());
        Cli.run("verify", "--repo", r).ok();
        try (Repository rr = Repository.open(repo, OpenOptions.defaults());
             var rb = rr.openBackup(b); var rc = rr.openBackup(c)) {
            assertArrayEquals(data(0), rb.readChunk(0));
            assertArrayEquals(data(1), rb.readChunk(1));
            assertArrayEquals(data(3), rb.readChunk(2));
            assertArrayEquals(data(4), rc.readChunk(1));
        }
    }
}
