package io.jbackup.cli;

import io.jbackup.error.NotFoundException;
import io.jbackup.error.UsageException;
import io.jbackup.store.LockMode;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.store.RepositoryLocation;
import io.jbackup.store.RepositoryLocations;
import io.jbackup.store.S3Options;
import picocli.CommandLine.Option;

import java.io.Console;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Map;
import java.util.function.Supplier;

/**
 * Repository options shared by every command that opens a repository: {@code --repo DIR} (or {@code JBACKUP_REPO}),
 * the passphrase of an encrypted repository ({@code --passphrase-file FILE}, else {@code JBACKUP_PASSPHRASE}, else a
 * prompt when standard input is a terminal), and {@code --wait-lock[=DURATION]}.
 */
public final class RepoOptions {
    static final String ENV_REPO = "JBACKUP_REPO";
    static final String ENV_PASSPHRASE = "JBACKUP_PASSPHRASE";
    private static final int MAX_PASSPHRASE_FILE = 4096;

    /** The environment; replaced in tests. */
    static Map<String, String> env = System.getenv();

    @Option(names = "--repo", paramLabel = "DIR|s3://BUCKET/PREFIX",
        description = "Repository: a directory, or a bucket and key prefix of an S3 object store (default: $"
            + ENV_REPO + ").")
    String repo;

    @Option(names = "--s3-endpoint", paramLabel = "URL",
        description = "S3 endpoint of an s3:// repository (default: $AWS_ENDPOINT_URL_S3, else $AWS_ENDPOINT_URL, "
            + "else AWS).")
    String s3Endpoint;

    @Option(names = "--s3-region", paramLabel = "REGION",
        description = "S3 region (default: $AWS_REGION, else the profile's, else us-east-1 for a custom endpoint).")
    String s3Region;

    @Option(names = "--s3-path-style", arity = "0..1", fallbackValue = "true", paramLabel = "true|false",
        description = "Address the bucket in the path (http://HOST/BUCKET/KEY) rather than in the host name "
            + "(default: path style for a custom endpoint, virtual-hosted style for AWS).")
    Boolean s3PathStyle;

    @Option(names = "--limit-upload", paramLabel = "RATE", converter = UploadRate.class,
        description = "Cap the upload bandwidth to an s3:// repository, all uploads together: bytes per second, "
            + "e.g. 20M, 1G, 500K (default: no limit).")
    Long limitUpload;

    @Option(names = "--s3-storage-class", paramLabel = "CLASS",
        description = "S3 storage class of every object written: STANDARD, STANDARD_IA, ONEZONE_IA, "
            + "INTELLIGENT_TIERING, GLACIER_IR, REDUCED_REDUNDANCY... (GLACIER and DEEP_ARCHIVE are refused: they "
            + "cannot be read without a restore). Default: the bucket's, STANDARD.")
    String s3StorageClass;

    @Option(names = "--s3-retries", paramLabel = "N",
        description = "Retries of a failed S3 request (5xx, SlowDown, reset or stalled connection), with "
            + "exponential backoff (default: 7).")
    Integer s3Retries;

    @Option(names = "--s3-timeout", paramLabel = "DURATION", converter = WaitDuration.class,
        description = "Abandon and retry an S3 request attempt that takes longer: 30s, 2m... (default: 30s; uploads "
            + "get more time at the --limit-upload rate).")
    Duration s3Timeout;

    @Option(names = "--cache-dir", paramLabel = "DIR",
        description = "Where this host keeps the catalog cache of s3:// repositories (default: "
            + "$XDG_CACHE_HOME/jbackup, else ~/.cache/jbackup).")
    Path cacheDir;

    @Option(names = "--passphrase-file", paramLabel = "FILE",
        description = "Read the passphrase of an encrypted repository from the first line of FILE (default: $"
            + ENV_PASSPHRASE + ", else a prompt on the terminal).")
    Path passphraseFile;

    @Option(names = "--wait-lock", paramLabel = "DURATION", arity = "0..1", defaultValue = "0",
        fallbackValue = WaitDuration.UNLIMITED, converter = WaitDuration.class,
        description = "If another jbackup holds the repository lock, or (backups) is backing up the same disk, wait "
            + "up to DURATION for it instead of failing: 30s, 10m, 1h, a number of seconds; without a value, wait "
            + "as long as it takes (Ctrl-C stops waiting). Default: fail at once (exit 2 for a busy disk).")
    Duration waitLock;

    /** What {@code --repo} or {@code JBACKUP_REPO} says. */
    String repoArgument() {
        if (repo != null && !repo.isBlank()) {
            return repo;
        }
        String e = env.get(ENV_REPO);
        if (e != null && !e.isBlank()) {
            return e;
        }
        throw new UsageException("no repository given: pass --repo DIR (or s3://BUCKET/PREFIX) or set " + ENV_REPO);
    }

    /** The repository, from {@code --repo} or {@code JBACKUP_REPO}: a directory or an {@code s3://} location. */
    public RepositoryLocation location() {
        if (s3Retries != null && (s3Retries < 0 || s3Retries > 100)) {
            throw new UsageException("--s3-retries " + s3Retries + " must be between 0 and 100");
        }
        if (s3Timeout != null && s3Timeout.isZero()) {
            throw new UsageException("--s3-timeout must be longer than 0 seconds");
        }
        return RepositoryLocations.parse(repoArgument(), s3Endpoint, s3Region, s3PathStyle, cacheDir, env,
            new S3Options(s3Retries, s3Timeout, limitUpload, s3StorageClass));
    }

    /** The repository for messages: its directory or its {@code s3://} URL. */
    public String display() {
        return location().describe();
    }

    /**
     * The repository directory, from {@code --repo} or {@code JBACKUP_REPO}, for the commands that work on a local
     * repository only; an {@code s3://} location is refused with a clear message.
     */
    public Path repo() {
        RepositoryLocation l = location();
        if (l instanceof RepositoryLocation.Local local) {
            return local.dir();
        }
        throw new UsageException("this command works on a local repository directory, not on " + l.describe());
    }

    /** {@code --wait-lock}: how long to wait for a repository or disk lock (zero: not at all). */
    public Duration waitLock() {
        return waitLock == null ? Duration.ZERO : waitLock;
    }

    /**
     * Supplies the passphrase of an existing repository, asked only if the repository turns out to be encrypted;
     * null from the supplier when there is no source.
     */
    public Supplier<char[]> passphrase() {
        return () -> {
            char[] p = fromFileOrEnv();
            if (p != null) {
                return p;
            }
            Console c = System.console();
            return c == null ? null : c.readPassword("Passphrase for repository %s: ", display());
        };
    }

    /** A new passphrase for {@code init}: file, environment, or asked twice on the terminal; null if none. */
    public char[] newPassphrase() {
        char[] p = fromFileOrEnv();
        if (p != null) {
            return p;
        }
        return askTwice(display(), "nothing was created");
    }

    /**
     * A new passphrase typed twice on the terminal (no echo); null without a terminal. Typed differently: an
     * {@link IllegalArgumentException} ending with {@code outcome}.
     */
    static char[] askTwice(Object repo, String outcome) {
        Console c = System.console();
        if (c == null) {
            return null;
        }
        char[] first = c.readPassword("New passphrase for repository %s: ", repo);
        char[] second = c.readPassword("Repeat the passphrase: ");
        try {
            if (first == null || second == null || !Arrays.equals(first, second)) {
                throw new UsageException("the passphrases differ; " + outcome);
            }
            return first.clone();
        } finally {
            if (first != null) {
                Arrays.fill(first, '\0');
            }
            if (second != null) {
                Arrays.fill(second, '\0');
            }
        }
    }

    /** The passphrase from {@code --passphrase-file} or the environment, never a prompt; null if neither. */
    char[] fromFileOrEnv() {
        if (passphraseFile != null) {
            return readPassphraseFile(passphraseFile);
        }
        String e = env.get(ENV_PASSPHRASE);
        if (e != null && !e.isEmpty()) {
            return e.toCharArray();
        }
        return null;
    }

    static char[] readPassphraseFile(Path file) {
        byte[] b;
        try {
            if (Files.size(file) > MAX_PASSPHRASE_FILE) {
                throw new UsageException("passphrase file " + file + " is over " + MAX_PASSPHRASE_FILE
                    + " bytes; it should hold just the passphrase");
            }
            b = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new NotFoundException("passphrase file " + file + " does not exist");
        } catch (IOException e) {
            throw new UsageException("cannot read passphrase file " + file + ": " + e.getMessage(), e);
        }
        try {
            CharBuffer cb = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .decode(ByteBuffer.wrap(b));
            int end = 0;
            while (end < cb.limit() && cb.get(end) != '\n' && cb.get(end) != '\r') {
                end++;
            }
            char[] p = new char[end];
            cb.get(p, 0, end);
            Arrays.fill(cb.array(), '\0');
            if (p.length == 0) {
                throw new UsageException("passphrase file " + file + " is empty");
            }
            return p;
        } catch (CharacterCodingException e) {
            throw new UsageException("passphrase file " + file + " is not UTF-8 text");
        } finally {
            Arrays.fill(b, (byte) 0);
        }
    }

    /** Options to open the repository with {@code mode}. */
    public OpenOptions openOptions(LockMode mode) {
        return OpenOptions.defaults().withLockMode(mode).withWaitLock(waitLock()).withPassphrase(passphrase());
    }

    /**
     * Opens the repository (shared) for a command that reads only the catalog ({@code list}, {@code show}): an
     * encrypted repository opens without its key unless a passphrase is given by file or environment (no prompt).
     */
    public Repository openCatalog() throws IOException {
        return Repository.open(location(), OpenOptions.defaults().withLockMode(LockMode.SHARED).withWaitLock(waitLock())
            .withPassphrase(this::fromFileOrEnv).withKeyOptional(true));
    }

    /** Opens the repository with {@code mode}. */
    public Repository open(LockMode mode) throws IOException {
        return Repository.open(location(), openOptions(mode));
    }
}
