package io.jbackup.schedule;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.store.FileMutex;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The state file of a job file: when each task (a job {@code job:NAME}, {@code verify}, {@code gc}) last ran and
 * how it ended. JSON, {@code {"tasks": {"job:web1": {"lastRun": "...", "status": "ok", "message": "...",
 * "run": "RUN-ID"}}}}. Updated read-modify-write under {@code FILE.lock} and replaced atomically (temporary file,
 * rename), so concurrent runs never lose each other's updates or leave half a file.
 */
public final class ScheduleState {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int MAX_FILE = 4 << 20;

    private ScheduleState() {
    }

    /** How a task last ended. */
    public record Entry(Instant lastRun, String status, String message, String run) {
    }

    /** The entries, or none if the file does not exist yet. */
    public static Map<String, Entry> read(Path file) throws IOException {
        Map<String, Entry> m = new LinkedHashMap<>();
        if (!Files.exists(file)) {
            return m;
        }
        if (Files.size(file) > MAX_FILE) {
            throw new IOException("state file " + file + " is over 4 MiB; move it away (the next run starts afresh)");
        }
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new IOException("state file " + file + " is not JSON (" + e.getMessage() + "); move it away (the next "
                + "run starts afresh)", e);
        }
        root.path("tasks").fields().forEachRemaining(e -> {
            JsonNode n = e.getValue();
            Instant t = null;
            try {
                t = n.hasNonNull("lastRun") ? Instant.parse(n.get("lastRun").asText()) : null;
            } catch (RuntimeException ignored) {
                // unreadable time: as if never run
            }
            m.put(e.getKey(), new Entry(t, n.path("status").asText(null), n.path("message").asText(null),
                n.path("run").asText(null)));
        });
        return m;
    }

    /** Records how {@code task} ended. */
    @SuppressWarnings("try") // the lock is held by the try block
    public static void update(Path file, String task, Entry entry) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        try (FileMutex m = FileMutex.acquire(file.resolveSibling(file.getFileName() + ".lock"), "state update",
            Duration.ofSeconds(60))) {
            Map<String, Entry> all = read(file);
            all.put(task, entry);
            ObjectNode root = JSON.createObjectNode();
            ObjectNode tasks = root.putObject("tasks");
            all.forEach((k, e) -> {
                ObjectNode n = tasks.putObject(k);
                n.put("lastRun", e.lastRun() == null ? null : e.lastRun().toString());
                n.put("status", e.status());
                n.put("message", e.message());
                n.put("run", e.run());
            });
            Path tmp = file.resolveSibling(file.getFileName() + ".tmp-" + ProcessHandle.current().pid());
            Files.write(tmp, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(root));
            Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        }
    }
}
