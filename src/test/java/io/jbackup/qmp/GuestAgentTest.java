package io.jbackup.qmp;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class GuestAgentTest {
    private static final Duration T = Duration.ofSeconds(5);

    @TempDir
    Path dir;

    @Test
    void syncSkipsStaleOutputAndFreezeThawRoundTrip() throws Exception {
        try (FakeGuestAgent fake = new FakeGuestAgent(dir.resolve("qga.sock"), c -> { })) {
            fake.staleOutput = true;
            try (GuestAgent g = GuestAgent.connect(fake.socket(), T)) {
                try (FsFreeze f = FsFreeze.freeze(g, T)) {
                    assertEquals(2, f.frozenCount());
                    assertTrue(fake.frozen());
                    assertEquals("frozen", g.freezeStatus());
                }
                assertFalse(fake.frozen(), "closing thaws");
                assertEquals("thawed", g.freezeStatus());
                QmpException e = assertThrows(QmpException.class, () -> g.execute("guest-exec", null));
                assertEquals("CommandNotFound", e.errorClass());
            }
            assertEquals(List.of("guest-sync-delimited", "guest-fsfreeze-freeze", "guest-fsfreeze-status",
                "guest-fsfreeze-thaw", "guest-fsfreeze-status", "guest-exec"), fake.commands());
        }
    }

    @Test
    void aRefusedOrSlowFreezeIsFollowedByAThaw() throws Exception {
        try (FakeGuestAgent fake = new FakeGuestAgent(dir.resolve("qga.sock"), c -> { })) {
            fake.failFreeze = "fsfreeze is blocked";
            try (GuestAgent g = GuestAgent.connect(fake.socket(), T)) {
                QmpException e = assertThrows(QmpException.class, () -> FsFreeze.freeze(g, T));
                assertTrue(e.getMessage().contains("fsfreeze is blocked"), e.getMessage());
                assertEquals("guest-fsfreeze-thaw", fake.commands().get(fake.commands().size() - 1));

                // the agent freezes, but only after the timeout: the thaw that follows undoes it
                fake.failFreeze = null;
                fake.freezeDelayMillis = 600;
                QmpTimeoutException t = assertThrows(QmpTimeoutException.class,
                    () -> FsFreeze.freeze(g, Duration.ofMillis(200)));
                assertTrue(t.getMessage().contains("did not answer guest-fsfreeze-freeze"), t.getMessage());
                assertFalse(fake.frozen(), "thawed after the late freeze");
                assertEquals("thawed", g.freezeStatus(), "the channel is in step again");
            }
        }
    }

    @Test
    void missingAgentSocket() {
        QmpConnectionException e = assertThrows(QmpConnectionException.class,
            () -> GuestAgent.connect(dir.resolve("none.sock"), T));
        assertTrue(e.getMessage().contains("no guest agent socket"), e.getMessage());
    }
}
