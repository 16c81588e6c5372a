package io.jbackup.faults;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.catalog.ChunkLocation;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Fault: the backup process dies. {@value #RUNS} runs of the jbackup CLI as a child JVM, alternating full and
 * incremental backups ({@code qemu-nbd -r -B b -A}, reads throttled so a backup lasts about a second), the image
 * changed between runs with qemu-io. Most runs are killed with SIGKILL after a seeded random delay; every
 * {@value #CRASH_EVERY}th run halts at a crash point of the commit ({@code JBACKUP_TEST_CRASH_AT}, the JVM halts at
 * once like SIGKILL) so the short pack-seal and commit windows are hit for sure. After each run: the next command
 * works and cleans up (tmp/ leftovers, lock records, the dead backup's row), nothing partial is listed, every
 * complete backup restores bit-exact (SHA-256 of {@code qemu-img convert -O raw} of the image at that run), and the
 * next backup stores no chunk again that a killed run had already sealed into a pack. Two last runs make that reuse
 * check independent of timing: a full backup of 2.5 MiB of new data halted once its packs are sealed, then a full
 * backup that must deduplicate against them.
 *
 * <p>Replay a failure with {@code -Djbackup.faults.seed=SEED} (the seed is printed).
 */
@Tag("reliability")
class KillBackupFaultTest {
    static final int RUNS = 30;
    static final int CRASH_EVERY = 6;
    static final List<String> CRASH_POINTS = List.of("pack-written", "pack-synced", "pack-registered",
        "index-written", "index-renamed");
    static final long SEED = Long.getLong("jbackup.faults.seed", 0x5EED_0001L);

    @TempDir
    Path dir;

    @Test
    void sigkillAtRandomPointsLosesNoBackup() throws Exception {
        System.out.printf("KillBackupFaultTest: seed %d (replay with -Djbackup.faults.seed=%d)%n", SEED, SEED);
        Random rnd = new Random(SEED);
        Path repo = dir.resolve("repo");
        String r = repo.toString();
        Cli.run("init", "--repo", r, "--chunk-size", "64K", "--pack-size", "1M").ok();
        FaultImage img = new FaultImage(dir, 8 << 20, 6 << 20, rnd);

        Map<String, String> shaOf = new LinkedHashMap<>(); // complete backup -> SHA-256 of its raw snapshot
        Set<String> reported = new TreeSet<>();             // backups a run reported as done (exit 0)
        Map<String, Integer> phases = new TreeMap<>();
        int kills = 0;
        int completed = 0;
        int reuseChecks = 0;
        Set<String> packsOfLastKill = Set.of();
        // runs 0..RUNS-1 as described above; then, so that reuse is checked whatever the timing, a full backup of
        // 2.5 MiB of new data halted after its packs are sealed (index-written), and a full backup that must reuse them
        for (int run = 0; run < RUNS + 2; run++) {
            boolean last = run == RUNS + 1;
            String change;
            if (run == 0) {
                change = "initial image";
            } else if (run == RUNS) {
                long off = FaultImage.CHUNK * (long) rnd.nextInt(16);
                img.write(off, 40 * FaultImage.CHUNK);
                change = "write " + off + "+" + (40 * FaultImage.CHUNK) + "; ";
            } else {
                change = last ? "unchanged" : img.mutate();
            }
            Path raw = img.snapshot(dir.resolve("run" + run + ".raw"));
            String sha = Proc.sha256(raw);
            Set<String> digests = FaultImage.chunkDigests(raw);
            Files.delete(raw);
            // what the repository holds before the run: chunks not in it are the only ones a backup may store
            Set<String> missing = new HashSet<>();
            Set<String> fromKilled = new HashSet<>();
            try (Repository repository = Repository.open(repo, OpenOptions.defaults())) {
                for (String d : digests) {
                    ChunkLocation loc = repository.chunkLocation(HexFormat.of().parseHex(d));
                    if (loc == null) {
                        missing.add(d);
                    } else if (packsOfLastKill.contains(loc.pack())) {
                        fromKilled.add(d);
                    }
                }
            }
            boolean haveComplete = !shaOf.isEmpty();
            String mode = run % 2 == 0 || !haveComplete || run >= RUNS ? "full" : "incremental";
            String crashAt = run == RUNS ? "index-written" : run < RUNS && run % CRASH_EVERY == CRASH_EVERY - 1
                ? CRASH_POINTS.get((run / CRASH_EVERY) % CRASH_POINTS.size()) : null;
            long delay = last ? 600_000 : 400 + rnd.nextInt(2600);
            if (last) {
                assertTrue(!fromKilled.isEmpty(), "the halted run sealed packs of new chunks that are in the image");
            }
            Set<String> packsBefore = files(repo.resolve("packs"), ".pack");
            Set<String> indexesBefore = files(repo.resolve("indexes"), ".idx");
            int code;
            String outcome;
            try (Proc.Background src = img.serveThrottled(6_000_000);
                 JBackupProcess p = JBackupProcess.start(dir, "run" + run,
                     crashAt == null ? Map.of() : Map.of("JBACKUP_TEST_CRASH_AT", crashAt),
                     backupArgs(mode, r, QemuImages.uriOf(src)))) {
                if (crashAt != null) {
                    code = p.await(120);
                    outcome = code == 137 ? "halted at " + crashAt : "exit " + code;
                } else if (last) {
                    code = p.await(120);
                    outcome = "not killed";
                } else if (p.process.waitFor(delay, java.util.concurrent.TimeUnit.MILLISECONDS)) {
                    code = p.process.exitValue();
                    outcome = "finished before the kill at " + delay + " ms";
                } else {
                    p.kill();
                    code = 137;
                    outcome = "SIGKILL after " + delay + " ms";
                }
                if (code == 0) {
                    JsonNode d = p.json().get("disks").get(0);
                    String id = d.get("backupId").asText();
                    reported.add(id);
                    completed++;
                    long bytesNew = d.get("bytesNew").asLong();
                    long bytesDedup = d.get("bytesDedup").asLong();
                    // no chunk the repository already had is stored again, in particular none a killed run sealed
                    if ("full".equals(d.get("type").asText())) {
                        assertEquals((long) missing.size() * FaultImage.CHUNK, bytesNew, "run " + run + ": " + d);
                        if (!fromKilled.isEmpty()) {
                            assertTrue(bytesDedup >= (long) fromKilled.size() * FaultImage.CHUNK, "run " + run
                                + " reuses the " + fromKilled.size() + " chunks the killed run sealed: " + d);
                            reuseChecks++;
                        }
                    } else {
                        assertTrue(bytesNew <= (long) missing.size() * FaultImage.CHUNK, "run " + run + ": " + d);
                        if (!fromKilled.isEmpty()) {
                            reuseChecks++;
                        }
                    }
                    packsOfLastKill = Set.of();
                } else if (code == 137) {
                    kills++;
                    String phase = phase(repo, packsBefore, indexesBefore);
                    phases.merge(crashAt == null ? phase : "crash point " + crashAt + " (" + phase + ")", 1,
                        Integer::sum);
                    Set<String> sealed = new HashSet<>(files(repo.resolve("packs"), ".pack"));
                    sealed.removeAll(packsBefore);
                    packsOfLastKill = sealed.stream().map(n -> n.substring(0, n.length() - 5))
                        .collect(Collectors.toSet());
                    outcome += " [" + phase + ", " + sealed.size() + " pack(s) sealed]";
                } else {
                    throw new AssertionError("run " + run + " (" + mode + ") exited " + code + "\nstderr: "
                        + p.stderr());
                }
            }
            System.out.printf("  run %2d %-11s %s -> %s%n", run, mode, change, outcome);

            // the next command works: recovery removes the dead run's row, tmp/ and lock record
            JsonNode list = Cli.run("list", "--repo", r, "--json").ok().json();
            for (JsonNode b : list) {
                assertEquals("complete", b.get("state").asText(), "nothing partial is listed: " + b);
                String id = b.get("id").asText();
                if (!shaOf.containsKey(id)) {
                    shaOf.put(id, sha); // a backup appearing now was made by this run
                    assertEquals(sha, restoreSha(r, id), "backup " + id + " of run " + run + " restores bit-exact");
                }
            }
            assertTrue(files(repo.resolve("tmp"), "").isEmpty(), "tmp/ is cleaned: " + files(repo.resolve("tmp"), ""));
            assertTrue(files(repo.resolve("locks"), ".json").isEmpty(), "no stale lock record: "
                + files(repo.resolve("locks"), ".json"));
        }

        // every backup ever reported done is still there, complete, and restores bit-exact; verify finds nothing
        JsonNode list = Cli.run("list", "--repo", r, "--json").ok().json();
        Set<String> listed = new HashSet<>();
        list.forEach(b -> listed.add(b.get("id").asText()));
        int lost = 0;
        for (String id : reported) {
            if (!listed.contains(id)) {
                lost++;
            }
        }
        for (Map.Entry<String, String> e : shaOf.entrySet()) {
            assertEquals(e.getValue(), restoreSha(r, e.getKey()), "backup " + e.getKey() + " at the end");
        }
        Cli.run("verify", "--repo", r).ok();
        System.out.printf("KillBackupFaultTest: seed %d, %d runs, %d killed, %d finished, %d complete backups "
                + "restored bit-exact, %d reuse checks, backups lost %d; phases hit: %s%n", SEED, RUNS + 2, kills,
            completed, shaOf.size(), reuseChecks, lost, phases);
        assertEquals(0, lost, "backups lost");
        assertTrue(kills >= RUNS / 3, "many runs were killed: " + kills);
        assertTrue(reuseChecks > 0, "some run followed a kill that had sealed packs");
        assertTrue(phases.keySet().stream().anyMatch(k -> k.contains("reads")), phases.toString());
        assertTrue(phases.keySet().stream().anyMatch(k -> k.contains("after a pack seal")), phases.toString());
    }

    static String[] backupArgs(String mode, String repo, String uri) {
        List<String> a = new java.util.ArrayList<>(List.of(mode, "--repo", repo, "--disk", "vda", "--source", uri,
            "--json"));
        if (mode.equals("incremental")) {
            a.addAll(List.of("--bitmap", FaultImage.BITMAP));
        }
        return a.toArray(String[]::new);
    }

    private String restoreSha(String repo, String id) throws IOException {
        Path out = dir.resolve("restore-" + id + ".raw");
        Cli.run("restore", "--repo", repo, "--disk", "vda", "--backup", id, "--to", out.toString()).ok();
        String sha = Proc.sha256(out);
        Files.delete(out);
        return sha;
    }

    /** Where the killed run was, from what it left on disk (read before any other command cleans up). */
    private static String phase(Path repo, Set<String> packsBefore, Set<String> indexesBefore) throws IOException {
        Set<String> packs = files(repo.resolve("packs"), ".pack");
        Set<String> indexes = files(repo.resolve("indexes"), ".idx");
        Set<String> tmp = files(repo.resolve("tmp"), "");
        boolean draft = tmp.stream().anyMatch(f -> f.endsWith(".idx"));
        boolean openPack = tmp.stream().anyMatch(f -> f.endsWith(".pack"));
        if (!indexesBefore.containsAll(indexes)) {
            return "commit (index renamed, exit pending)";
        }
        if (!packsBefore.containsAll(packs)) {
            return "after a pack seal";
        }
        if (openPack) {
            return "reads (pack open)";
        }
        if (draft) {
            return "block status / first reads";
        }
        return "startup (JVM, open, connect)";
    }

    /** Names of the regular files under {@code root} ending with {@code suffix}. */
    private static Set<String> files(Path root, String suffix) throws IOException {
        if (!Files.isDirectory(root)) {
            return Set.of();
        }
        try (Stream<Path> s = Files.walk(root)) {
            return s.filter(Files::isRegularFile).map(p -> p.getFileName().toString())
                .filter(n -> n.endsWith(suffix)).collect(Collectors.toCollection(TreeSet::new));
        }
    }
}
