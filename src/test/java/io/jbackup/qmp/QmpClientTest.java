package io.jbackup.qmp;

import com.fasterxml.jackson.databind.JsonNode;
import io.jbackup.testutil.Proc;
import io.jbackup.testutil.QemuImages;
import io.jbackup.testutil.StorageDaemon;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class QmpClientTest {
    private static final Duration T = Duration.ofSeconds(5);

    @TempDir
    Path dir;

    private Path sock() {
        return dir.resolve("qmp.sock");
    }

    @Test
    void greetingCapabilitiesIdsAndEventsInBetween() throws Exception {
        try (FakeQmpServer s = new FakeQmpServer(sock(), FakeQmpServer.GREETING, cmd -> switch (cmd.path("execute")
            .asText()) {
            case "query-status" -> FakeQmpServer.event("JOB_STATUS_CHANGE", "{\"status\": \"created\", \"id\": \"j1\"}")
                + FakeQmpServer.event("BLOCK_JOB_CANCELLED", "{\"device\": \"j1\", \"len\": 0}")
                + FakeQmpServer.reply(cmd, "{\"status\": \"running\", \"args\": " + cmd.path("arguments") + "}");
            default -> FakeQmpServer.error(cmd, "CommandNotFound", "The command " + cmd.path("execute").asText()
                + " has not been found");
        });
             QmpClient q = QmpClient.connect(sock(), T)) {
            assertEquals("7.2.22", q.version());
            assertTrue(q.versionAtLeast(7, 2) && q.versionAtLeast(5, 2) && !q.versionAtLeast(7, 3));
            List<QmpEvent> events = new CopyOnWriteArrayList<>();
            q.addListener(events::add);
            QmpClient.EventWait w = q.expect("cancel of j1", e -> e.name().equals("BLOCK_JOB_CANCELLED")
                && e.text("device").equals("j1"));
            JsonNode r = q.execute("query-status", QmpClient.args("n", 7, "flag", true, "list", List.of("a")));
            assertEquals("running", r.path("status").asText());
            assertEquals("{\"n\":7,\"flag\":true,\"list\":[\"a\"]}", r.path("args").toString());
            assertEquals("j1", w.await(T).text("device"));
            assertEquals(List.of("JOB_STATUS_CHANGE", "BLOCK_JOB_CANCELLED"),
                events.stream().map(QmpEvent::name).toList());
            assertEquals(1_700_000_000L, events.get(0).timestamp().getEpochSecond());

            QmpException e = assertThrows(QmpException.class, () -> q.execute("no-such-command"));
            assertEquals("CommandNotFound", e.errorClass());
            assertEquals("no-such-command", e.command());
            assertTrue(e.getMessage().contains("has not been found"), e.getMessage());

            List<JsonNode> got = s.received();
            assertEquals("qmp_capabilities", got.get(0).path("execute").asText());
            assertEquals(3, got.stream().map(j -> j.path("id").asText()).distinct().count(), "distinct ids");
        }
    }

    @Test
    void repliesAreMatchedByIdNotByOrder() throws Exception {
        CompletableFuture<JsonNode> slow = new CompletableFuture<>();
        FakeQmpServer[] server = new FakeQmpServer[1];
        server[0] = new FakeQmpServer(sock(), FakeQmpServer.GREETING, cmd -> {
            if (cmd.path("execute").asText().equals("slow")) {
                slow.complete(cmd);
                return "";
            }
            // answer the fast command, then the slow one
            return FakeQmpServer.reply(cmd, "\"fast\"") + FakeQmpServer.reply(slow.join(), "\"slow\"");
        });
        try (FakeQmpServer s = server[0]; QmpClient q = QmpClient.connect(sock(), T)) {
            CompletableFuture<JsonNode> first = CompletableFuture.supplyAsync(() -> {
                try {
                    return q.execute("slow");
                } catch (Exception e) {
                    throw new AssertionError(e);
                }
            });
            slow.get(5, TimeUnit.SECONDS);
            assertEquals("fast", q.execute("fast").asText());
            assertEquals("slow", first.get(5, TimeUnit.SECONDS).asText());
        }
    }

    @Test
    void aCommandWithoutReplyTimesOutAndTheLateReplyIsIgnored() throws Exception {
        CompletableFuture<JsonNode> hung = new CompletableFuture<>();
        try (FakeQmpServer s = new FakeQmpServer(sock(), FakeQmpServer.GREETING, cmd -> {
            if (cmd.path("execute").asText().equals("hang")) {
                hung.complete(cmd);
                return "";
            }
            return FakeQmpServer.reply(cmd, "1");
        });
             QmpClient q = QmpClient.connect(sock(), T)) {
            QmpTimeoutException e = assertThrows(QmpTimeoutException.class,
                () -> q.execute("hang", null, Duration.ofMillis(200)));
            assertTrue(e.getMessage().contains("hang got no reply") && e.getMessage().contains("200 ms"),
                e.getMessage());
            s.send(FakeQmpServer.reply(hung.get(), "99"));
            assertEquals(1, q.execute("next").asInt(), "the late reply is not taken for the next command");
        }
    }

    @Test
    void connectFailuresSayWhatIsWrong() throws Exception {
        QmpConnectionException missing = assertThrows(QmpConnectionException.class,
            () -> QmpClient.connect(dir.resolve("nope.sock"), T));
        assertTrue(missing.getMessage().contains("no QMP socket at"), missing.getMessage());

        try (FakeQmpServer s = new FakeQmpServer(sock(), "", cmd -> "")) {
            QmpTimeoutException busy = assertThrows(QmpTimeoutException.class,
                () -> QmpClient.connect(sock(), Duration.ofMillis(300)));
            assertTrue(busy.getMessage().contains("one client per monitor socket"), busy.getMessage());
        }
        try (FakeQmpServer s = new FakeQmpServer(sock(), "SSH-2.0-OpenSSH_9.2\r\n", cmd -> "")) {
            QmpConnectionException ssh = assertThrows(QmpConnectionException.class, () -> QmpClient.connect(sock(), T));
            assertTrue(ssh.getMessage().contains("does not speak QMP"), ssh.getMessage());
        }
        try (FakeQmpServer s = new FakeQmpServer(sock(), "{\"hello\": 1}\r\n", cmd -> "")) {
            QmpConnectionException other = assertThrows(QmpConnectionException.class,
                () -> QmpClient.connect(sock(), T));
            assertTrue(other.getMessage().contains("is not a QMP monitor"), other.getMessage());
        }
    }

    @Test
    void oversizedMessagesAndDroppedConnectionsFailPendingCommands() throws Exception {
        try (FakeQmpServer s = new FakeQmpServer(sock(), FakeQmpServer.GREETING,
            cmd -> FakeQmpServer.reply(cmd, "\"" + "x".repeat(8192) + "\""));
             QmpClient q = QmpClient.connect(sock(), T, 4096)) {
            QmpConnectionException e = assertThrows(QmpConnectionException.class, () -> q.execute("big"));
            assertTrue(e.getMessage().contains("exceeds 4096 bytes"), e.getMessage());
            assertFalse(q.isOpen());
            assertTrue(q.closed().isDone());
            QmpConnectionException after = assertThrows(QmpConnectionException.class, () -> q.execute("next"));
            assertTrue(after.getMessage().contains("exceeds 4096 bytes"), "the first cause is kept: " + after);
        }
        CompletableFuture<Void> asked = new CompletableFuture<>();
        try (FakeQmpServer s = new FakeQmpServer(sock(), FakeQmpServer.GREETING, cmd -> {
            asked.complete(null);
            return "";
        });
             QmpClient q = QmpClient.connect(sock(), T)) {
            QmpClient.EventWait w = q.expect("an event that never comes", e -> false);
            CompletableFuture<Throwable> pending = CompletableFuture.supplyAsync(() -> {
                try {
                    q.execute("query-block");
                    return null;
                } catch (Exception e) {
                    return e;
                }
            });
            asked.get(5, TimeUnit.SECONDS);
            s.disconnect();
            Throwable t = pending.get(5, TimeUnit.SECONDS);
            assertTrue(t instanceof QmpConnectionException && t.getMessage().contains("closed the connection"),
                String.valueOf(t));
            assertThrows(QmpConnectionException.class, () -> w.await(T));
        }
    }

    @Test
    void againstQemuStorageDaemon() throws Exception {
        Path img = QemuImages.qcow2(dir.resolve("d.qcow2"), "8M");
        try (StorageDaemon qsd = StorageDaemon.start(dir, img, false);
             QmpClient q = QmpClient.connect(qsd.qmp(), T)) {
            assertTrue(q.versionAtLeast(7, 2), q.version());
            // a job's life is reported through JOB_STATUS_CHANGE events
            Path file = dir.resolve("new.raw");
            QmpClient.EventWait concluded = q.expect("job mk concluding", e -> e.name().equals("JOB_STATUS_CHANGE")
                && e.text("id").equals("mk") && e.text("status").equals("concluded"));
            q.execute("blockdev-create", QmpClient.args("job-id", "mk", "options",
                QmpClient.args("driver", "file", "filename", file.toString(), "size", 1 << 20)));
            concluded.await(T);
            q.execute("job-dismiss", QmpClient.args("id", "mk"));
            assertEquals(1 << 20, java.nio.file.Files.size(file));

            q.execute("block-dirty-bitmap-add", QmpClient.args("node", "disk0", "name", "b1", "persistent", true));
            q.execute("block-dirty-bitmap-disable", QmpClient.args("node", "disk0", "name", "b1"));
            BlockNodes.Node n = BlockNodes.node(q, "disk0");
            assertEquals("qcow2", n.driver());
            assertEquals(8 << 20, n.size());
            BlockNodes.DirtyBitmap b = n.bitmap("b1").orElseThrow();
            assertTrue(b.persistent() && !b.recording() && !b.busy() && !b.inconsistent(), b.toString());
            assertEquals(List.of("disk0", "file0"), BlockNodes.nodes(q).stream().map(BlockNodes.Node::name).sorted()
                .toList());

            QmpException e = assertThrows(QmpException.class, () -> q.execute("block-dirty-bitmap-add",
                QmpClient.args("node", "nope", "name", "x")));
            assertTrue(e.description().contains("nope"), e.getMessage());
            IllegalArgumentException unknown = assertThrows(IllegalArgumentException.class,
                () -> BlockNodes.node(q, "nope"));
            assertTrue(unknown.getMessage().contains("disk0 (qcow2)"), unknown.getMessage());
            IllegalArgumentException noDevice = assertThrows(IllegalArgumentException.class,
                () -> BlockNodes.resolveDevice(q, "virtio-disk0"));
            assertTrue(noDevice.getMessage().contains("qemu-storage-daemon has no devices"), noDevice.getMessage());
        }
        assertTrue(Proc.run("qemu-img", "info", img.toString()).contains("b1"), "the bitmap was stored on exit");
    }
}
