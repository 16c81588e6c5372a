package io.jbackup.mount;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.testutil.Cli;
import io.jbackup.testutil.JBackupProcess;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The realistic dataset of {@code ../shared/bench/make-dataset.sh} (an ext4 partition with a day of changes recorded
 * in bitmap b1): the full backup of day 1 and the incremental of day 2 mounted side by side. Day 2 is compared file
 * by file (content, mode, owner, mtime) with the day 2 raw image mounted read-only by loop; the files day 2
 * overwrote show their new content in the incremental and their old one in the full; the trees day 2 deleted are
 * only in the full.
 *
 * <p>Runs when {@code -Djbackup.dataset=DIR} names a built dataset ({@code .ci/run} builds a 512 MiB one).
 */
class DatasetMountTest {
    @TempDir
    Path dir;

    @Test
    void day2IncrementalMountsAsTheRawImageBesideTheFullOfDay1() throws Exception {
        String ds = System.getProperty("jbackup.dataset", "");
        Assumptions.assumeTrue(!ds.isEmpty(), "set -Djbackup.dataset=DIR (built by make-dataset.sh) to run");
        Assumptions.assumeTrue("root".equals(System.getProperty("user.name")), "mount needs root");
        Path data = Path.of(ds);
        Path repo = dir.resolve("repo");
        Cli.run("init", "--repo", repo.toString()).ok();
        String full;
        try (Proc.Background s = QemuImages.qemuNbd(dir, data.resolve("base.day1.qcow2"), "qcow2", "-r", "-A")) {
            full = id(Cli.run("full", "--repo", repo.toString(), "--disk", "vda", "--source", QemuImages.uriOf(s),
                "--json").ok().json());
        }
        String incr;
        try (Proc.Background s = QemuImages.qemuNbd(dir, data.resolve("base.day2.qcow2"), "qcow2", "-r", "-A", "-B",
            "b1")) {
            incr = id(Cli.run("incremental", "--repo", repo.toString(), "--disk", "vda", "--bitmap", "b1", "--source",
                QemuImages.uriOf(s), "--json").ok().json());
        }
        JsonNode changes = new ObjectMapper().readTree(data.resolve("changes-day2.json").toFile());
        List<String> overwritten = new ArrayList<>();
        List<String> deleted = new ArrayList<>();
        for (JsonNode op : changes.get("ops")) {
            String what = op.get("op").asText();
            for (JsonNode p : op.path("paths")) {
                (what.startsWith("in-place overwrite") ? overwritten : what.startsWith("delete") ? deleted
                    : new ArrayList<String>()).add(p.asText());
            }
        }
        assertFalse(overwritten.isEmpty() || deleted.isEmpty(), "changes-day2.json names changed files: " + changes);

        Path day1 = dir.resolve("day1");
        Path day2 = dir.resolve("day2");
        Path raw2 = Files.createDirectories(dir.resolve("raw2"));
        String[] part = Proc.run("partx", "-g", "-o", "START", "-n", "1", data.resolve("day2.raw").toString())
            .strip().split("\\s+");
        long offset = Long.parseLong(part[0]) * 512;
        try (JBackupProcess m1 = MountTest.mount(repo, dir, day1, "mount-day1", "--disk", "vda", "--backup", full);
             JBackupProcess m2 = MountTest.mount(repo, dir, day2, "mount-day2", "--disk", "vda", "--backup", incr)) {
            Proc.run("mount", "-o", "ro,noload,loop,offset=" + offset, data.resolve("day2.raw").toString(),
                raw2.toString());
            try {
                Trees.assertSame(raw2, day2.resolve("1"), Trees.Depth.FULL);
            } finally {
                Proc.run("umount", raw2.toString());
            }
            for (String p : overwritten) {
                assertNotEquals(Proc.sha256(day1.resolve("1").resolve(p)), Proc.sha256(day2.resolve("1").resolve(p)),
                    p + " was overwritten on day 2");
            }
            for (String p : deleted) {
                assertTrue(Files.exists(day1.resolve("1").resolve(p)), p + " is in the full of day 1");
                assertFalse(Files.exists(day2.resolve("1").resolve(p)), p + " was deleted on day 2");
            }
            Cli.run("umount", day1.toString()).ok();
            Cli.run("umount", day2.toString()).ok();
            assertEquals(0, m1.await(60), m1.stderr());
            assertEquals(0, m2.await(60), m2.stderr());
        }
        MountTest.assertNothingOfOursUnder(dir);
    }

    private static String id(JsonNode j) {
        return j.get("disks").get(0).get("backupId").asText();
    }
}
