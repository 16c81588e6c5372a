package io.jbackup.cli;

import io.jbackup.error.UsageException;
import io.jbackup.store.KeyInfo;
import io.jbackup.store.KeyManager;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code jbackup key ...}: the key slots of an encrypted repository (several passphrases, restic-style; see
 * {@link KeyManager}). The current passphrase comes as for every command ({@code --passphrase-file},
 * {@code JBACKUP_PASSPHRASE}, a prompt); a new one from {@code --new-passphrase-file} or typed twice on the terminal,
 * never from an argument.
 */
@Command(name = "key", mixinStandardHelpOptions = true,
    description = {"Manage the keys (passphrases) of an encrypted repository.",
        "Each key is the repository's master key sealed under its own passphrase; any key opens the repository. "
            + "Adding, removing or changing a key never rewrites backup data."},
    subcommands = {KeyCommand.ListKeys.class, KeyCommand.Add.class, KeyCommand.Passwd.class, KeyCommand.Remove.class,
        KeyCommand.Export.class})
public final class KeyCommand implements Runnable {
    @Spec
    CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    /** {@code --new-passphrase-file FILE}, else the terminal (twice). */
    static final class NewPassphrase {
        @Option(names = "--new-passphrase-file", paramLabel = "FILE",
            description = "Read the new passphrase from the first line of FILE (default: type it twice on the "
                + "terminal).")
        Path file;

        /** The new passphrase; {@code repo} names the repository in the prompt. */
        char[] read(String repo) {
            if (file != null) {
                return RepoOptions.readPassphraseFile(file);
            }
            char[] p = RepoOptions.askTwice(repo, "nothing was changed");
            if (p == null) {
                throw new UsageException("no new passphrase: give it with --new-passphrase-file FILE (its "
                    + "first line), or run on a terminal to type it twice; " + RepoOptions.ENV_PASSPHRASE
                    + " and --passphrase-file give the current one");
            }
            return p;
        }
    }

    /** What every key subcommand shares: the repository, logging, JSON output. */
    abstract static class KeySubcommand implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        RepoOptions repo;
        @Mixin
        LoggingMixin logging;

        KeyManager open() throws IOException {
            return KeyManager.open(repo.location(), repo.passphrase(), repo.waitLock());
        }

        /** Prints {@code text} on standard output, or {@code value} as JSON with {@code --json}. */
        int print(JsonMixin json, Object value, String text) {
            if (json != null && json.enabled()) {
                json.print(value);
            } else {
                PrintWriter out = spec.commandLine().getOut();
                out.println(text);
                out.flush();
            }
            return ExitCodes.OK;
        }
    }

    /** {@code jbackup key list}. */
    @Command(name = "list", mixinStandardHelpOptions = true,
        description = "List the keys: id, when and where each was added, its label; * marks the key whose passphrase "
            + "was given.")
    static final class ListKeys extends KeySubcommand {
        @Mixin
        JsonMixin json;

        @Override
        public Integer call() throws Exception {
            List<KeyInfo> keys;
            String current;
            try (KeyManager km = open()) {
                keys = km.list();
                current = km.currentId();
            }
            Map<String, Object> v = new LinkedHashMap<>();
            v.put("repository", repo.display());
            v.put("current", current);
            v.put("keys", keys);
            StringBuilder sb = new StringBuilder();
            String fmt = "%s %-12s  %-19s  %-16s  %s%n";
            sb.append(String.format(fmt, " ", "ID", "CREATED", "HOST", "LABEL"));
            for (KeyInfo k : keys) {
                sb.append(String.format(fmt, k.current() ? "*" : " ", k.id(), ListCommands.local(k.created()),
                    k.host() == null ? "-" : k.host(), k.problem() != null ? "UNREADABLE: " + k.problem()
                        : k.label() == null ? "" : k.label()));
            }
            sb.append(keys.size()).append(keys.size() == 1 ? " key" : " keys").append("; * = the one that opened it.");
            return print(json, v, sb.toString());
        }
    }

    /** {@code jbackup key add}. */
    @Command(name = "add", mixinStandardHelpOptions = true,
        description = "Add a key: the repository can then be opened with a new passphrase as well.")
    static final class Add extends KeySubcommand {
        @Mixin
        JsonMixin json;
        @Mixin
        NewPassphrase newPassphrase;

        @Option(names = "--label", paramLabel = "TEXT", description = "Whose or what key it is (shown by key list).")
        String label;

        @Override
        public Integer call() throws Exception {
            KeyInfo k;
            try (KeyManager km = open()) {
                char[] p = newPassphrase.read(repo.display());
                try {
                    k = km.add(p, label);
                } finally {
                    Arrays.fill(p, '\0');
                }
            }
            return print(json, k, "Added key " + k.id() + ". Keep a copy of the keys outside the repository: "
                + "jbackup key export");
        }
    }

    /** {@code jbackup key passwd}. */
    @Command(name = "passwd", mixinStandardHelpOptions = true,
        description = {"Change the passphrase of the key that opens the repository: a new key with the new passphrase "
            + "replaces it. Backup data is not rewritten."})
    static final class Passwd extends KeySubcommand {
        @Mixin
        JsonMixin json;
        @Mixin
        NewPassphrase newPassphrase;

        @Override
        public Integer call() throws Exception {
            KeyInfo k;
            String old;
            try (KeyManager km = open()) {
                old = km.currentId();
                char[] p = newPassphrase.read(repo.display());
                try {
                    k = km.passwd(p);
                } finally {
                    Arrays.fill(p, '\0');
                }
            }
            Map<String, Object> v = new LinkedHashMap<>();
            v.put("removed", old);
            v.put("added", k);
            return print(json, v, "Changed the passphrase: key " + old + " was replaced by key " + k.id()
                + ". The old passphrase no longer opens the repository (copies made by key export still open with it).");
        }
    }

    /** {@code jbackup key remove ID}. */
    @Command(name = "remove", mixinStandardHelpOptions = true,
        description = {"Remove a key: its passphrase no longer opens the repository.",
            "The last key is never removed, nor the key whose passphrase was given for this command."})
    static final class Remove extends KeySubcommand {
        @Mixin
        JsonMixin json;

        @Parameters(paramLabel = "ID", description = "Key id (or a unique prefix), from jbackup key list.")
        String id;

        @Override
        public Integer call() throws Exception {
            String removed;
            try (KeyManager km = open()) {
                removed = km.remove(id);
            }
            return print(json, Map.of("removed", removed), "Removed key " + removed + ".");
        }
    }

    /** {@code jbackup key export}: prints the sealed key slots. */
    @Command(name = "export", mixinStandardHelpOptions = true, description = {
        "Print the repository's sealed keys (JSON) for safekeeping; needs no passphrase.",
        "Without --id: every key, as {\"keys\": [{\"id\", \"file\", \"key\"}]}, where each \"key\" is the content of "
            + "keys/ID.key. With --id: that key file as it is.",
        "A key is useless without its passphrase, and the passphrase is useless without a key: keep a copy of both "
            + "outside the repository."})
    static final class Export implements Callable<Integer> {
        @Spec
        CommandSpec spec;
        @Mixin
        RepoOptions repoOptions;
        @Mixin
        LoggingMixin logging;

        @Option(names = "--id", paramLabel = "ID", description = "Export only this key (its file keys/ID.key).")
        String id;

        @Override
        public Integer call() throws Exception {
            String key = KeyManager.export(repoOptions.location(), id);
            PrintWriter out = spec.commandLine().getOut();
            out.print(key.endsWith("\n") ? key : key + "\n");
            out.flush();
            return ExitCodes.OK;
        }
    }
}
