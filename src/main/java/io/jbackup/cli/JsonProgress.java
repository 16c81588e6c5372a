package io.jbackup.cli;

import io.jbackup.engine.ProgressListener;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The progress listener of a command run with {@code --json}: no bar, and the job's notes (why {@code auto} made a
 * full backup, a disk left out or skipped) and warnings (a reconnect, a disk that cannot be backed up) collected
 * for the JSON document's {@code "notes"}, each {@code {"disk", "level": "note"|"warning", "message"}}. Warnings are
 * printed on standard error as well, in the console's format ({@code jbackup: warning: DISK: TEXT}), so that a
 * scheduler that keeps only standard error still sees them.
 */
final class JsonProgress implements ProgressListener {
    private final PrintStream err;
    private final List<Map<String, String>> notes = new ArrayList<>();

    JsonProgress(PrintStream err) {
        this.err = err;
    }

    @Override
    public synchronized void message(String disk, String text) {
        notes.add(note(disk, "note", text));
    }

    @Override
    public synchronized void warning(String disk, String text) {
        notes.add(note(disk, "warning", text));
        err.println("jbackup: warning: " + disk + ": " + text);
    }

    /** What was collected so far, in order. */
    synchronized List<Map<String, String>> notes() {
        return List.copyOf(notes);
    }

    private static Map<String, String> note(String disk, String level, String text) {
        Map<String, String> m = new LinkedHashMap<>();
        m.put("disk", disk);
        m.put("level", level);
        m.put("message", text);
        return m;
    }
}
