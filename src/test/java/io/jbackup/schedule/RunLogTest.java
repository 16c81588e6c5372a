package io.jbackup.schedule;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The order of {@code jbackup log}: newest first by start time, also for runs that started in the same second. */
class RunLogTest {
    @TempDir
    Path repo;

    @Test
    void runsOfOneSecondAreListedByTheirStartNotTheirRandomPart() throws Exception {
        Path logs = Files.createDirectories(repo.resolve(RunLog.DIR));
        // the later run of the second has the smaller random part: ids alone would put it last
        summary(logs, "20261207-154336-ffffff", "2026-12-07T15:43:36.100Z");
        summary(logs, "20261207-154336-000000", "2026-12-07T15:43:36.900Z");
        summary(logs, "20261207-154335-888888", "2026-12-07T15:43:35.500Z");
        // still running (no summary): its start is its log's first line, to the millisecond
        Files.writeString(logs.resolve("20261207-154336-111111.log"),
            "2026-12-07T15:43:36.950Z run 20261207-154336-111111: run-due --config j.yaml (pid 1)\n");
        assertEquals(List.of("20261207-154336-111111", "20261207-154336-000000", "20261207-154336-ffffff",
            "20261207-154335-888888"), RunLog.list(repo).stream().map(RunLog.Summary::id).toList());
    }

    private static void summary(Path logs, String id, String started) throws Exception {
        Files.writeString(logs.resolve(id + ".log"), started + " run " + id + ": run-due (pid 1)\n");
        Files.writeString(logs.resolve(id + ".json"), "{\"id\": \"" + id + "\", \"command\": \"run-due\", "
            + "\"started\": \"" + started + "\", \"finished\": \"" + started + "\", \"status\": \"ok\", "
            + "\"summary\": \"1 task\", \"failures\": []}");
    }
}
