package io.jbackup.cli;

import io.jbackup.error.UsageException;
import io.jbackup.store.Encryption;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryConfig;
import io.jbackup.store.RepositoryLocation;
import io.jbackup.store.RepositoryOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.Console;
import java.io.PrintWriter;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code jbackup init}: creates a repository. */
@Command(name = "init", mixinStandardHelpOptions = true, description = "Create a backup repository in a new or empty directory, or under an unused prefix of an S3 "
        + "bucket.")
public final class InitCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Mixin
    RepoOptions repoOptions;

    @Mixin
    JsonMixin json;

    @Mixin
    LoggingMixin logging;

    @Option(names = "--chunk-size", paramLabel = "SIZE", defaultValue = "1M", converter = Sizes.class,
        description = "Default chunk size: a power of two from 64K to 4M (default: ${DEFAULT-VALUE}). Smaller chunks "
            + "deduplicate and track changes more finely; bigger ones mean fewer catalog rows.")
    long chunkSize;

    @Option(names = "--encryption", paramLabel = "none|aes-256-gcm",
        description = "Encrypt chunks with AES-256-GCM under a key sealed by a passphrase (default: none for a "
            + "directory; for s3:// jbackup asks on a terminal, and without one this option is required).")
    String encryption;

    @Option(names = "--compression-level", paramLabel = "N",
        defaultValue = "" + RepositoryOptions.DEFAULT_COMPRESSION_LEVEL,
        description = "zstd level 1..19, -1..-7 for zstd's fast levels (quicker, larger), or 0 to store uncompressed "
            + "(default: ${DEFAULT-VALUE}).")
    int compressionLevel;

    @Option(names = "--pack-size", paramLabel = "SIZE", defaultValue = "32M", converter = Sizes.class,
        description = "Target size of pack files, 1M..1G (default: ${DEFAULT-VALUE}).")
    long packSize;

    @Override
    public Integer call() throws Exception {
        if (chunkSize > Integer.MAX_VALUE) {
            throw new UsageException("--chunk-size " + chunkSize + " is not a power of two from 64K to 4M");
        }
        RepositoryLocation location = repoOptions.location();
        RepositoryOptions opts = new RepositoryOptions((int) chunkSize, Encryption.parse(encryption(location)),
            compressionLevel, packSize);
        char[] pass = opts.encryption() == Encryption.NONE ? null : repoOptions.newPassphrase();
        RepositoryConfig config;
        try (Repository repo = Repository.init(location, opts, pass)) {
            config = repo.config();
        } finally {
            if (pass != null) {
                Arrays.fill(pass, '\0');
            }
        }
        if (json.enabled()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("repository", location instanceof RepositoryLocation.Local l ? l.dir().toAbsolutePath().toString()
                : location.describe());
            m.put("id", config.id());
            m.put("formatVersion", config.formatVersion());
            m.put("chunkSize", config.defaultChunkSize());
            m.put("encryption", config.encryption().text());
            m.put("compressionLevel", config.compressionLevel());
            m.put("packSize", config.packSize());
            json.print(m);
            return ExitCodes.OK;
        }
        if (logging.quiet) {
            return ExitCodes.OK;
        }
        PrintWriter out = spec.commandLine().getOut();
        out.printf("Created repository %s (id %s): chunk size %s, encryption %s, zstd level %d.%n",
            location.describe(), config.id(), Sizes.format(config.defaultChunkSize()), config.encryption(),
            config.compressionLevel());
        if (config.encryption() != Encryption.NONE) {
            out.printf("Keep the passphrase and a copy of the key safe: without both, the backups cannot be read.%n"
                + "Save the key now with: jbackup key export --repo %s > jbackup-key.json%n", location.describe());
        }
        out.flush();
        return ExitCodes.OK;
    }

    /**
     * {@code --encryption}, or its default: none for a directory; for an object store, where encryption matters most,
     * the user is asked on a terminal and must choose explicitly without one.
     */
    private String encryption(RepositoryLocation location) {
        if (encryption != null) {
            return encryption;
        }
        if (location instanceof RepositoryLocation.Local) {
            return Encryption.NONE.text();
        }
        Console c = System.console();
        if (c == null) {
            throw new UsageException("a repository in an object store (" + location.describe() + ") should be "
                + "encrypted: pass --encryption aes-256-gcm (recommended; give the passphrase with JBACKUP_PASSPHRASE "
                + "or --passphrase-file FILE), or --encryption none to store the backups in plaintext. Nothing was "
                + "created");
        }
        String a = c.readLine("Encrypt the backups in %s with AES-256-GCM (recommended)? [Y/n] ", location.describe());
        return a == null || a.isBlank() || a.trim().toLowerCase(java.util.Locale.ROOT).startsWith("y")
            ? Encryption.AES_256_GCM.text() : Encryption.NONE.text();
    }
}
