package io.jbackup.schedule;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.BufferedWriter;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.SecureRandom;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * The log of one scheduled run, in the repository: {@code logs/RUN.log} (timestamped lines, written as the run
 * goes) and, once it ends, {@code logs/RUN.json} ({@code id, command, started, finished, status, summary,
 * failures}). Run ids look like backup ids: {@code yyyyMMdd-HHmmss-xxxxxx} (UTC start time, 24 random bits). The
 * newest {@value #KEEP} runs are kept.
 */
public final class RunLog implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(RunLog.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final DateTimeFormatter ID_TIME = DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss").withZone(ZoneOffset.UTC);
    private static final SecureRandom RANDOM = new SecureRandom();
    public static final String DIR = "logs";
    static final int KEEP = 500;
    private static final int MAX_SUMMARY_FILE = 1 << 20;

    private final Path dir;
    private final String id;
    private final String command;
    private final Instant started;
    private final BufferedWriter out;
    private boolean finished;

    /** A finished (or still running, or interrupted) run as listed by {@code jbackup log}. */
    public record Summary(String id, String command, Instant started, Instant finished, String status, String summary,
                          List<String> failures) {
    }

    private RunLog(Path dir, String id, String command, Instant started, BufferedWriter out) {
        this.dir = dir;
        this.id = id;
        this.command = command;
        this.started = started;
        this.out = out;
    }

    /** Starts the log of a run of {@code command} in {@code repoDir/logs}. */
    public static RunLog start(Path repoDir, String command) throws IOException {
        Path dir = repoDir.resolve(DIR);
        Files.createDirectories(dir);
        Instant now = Instant.now().truncatedTo(ChronoUnit.MILLIS);
        for (int attempt = 0; ; attempt++) {
            byte[] r = new byte[3];
            RANDOM.nextBytes(r);
            String id = ID_TIME.format(now) + "-" + HexFormat.of().formatHex(r);
            try {
                BufferedWriter w = Files.newBufferedWriter(dir.resolve(id + ".log"), StandardCharsets.UTF_8,
                    StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE);
                RunLog log = new RunLog(dir, id, command, now, w);
                log.line("run " + id + ": " + command + " (pid " + ProcessHandle.current().pid() + ")");
                trim(dir);
                return log;
            } catch (java.nio.file.FileAlreadyExistsException e) {
                if (attempt > 8) {
                    throw e;
                }
            }
        }
    }

    public String id() {
        return id;
    }

    public Path file() {
        return dir.resolve(id + ".log");
    }

    /** Appends a timestamped line (and logs it at info level). */
    public synchronized void line(String text) {
        LOG.info("{}", text);
        try {
            out.write(Instant.now().truncatedTo(ChronoUnit.MILLIS) + " " + text);
            out.newLine();
            out.flush();
        } catch (IOException e) {
            LOG.warn("cannot write run log {}: {}", file(), e.toString());
        }
    }

    /** Writes the summary file; the run is finished. */
    public synchronized void finish(String status, String summary, List<String> failures) throws IOException {
        line("finished: " + status + ": " + summary);
        ObjectNode n = JSON.createObjectNode();
        n.put("id", id);
        n.put("command", command);
        n.put("started", started.toString());
        n.put("finished", Instant.now().toString());
        n.put("status", status);
        n.put("summary", summary);
        failures.forEach(n.putArray("failures")::add);
        if (failures.isEmpty()) {
            n.putArray("failures");
        }
        Path tmp = dir.resolve(id + ".json.tmp");
        Files.write(tmp, JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(n));
        Files.move(tmp, dir.resolve(id + ".json"), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        finished = true;
    }

    @Override
    public synchronized void close() {
        try {
            if (!finished) {
                line("ended without a summary (interrupted?)");
            }
            out.close();
        } catch (IOException e) {
            LOG.debug("closing {}: {}", file(), e.toString());
        }
    }

    /** Every run in {@code repoDir/logs}, newest first. */
    public static List<Summary> list(Path repoDir) throws IOException {
        Path dir = repoDir.resolve(DIR);
        List<Summary> out = new ArrayList<>();
        if (!Files.isDirectory(dir)) {
            return out;
        }
        List<String> ids = new ArrayList<>();
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir, "*.log")) {
            for (Path p : s) {
                String n = p.getFileName().toString();
                ids.add(n.substring(0, n.length() - 4));
            }
        }
        for (String id : ids) {
            out.add(summary(repoDir, id));
        }
        // by start time to the millisecond: two runs in one second have ids that sort by their random part
        out.sort(java.util.Comparator.comparing(Summary::started, java.util.Comparator.nullsFirst(
            java.util.Comparator.<Instant>naturalOrder())).thenComparing(Summary::id).reversed());
        return out;
    }

    /** The summary of run {@code id}; a run without one is "running" or, if its log is older than a day, "ended?". */
    public static Summary summary(Path repoDir, String id) throws IOException {
        Path dir = repoDir.resolve(DIR);
        Path json = dir.resolve(id + ".json");
        if (Files.exists(json) && Files.size(json) <= MAX_SUMMARY_FILE) {
            JsonNode n = JSON.readTree(Files.readAllBytes(json));
            List<String> f = new ArrayList<>();
            n.path("failures").forEach(x -> f.add(x.asText()));
            return new Summary(id, n.path("command").asText(), parse(n.path("started").asText()),
                parse(n.path("finished").asText()), n.path("status").asText(), n.path("summary").asText(), f);
        }
        Path log = dir.resolve(id + ".log");
        if (!Files.exists(log)) {
            throw new NotFoundException("no run " + id + " in " + dir + "; list the runs with: jbackup log");
        }
        Instant started = null;
        try {
            started = java.time.LocalDateTime.parse(id.substring(0, 15),
                DateTimeFormatter.ofPattern("yyyyMMdd-HHmmss")).toInstant(ZoneOffset.UTC);
        } catch (RuntimeException e) {
            // not a run id we wrote: no start time
        }
        String firstLine;
        try (var lines = Files.lines(log, StandardCharsets.UTF_8)) {
            firstLine = lines.findFirst().orElse("");
        }
        Instant logged = parse(firstLine.split(" ", 2)[0]); // the first line's time, to the millisecond
        if (logged != null) {
            started = logged;
        }
        return new Summary(id, firstLine.replaceFirst("^\\S+ run \\S+: ", "").replaceFirst(" \\(pid \\d+\\)$", ""),
            started, null, "running or interrupted", "no summary yet", List.of());
    }

    private static Instant parse(String s) {
        try {
            return Instant.parse(s);
        } catch (RuntimeException e) {
            return null;
        }
    }

    /** The log file of run {@code id}. */
    public static Path logFile(Path repoDir, String id) {
        if (!id.matches("[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")) {
            throw new UsageException("'" + id + "' is not a run id (yyyyMMdd-HHmmss-xxxxxx); list the runs "
                + "with: jbackup log");
        }
        return repoDir.resolve(DIR).resolve(id + ".log");
    }

    private static void trim(Path dir) throws IOException {
        List<Path> logs = new ArrayList<>();
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir, "*.log")) {
            s.forEach(logs::add);
        }
        if (logs.size() <= KEEP) {
            return;
        }
        logs.sort(null);
        for (Path p : logs.subList(0, logs.size() - KEEP)) {
            String n = p.getFileName().toString();
            Files.deleteIfExists(p);
            Files.deleteIfExists(dir.resolve(n.substring(0, n.length() - 4) + ".json"));
        }
    }
}
