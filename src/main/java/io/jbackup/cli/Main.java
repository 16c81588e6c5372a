package io.jbackup.cli;

/** Entry point: configures logging, runs the command line and exits with its code. */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) {
        LoggingMixin.configure(args);
        int code = JBackup.commandLine().execute(args);
        System.exit(code);
    }
}
