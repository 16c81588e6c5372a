package io.jbackup.cli;

import io.jbackup.store.LockMode;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import picocli.CommandLine.Option;

import java.io.Console;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/** Repository options shared by every command that opens a repository (placeholder until the repository CLI lands). */
public final class RepoOptions {
    @Option(names = "--repo", paramLabel = "DIR", defaultValue = "${env:JBACKUP_REPO}",
        description = "Repository directory (default: $JBACKUP_REPO).")
    Path repo;

    @Option(names = "--passphrase-file", paramLabel = "FILE",
        description = "File holding the passphrase of an encrypted repository (else $JBACKUP_PASSPHRASE or a prompt).")
    Path passphraseFile;

    @Option(names = "--wait-lock", paramLabel = "SECONDS", defaultValue = "0",
        description = "Wait up to this long for a conflicting lock instead of failing (default: ${DEFAULT-VALUE}).")
    long waitLock;

    public Path dir() {
        if (repo == null) {
            throw new IllegalArgumentException("no repository: give --repo DIR or set JBACKUP_REPO");
        }
        return repo;
    }

    char[] passphrase() {
        try {
            if (passphraseFile != null) {
                return Files.readString(passphraseFile, StandardCharsets.UTF_8).strip().toCharArray();
            }
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot read --passphrase-file " + passphraseFile + ": " + e.getMessage());
        }
        String env = System.getenv("JBACKUP_PASSPHRASE");
        if (env != null) {
            return env.toCharArray();
        }
        Console c = System.console();
        if (c != null) {
            return c.readPassword("Passphrase for %s: ", dir());
        }
        throw new IllegalArgumentException("the repository is encrypted: give --passphrase-file FILE, set "
            + "JBACKUP_PASSPHRASE, or run on a terminal to be asked");
    }

    public Repository open(LockMode mode) throws IOException {
        return Repository.open(dir(), OpenOptions.defaults().withPassphrase(this::passphrase).withLockMode(mode)
            .withWaitLock(Duration.ofSeconds(waitLock)));
    }
}
