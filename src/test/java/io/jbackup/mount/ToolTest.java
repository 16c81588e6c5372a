package io.jbackup.mount;

import io.jbackup.engine.Cancellation;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link Tool#execUntilDone}: a copy runs as long as it takes, and a cancellation kills it at once. */
class ToolTest {
    @Test
    void aCancelledRunIsKilledAndThrows() throws Exception {
        Cancellation cancel = new Cancellation();
        ScheduledExecutorService s = Executors.newSingleThreadScheduledExecutor();
        try {
            s.schedule(() -> cancel.cancel("test"), 300, TimeUnit.MILLISECONDS);
            long t0 = System.nanoTime();
            assertThrows(CancellationException.class, () -> Tool.execUntilDone(List.of("sleep", "30"), cancel));
            assertTrue(System.nanoTime() - t0 < 10_000_000_000L, "killed, not waited for");
        } finally {
            s.shutdownNow();
        }
    }

    @Test
    void aRunThatIsNotCancelledGivesItsResult() throws Exception {
        Tool.Result r = Tool.execUntilDone(List.of("sh", "-c", "echo out; echo err >&2; exit 3"), new Cancellation());
        assertEquals(new Tool.Result(3, "out\n", "err\n"), r);
    }
}
