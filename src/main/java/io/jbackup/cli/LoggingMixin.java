package io.jbackup.cli;

import picocli.CommandLine.Option;

/**
 * {@code -v}/{@code -q}: log verbosity. SLF4J simple logs to standard error; standard output is kept for
 * command output. The level is set through system properties before the first logger is created, so
 * {@link Main} applies it by scanning the arguments early; this mixin documents the options.
 */
public final class LoggingMixin {
    @Option(names = {"-v", "--verbose"}, description = "More log output on standard error (-v info, -vv debug, -vvv trace).")
    boolean[] verbose = new boolean[0];

    @Option(names = {"-q", "--quiet"}, description = "Only errors on standard error, and on success nothing on "
        + "standard output but what was asked for (no summaries; list, show and dry runs still print).")
    boolean quiet;

    /** Configures slf4j-simple from the raw arguments; must run before any logger is created. */
    /** Whether {@code a} is {@code -v}, {@code -vv}, ...: without a regular expression, whose first use costs a
     * command's start about 15 ms in the interpreter. */
    private static boolean isVs(String a) {
        if (a.length() < 2 || a.charAt(0) != '-') {
            return false;
        }
        for (int i = 1; i < a.length(); i++) {
            if (a.charAt(i) != 'v') {
                return false;
            }
        }
        return true;
    }

    static void configure(String[] args) {
        int v = 0;
        boolean q = false;
        for (String a : args) {
            if (a.equals("--")) {
                break;
            }
            if (a.equals("--verbose")) {
                v++;
            } else if (a.equals("-q") || a.equals("--quiet")) {
                q = true;
            } else if (isVs(a)) {
                v += a.length() - 1;
            }
        }
        String level = q ? "error" : switch (v) {
            case 0 -> "warn";
            case 1 -> "info";
            case 2 -> "debug";
            default -> "trace";
        };
        setUnlessSet("org.slf4j.simpleLogger.defaultLogLevel", level);
        // the provider named, so that SLF4J does not look for one in META-INF/services of all 55 jars first (it
        // opens each of them: 50 ms of start-up)
        setUnlessSet("slf4j.provider", "org.slf4j.simple.SimpleServiceProvider");
        // without this SLF4J says on standard error that it loads the provider named above
        setUnlessSet("slf4j.internal.verbosity", "WARN");
        System.setProperty("org.slf4j.simpleLogger.logFile", "System.err");
        // timestamps only when asked for more output: at the default level a warning is one plain line
        System.setProperty("org.slf4j.simpleLogger.showDateTime", Boolean.toString(v >= 1));
        if (v >= 1) {
            // slf4j-simple builds a SimpleDateFormat whenever a format is set, shown or not: 35 ms of start-up
            System.setProperty("org.slf4j.simpleLogger.dateTimeFormat", "HH:mm:ss.SSS");
        }
        // the logger and thread names help a bug report, not a user reading a warning
        System.setProperty("org.slf4j.simpleLogger.showShortLogName", Boolean.toString(v >= 1));
        System.setProperty("org.slf4j.simpleLogger.showThreadName", Boolean.toString(v >= 2));
        System.setProperty("org.slf4j.simpleLogger.levelInBrackets", "true");
        // netty is chatty at debug
        System.setProperty("org.slf4j.simpleLogger.log.io.netty", v >= 3 ? "debug" : "warn");
    }

    /** Sets a system property to {@code value} unless the user set it (with -D in JBACKUP_OPTS). */
    private static void setUnlessSet(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }
}
