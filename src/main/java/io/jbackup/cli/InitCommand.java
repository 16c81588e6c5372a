package io.jbackup.cli;

import io.jbackup.error.UsageException;
import io.jbackup.store.Encryption;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryConfig;
import io.jbackup.store.RepositoryOptions;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.PrintWriter;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code jbackup init}: creates a repository. */
@Command(name = "init", mixinStandardHelpOptions = true, description = "Create a backup repository in a new or empty directory.")
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

    @Option(names = "--encryption", paramLabel = "none|aes-256-gcm", defaultValue = "none",
        description = "Encrypt chunks with AES-256-GCM under a key sealed by a passphrase (default: ${DEFAULT-VALUE}).")
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
        RepositoryOptions opts = new RepositoryOptions((int) chunkSize, Encryption.parse(encryption), compressionLevel,
            packSize);
        char[] pass = opts.encryption() == Encryption.NONE ? null : repoOptions.newPassphrase();
        RepositoryConfig config;
        try (Repository repo = Repository.init(repoOptions.repo(), opts, pass)) {
            config = repo.config();
        } finally {
            if (pass != null) {
                Arrays.fill(pass, '\0');
            }
        }
        if (json.enabled()) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("repository", repoOptions.repo().toAbsolutePath().toString());
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
            repoOptions.repo(), config.id(), Sizes.format(config.defaultChunkSize()), config.encryption(),
            config.compressionLevel());
        if (config.encryption() != Encryption.NONE) {
            out.printf("Keep the passphrase and a copy of the key safe: without both, the backups cannot be read.%n"
                + "Save the key now with: jbackup key export --repo %s > jbackup-key.json%n", repoOptions.repo());
        }
        out.flush();
        return ExitCodes.OK;
    }
}
