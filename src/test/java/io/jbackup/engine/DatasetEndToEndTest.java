package io.jbackup.engine;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Cli;
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
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The realistic dataset of {@code ../shared/bench/make-dataset.sh} (an ext4 disk with two days of changes recorded
 * in bitmaps b1 and b2): full of day 1, incremental of day 2 through b1, incremental of day 3 through b2; every
 * restore must equal the day's raw image by SHA-256 (from the dataset's SHA256SUMS).
 *
 * <p>Runs when {@code -Djbackup.dataset=DIR} names a built dataset ({@code .ci/run} builds a 512 MiB one).
 */
class DatasetEndToEndTest {
    @TempDir
    Path dir;

    @Test
    void threeDayChainRestoresEachDayBitExact() throws IOException {
        Path data = dataset();
        Path repo = dir.resolve("repo");
        io.jbackup.store.Repository.init(repo, io.jbackup.store.RepositoryOptions.defaults(), null).close();
        threeDayChain(dir, data, List.of("--repo", repo.toString()));
    }

    /** The dataset named by {@code -Djbackup.dataset=DIR}; skips the test when none is given. */
    static Path dataset() {
        String ds = System.getProperty("jbackup.dataset", "");
        Assumptions.assumeTrue(!ds.isEmpty(), "set -Djbackup.dataset=DIR (built by make-dataset.sh) to run");
        Path data = Path.of(ds);
        assertTrue(Files.exists(data.resolve("SHA256SUMS")), "no dataset at " + data);
        return data;
    }

    /**
     * Backs up the three days of {@code data} into the initialized repository that {@code repoArgs} name, and
     * restores each day bit-exact.
     */
    static void threeDayChain(Path dir, Path data, List<String> repoArgs) throws IOException {
        String[][] steps = {{"base.day1.qcow2", null}, {"base.day2.qcow2", "b1"}, {"base.qcow2", "b2"}};
        String[] ids = new String[3];
        for (int i = 0; i < 3; i++) {
            String bitmap = steps[i][1];
            Proc.Background s = bitmap == null
                ? QemuImages.qemuNbd(dir, data.resolve(steps[i][0]), "qcow2", "-r", "-A")
                : QemuImages.qemuNbd(dir, data.resolve(steps[i][0]), "qcow2", "-r", "-A", "-B", bitmap);
            try (s) {
                List<String> a = new ArrayList<>(bitmap == null
                    ? List.of("full", "--disk", "vda", "--source", QemuImages.uriOf(s), "--json")
                    : List.of("incremental", "--disk", "vda", "--bitmap", bitmap, "--source", QemuImages.uriOf(s),
                        "--json"));
                a.addAll(repoArgs);
                JsonNode d = Cli.run(a.toArray(String[]::new)).ok().json().get("disks").get(0);
                assertEquals(bitmap == null ? "full" : "incremental", d.get("type").asText());
                ids[i] = d.get("backupId").asText();
            }
        }
        String sums = Files.readString(data.resolve("SHA256SUMS"));
        for (int i = 0; i < 3; i++) {
            Path out = dir.resolve("day" + (i + 1) + ".raw");
            List<String> a = new ArrayList<>(List.of("restore", "--disk", "vda", "--backup", ids[i], "--to",
                out.toString()));
            a.addAll(repoArgs);
            Cli.run(a.toArray(String[]::new)).ok();
            String sha = Proc.sha256(out);
            assertTrue(sums.contains(sha + "  day" + (i + 1) + ".raw"), "day " + (i + 1) + " restored as " + sha
                + ", expected per SHA256SUMS:\n" + sums);
            Files.delete(out);
        }
    }
}
