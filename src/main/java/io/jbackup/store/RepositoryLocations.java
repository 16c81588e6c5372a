package io.jbackup.store;

import io.jbackup.error.UsageException;
import io.jbackup.objectstore.S3ObjectStore;
import io.jbackup.objectstore.S3Settings;
import io.jbackup.objectstore.S3Transfer;

import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.Map;

/**
 * Turns what {@code --repo} (or a job file's {@code repository:}) says into a {@link RepositoryLocation}: a directory,
 * or {@code s3://BUCKET[/PREFIX]} with the S3 options and this host's cache directory
 * ({@code --cache-dir}, else {@code $XDG_CACHE_HOME/jbackup}, else {@code ~/.cache/jbackup}).
 */
public final class RepositoryLocations {
    public static final String S3_SCHEME = "s3://";

    private RepositoryLocations() {
    }

    public static RepositoryLocation parse(String repo, String endpoint, String region, Boolean pathStyle, Path cacheDir,
                                    Map<String, String> env) {
        return parse(repo, endpoint, region, pathStyle, cacheDir, env, S3Options.NONE);
    }

    /**
     * {@link #parse(String, String, String, Boolean, Path, Map)} with the transfer options of an {@code s3://}
     * repository (ignored for a directory); a storage class that cannot hold a repository, or a bad value, is a
     * {@link UsageException}.
     */
    /**
     * Why {@code repo}, which does not start with {@code s3://}, is not a directory name either: another URL
     * scheme, or a mistyped {@code s3://} ({@code s3:/bucket}, {@code S3://bucket}), which would otherwise create a
     * local directory of that name. Empty for a plain path.
     */
    public static java.util.Optional<String> refuseUrl(String repo) {
        if (repo.regionMatches(true, 0, "s3:", 0, 3)) {
            return java.util.Optional.of("an S3 repository is written s3://BUCKET/PREFIX (lowercase, two slashes); "
                + "for a directory of that name write ./" + repo);
        }
        if (repo.matches("[a-zA-Z][a-zA-Z0-9+.-]*://.*")) {
            return java.util.Optional.of("only directories and s3://BUCKET/PREFIX are supported");
        }
        return java.util.Optional.empty();
    }

    public static RepositoryLocation parse(String repo, String endpoint, String region, Boolean pathStyle, Path cacheDir,
                                    Map<String, String> env, S3Options options) {
        if (options.storageClass() != null) {
            S3Transfer.storageClassProblem(options.storageClass()).ifPresent(p -> {
                throw new UsageException(p);
            });
        }
        if (!repo.startsWith(S3_SCHEME)) {
            refuseUrl(repo).ifPresent(why -> {
                throw new UsageException("repository " + repo + ": " + why);
            });
            return new RepositoryLocation.Local(Path.of(repo));
        }
        String rest = repo.substring(S3_SCHEME.length());
        while (rest.endsWith("/")) {
            rest = rest.substring(0, rest.length() - 1);
        }
        int slash = rest.indexOf('/');
        String bucket = slash < 0 ? rest : rest.substring(0, slash);
        String prefix = slash < 0 ? "" : rest.substring(slash + 1);
        if (!bucket.matches("[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")) {
            throw new UsageException("repository " + repo + ": '" + bucket + "' is not an S3 bucket name (3 to 63 "
                + "lowercase letters, digits, dots and hyphens); write s3://BUCKET/PREFIX");
        }
        if (prefix.contains("//") || prefix.startsWith("/") || prefix.contains("/./") || prefix.contains("/../")
            || prefix.equals(".") || prefix.equals("..") || prefix.startsWith("../") || prefix.startsWith("./")) {
            throw new UsageException("repository " + repo + ": the key prefix '" + prefix + "' has empty, '.' or '..' "
                + "segments");
        }
        S3Settings settings = S3Settings.of(bucket, prefix).withRegion(blankToNull(region)).withPathStyle(pathStyle);
        if (endpoint != null && !endpoint.isBlank()) {
            try {
                URI u = new URI(endpoint.trim());
                if (u.getScheme() == null || !(u.getScheme().equals("http") || u.getScheme().equals("https"))
                    || u.getHost() == null) {
                    throw new URISyntaxException(endpoint, "not an http:// or https:// URL");
                }
                settings = settings.withEndpoint(u);
            } catch (URISyntaxException e) {
                throw new UsageException("--s3-endpoint " + endpoint + " is not an http:// or https:// URL");
            }
        }
        S3Settings s;
        try {
            s = options.apply(settings);
        } catch (IllegalArgumentException e) {
            throw new UsageException("repository " + repo + ": " + e.getMessage(), e);
        }
        return new RepositoryLocation.Remote(s.describe(), () -> S3ObjectStore.open(s), cacheRoot(cacheDir, env));
    }

    /** {@code --cache-dir}, else {@code $XDG_CACHE_HOME/jbackup}, else {@code ~/.cache/jbackup}. */
    public static Path cacheRoot(Path cacheDir, Map<String, String> env) {
        if (cacheDir != null) {
            return cacheDir;
        }
        String xdg = env.get("XDG_CACHE_HOME");
        if (xdg != null && !xdg.isBlank() && Path.of(xdg).isAbsolute()) {
            return Path.of(xdg, "jbackup");
        }
        return Path.of(System.getProperty("user.home"), ".cache", "jbackup");
    }

    private static String blankToNull(String s) {
        return s == null || s.isBlank() ? null : s.trim();
    }
}
