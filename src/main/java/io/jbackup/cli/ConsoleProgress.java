package io.jbackup.cli;

import io.jbackup.engine.ProgressListener;
import io.jbackup.text.Human;

import org.slf4j.LoggerFactory;

import java.io.PrintStream;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * Progress on standard error: on a terminal a redrawn bar per disk with bytes done, rate and ETA; otherwise
 * nothing but messages (cron stays quiet, the command prints a one-line summary at the end).
 */
public final class ConsoleProgress implements ProgressListener {
    /** The log's time format ({@link LoggingMixin}). */
    private static final DateTimeFormatter TIME = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");
    private final PrintStream err;
    private final boolean tty;
    private final boolean timestamps;
    private final Map<String, State> disks = new LinkedHashMap<>();
    private int linesDrawn;

    private static final class State {
        final long total;
        final long start = System.nanoTime();
        long done;
        long read;
        boolean finished;

        State(long total) {
            this.total = total;
        }
    }

    public ConsoleProgress(PrintStream err, boolean tty) {
        this(err, tty, false);
    }

    /** @param timestamps prefix messages with the time of day, as the log lines at {@code -v} are */
    public ConsoleProgress(PrintStream err, boolean tty, boolean timestamps) {
        this.err = err;
        this.tty = tty;
        this.timestamps = timestamps;
    }

    /**
     * A progress listener for this process: a bar when stderr is a terminal and not quiet, else silent. Messages
     * carry a timestamp when the log is verbose ({@code -v}: INFO enabled), like the log lines around them.
     */
    public static ProgressListener forConsole(boolean quiet) {
        boolean tty = System.console() != null && !"dumb".equals(System.getenv("TERM"));
        if (quiet) {
            return ProgressListener.NONE;
        }
        return new ConsoleProgress(System.err, tty, LoggerFactory.getLogger(ConsoleProgress.class).isInfoEnabled());
    }

    @Override
    public synchronized void started(String disk, long totalBytes) {
        disks.put(disk, new State(totalBytes));
        redraw();
    }

    @Override
    public synchronized void progress(String disk, long doneBytes, long bytesRead) {
        State s = disks.get(disk);
        if (s != null) {
            s.done = doneBytes;
            s.read = bytesRead;
            redraw();
        }
    }

    @Override
    public synchronized void message(String disk, String text) {
        clear();
        String time = timestamps ? LocalTime.now().format(TIME) + " " : "";
        err.println(time + "jbackup: " + disk + ": " + text);
        redraw();
    }

    /** Printed like {@link #message}: one line per event (the engine does not log it as well). */
    @Override
    public void warning(String disk, String text) {
        message(disk, text);
    }

    @Override
    public synchronized void finished(String disk) {
        State s = disks.get(disk);
        if (s != null) {
            s.finished = true;
            s.done = s.total;
        }
        redraw();
        if (disks.values().stream().allMatch(x -> x.finished)) {
            linesDrawn = 0;
            disks.clear();
        }
    }

    private void clear() {
        if (!tty || linesDrawn == 0) {
            return;
        }
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < linesDrawn; i++) {
            sb.append("\033[1A\033[2K");
        }
        err.print(sb);
        linesDrawn = 0;
    }

    private void redraw() {
        if (!tty) {
            return;
        }
        clear();
        for (Map.Entry<String, State> e : disks.entrySet()) {
            err.println(line(e.getKey(), e.getValue()));
        }
        err.flush();
        linesDrawn = disks.size();
    }

    static String line(String disk, State s) {
        double secs = Math.max(1e-3, (System.nanoTime() - s.start) / 1e9);
        double frac = s.total == 0 ? 1 : Math.min(1, (double) s.done / s.total);
        int width = 24;
        int filled = (int) Math.round(frac * width);
        String bar = "#".repeat(filled) + "-".repeat(width - filled);
        double rate = s.done / secs;
        String eta = s.finished ? "done" : rate <= 0 ? "--:--" : "ETA " + duration((s.total - s.done) / rate);
        return String.format(Locale.ROOT, "%-16s [%s] %5.1f%% %9s / %-9s %9s/s read %-9s %s", shorten(disk), bar,
            frac * 100, bytes(s.done), bytes(s.total), bytes((long) rate), bytes(s.read), eta);
    }

    private static String shorten(String s) {
        return s.length() <= 16 ? s : "…" + s.substring(s.length() - 15);
    }

    /** 1536 -> "1.5 KiB": {@link Human#bytes(long)}. */
    public static String bytes(long n) {
        return Human.bytes(n);
    }

    static String duration(double secs) {
        long s = (long) secs;
        return s >= 3600 ? String.format(Locale.ROOT, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
            : String.format(Locale.ROOT, "%02d:%02d", s / 60, s % 60);
    }
}
