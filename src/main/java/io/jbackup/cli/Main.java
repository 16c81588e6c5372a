package io.jbackup.cli;

import io.jbackup.nbd.client.NbdClient;

/** Entry point: configures logging, runs the command line and exits with its code. */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) {
        if (args.length == 1 && (args[0].equals("--version") || args[0].equals("-V"))) {
            // what picocli would print, without building the command line of every subcommand first (most of the
            // start-up time of a short command; see bench/README.md)
            for (String line : new VersionProvider().getVersion()) {
                System.out.println(line);
            }
            System.out.flush();
            System.exit(0);
        }
        LoggingMixin.configure(args);
        // the native libraries, SQLite, the JSON mapper, ... on a second thread while this one builds the command line
        StartupWarmup warm = StartupWarmup.start(args, System.getProperty(NativeLibraries.PROPERTY));
        picocli.CommandLine cl = JBackup.commandLineFor(args);
        warm.await();
        int code = cl.execute(args);
        Interrupts.reported(); // a SIGTERM handler waiting for the error report may exit now
        // no thread left in a native call: the JVM's exit would wait 0.3 s for it
        NbdClient.stopSharedThreads();
        System.exit(code);
    }
}
