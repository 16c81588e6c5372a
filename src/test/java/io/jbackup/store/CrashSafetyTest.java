package io.jbackup.store;

import io.jbackup.model.BackupInfo;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Kills writer processes (like kill -9) at injected steps of the commit and at random moments, and checks after
 * each kill that the next command finds a consistent repository: every complete backup restores bit-exact, nothing
 * incomplete or temporary is left, and backups the writer reported committed are there.
 */
@Tag("reliability")
class CrashSafetyTest {
    private static final int CS = 64 * 1024;
    private static final long SIZE = 80L * CS + 123;
    private static final List<String> STEPS = List.of("pack-written", "pack-synced", "pack-registered",
        "index-written", "index-renamed", "backup-completed", "pack-written:2", "pack-synced:2", "pack-registered:2");

    @TempDir
    Path tmp;

    @Test
    void killedWritersLeaveAConsistentRepository() throws Exception {
        Path dir = tmp.resolve("repo");
        Repository.init(dir, new RepositoryOptions(CS, Encryption.NONE, 1, 1 << 20), null).close();
        Random rnd = new Random(42);
        List<String> plan = new ArrayList<>();
        for (String s : STEPS) {
            plan.add("step:" + s);
        }
        for (int i = 0; i < 12; i++) {
            plan.add("kill:" + (150 + rnd.nextInt(900)));
        }
        plan.add("none");
        plan.add("none");
        java.util.Collections.shuffle(plan, rnd);

        Set<String> reportedCommitted = new HashSet<>();
        Map<String, Integer> outcomes = new HashMap<>();
        int version = 0;
        for (String action : plan) {
            version++;
            // ":2" steps need a second pack, which only a full backup of a new disk is sure to write
            String disk = action.endsWith(":2") ? "full" + version : "d" + (version % 3);
            List<String> jvm = new ArrayList<>(List.of("-XX:TieredStopAtLevel=1", "-Xmx128m"));
            if (action.startsWith("step:")) {
                jvm.add("-Djbackup.test.crashAt=" + action.substring(5));
            }
            try (Child c = Child.start(tmp.resolve("logs"), jvm, "write", dir.toString(), disk,
                Integer.toString(version), Long.toString(SIZE), Integer.toString(CS), "5")) {
                int code;
                if (action.startsWith("kill:")) {
                    if (c.process.waitFor(Long.parseLong(action.substring(5)), java.util.concurrent.TimeUnit.MILLISECONDS)) {
                        code = c.process.exitValue();
                    } else {
                        c.kill();
                        code = 137;
                    }
                } else {
                    code = c.await(60);
                }
                String out = c.stdout();
                if (code == 0) {
                    assertTrue(out.startsWith("COMMITTED "), c.describe());
                    reportedCommitted.add(out.split(" ")[1].trim());
                } else {
                    assertEquals(137, code, "the child should only die by the crash hook or kill: " + c.describe());
                }
                outcomes.merge(code == 0 ? "committed" : action.startsWith("kill") ? "killed" : action, 1, Integer::sum);
            }
            checkConsistent(dir, reportedCommitted);
        }
        // the crash hook really fired at each step (exit 137 without COMMITTED)
        for (String s : STEPS) {
            assertEquals(1, outcomes.getOrDefault("step:" + s, 0), "step " + s + " outcomes " + outcomes);
        }
    }

    /** What the next command sees after a crash. */
    private void checkConsistent(Path dir, Set<String> reportedCommitted) throws Exception {
        try (Repository repo = Repository.open(dir, OpenOptions.defaults())) {
            List<BackupInfo> all = repo.listBackups();
            Set<String> ids = new HashSet<>();
            for (BackupInfo b : all) {
                ids.add(b.id());
                assertEquals(BackupInfo.COMPLETE, b.state(), "left over: " + b);
                ImageModel m = new ImageModel(SIZE, CS, Long.parseLong(b.labels().get("version")), 16);
                try (BackupReader r = repo.openBackup(b.id())) {
                    assertArrayEquals(m.sha256(), ImageModel.restoredSha256(r), "backup " + b.id() + " restores");
                }
            }
            assertTrue(ids.containsAll(reportedCommitted), "committed backups present: " + reportedCommitted + " in " + ids);
            try (Stream<Path> s = Files.list(dir.resolve("tmp"))) {
                List<Path> left = s.filter(p -> !p.getFileName().toString().startsWith(
                    Owner.current().token())).toList();
                assertTrue(left.isEmpty(), "temporary files of dead writers removed: " + left);
            }
            try (Stream<Path> s = Files.list(dir.resolve("indexes"))) {
                assertEquals(all.size(), s.filter(p -> p.toString().endsWith(".idx")).count(), "one index per backup");
            }
            VerifyReport v = repo.verify(VerifyOptions.all());
            assertTrue(v.ok(), "verify: " + v);
        }
    }
}
