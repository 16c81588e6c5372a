package io.jbackup.cli;

import io.jbackup.store.Repository;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.concurrent.Callable;

/** {@code jbackup key ...}: repository key management. */
@Command(name = "key", mixinStandardHelpOptions = true, description = "Manage the key of an encrypted repository.",
    subcommands = {KeyCommand.Export.class})
public final class KeyCommand implements Runnable {
    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** {@code jbackup key export}: prints the sealed key file. */
    @Command(name = "export", mixinStandardHelpOptions = true, description = {"Print the repository's sealed key file (JSON) for safekeeping.",
        "It is useless without the passphrase, and the passphrase is useless without it: keep a copy of both "
            + "outside the repository."})
    public static final class Export implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Mixin
        RepoOptions repoOptions;

        @Mixin
        LoggingMixin logging;

        @Override
        public Integer call() throws Exception {
            String key = Repository.exportKey(repoOptions.repo());
            PrintWriter out = spec.commandLine().getOut();
            out.print(key.endsWith("\n") ? key : key + "\n");
            out.flush();
            return ExitCodes.OK;
        }
    }
}
