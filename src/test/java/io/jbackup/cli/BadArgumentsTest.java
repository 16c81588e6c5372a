package io.jbackup.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.jbackup.store.BackupSpec;
import io.jbackup.store.BackupWriter;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import io.jbackup.testutil.Cli;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;
import picocli.CommandLine.Model.OptionSpec;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Feeds every command of {@link JBackup#commandLine()} (found by walking the command tree, so a new command is
 * covered without touching this test) a table of ordinary mistakes, and checks that each one ends as a user error:
 * never exit 0, never exit 1 ("this looks like a bug"), one {@code jbackup: error:} line on stderr, nothing on
 * stdout, and with {@code --json} exactly one JSON error object on stdout.
 */
class BadArgumentsTest {
    private static final int CS = 64 * 1024;
    private static final String NO_SOCKET = "nbd+unix:///?socket=/nonexistent/jbackup-test.sock";

    @TempDir
    static Path tmp;

    static Path file;
    static Path missing;
    static Path empty;
    static Path repo;

    /** Commands that succeed (or run long) with no arguments at all; everything else must fail cleanly. */
    private static final Set<String> VALID_WITHOUT_ARGS = Set.of("help", "demo");

    /**
     * Arguments that get a command past its own option checks to the point where it opens the repository, for the
     * {@code --repo} cases. A command not listed gets none; the test then only asserts a clean user error.
     */
    private static final Map<String, List<String>> TO_THE_REPO = Map.ofEntries(
        Map.entry("full", List.of("--disk", "vda", "--source", NO_SOCKET)),
        Map.entry("incremental", List.of("--disk", "vda", "--bitmap", "b1", "--source", NO_SOCKET)),
        Map.entry("auto", List.of("--disk", "vda", "--bitmap", "b1", "--source", NO_SOCKET)),
        Map.entry("restore", List.of("--disk", "vda", "--to", "/nonexistent/x.raw")),
        Map.entry("serve", List.of("--socket", "/nonexistent/jbackup-serve.sock")),
        Map.entry("commit-overlay", List.of("--export", "vda@latest")),
        Map.entry("show", List.of("latest", "--disk", "vda")),
        Map.entry("protect", List.of("latest")),
        Map.entry("unprotect", List.of("latest")),
        Map.entry("forget", List.of("latest")),
        Map.entry("prune", List.of("--keep-last", "1")),
        Map.entry("repair", List.of("--rebuild-catalog")));

    @BeforeAll
    static void setUp() throws Exception {
        RepoOptions.env = Map.of();
        file = Files.writeString(tmp.resolve("a-file"), "not a repository\n");
        missing = tmp.resolve("missing");
        empty = Files.createDirectories(tmp.resolve("empty"));
        repo = tmp.resolve("repo");
        Cli.run("init", "--repo", repo.toString(), "--chunk-size", "64K").ok();
        try (Repository r = Repository.open(repo, OpenOptions.defaults());
             BackupWriter w = r.beginBackup(BackupSpec.full(null, "vda", 2L * CS))) {
            w.putChunk(0, new byte[CS], CS);
            byte[] b = new byte[CS];
            b[7] = 7;
            w.putChunk(1, b, CS);
            w.commit();
        }
    }

    @AfterAll
    static void restoreEnv() {
        RepoOptions.env = System.getenv();
    }

    /** One bad command line; {@code expected} is the exit code it must end with, or 0 for "any user error". */
    record Case(String name, List<String> args, int expected, String errorCode) {
        static Case of(String name, List<String> args) {
            return new Case(name, args, 0, null);
        }
    }

    /** Every leaf command as its path of names (aliases once). */
    static List<List<String>> commands() {
        List<List<String>> out = new ArrayList<>();
        walk(JBackup.commandLine(), new ArrayList<>(), out);
        assertTrue(out.size() > 20, "found only " + out);
        return out;
    }

    private static void walk(CommandLine cl, List<String> path, List<List<String>> out) {
        Map<CommandLine, Boolean> seen = new IdentityHashMap<>();
        for (Map.Entry<String, CommandLine> e : cl.getSubcommands().entrySet()) {
            CommandLine sub = e.getValue();
            if (seen.put(sub, true) != null) {
                continue;
            }
            List<String> p = new ArrayList<>(path);
            p.add(sub.getCommandName());
            if (sub.getSubcommands().isEmpty()) {
                out.add(p);
            } else {
                walk(sub, p, out);
            }
        }
    }

    private static CommandLine find(List<String> path) {
        CommandLine cl = JBackup.commandLine();
        for (String n : path) {
            cl = cl.getSubcommands().get(n);
        }
        return cl;
    }

    private static List<String> join(List<String> a, String... b) {
        List<String> l = new ArrayList<>(a);
        l.addAll(List.of(b));
        return l;
    }

    private static List<String> join(List<String> a, List<String> b, String... c) {
        return join(join(a, b.toArray(String[]::new)), c);
    }

    /** The generic cases, derived from each command's options. */
    static List<Case> genericCases() {
        List<Case> cases = new ArrayList<>();
        for (List<String> path : commands()) {
            String name = String.join(" ", path);
            CommandLine cl = find(path);
            if (!name.equals("help")) { // picocli's help command shows the usage for anything
                cases.add(Case.of(name + ": unknown option", join(path, "--no-such-option")));
            }
            if (!VALID_WITHOUT_ARGS.contains(name)) {
                cases.add(Case.of(name + ": no arguments", path));
            }
            for (OptionSpec o : cl.getCommandSpec().options()) {
                Class<?> t = o.type();
                if (t == int.class || t == long.class || t == double.class || t == Integer.class || t == Long.class
                    || t == Double.class) {
                    cases.add(new Case(name + ": " + o.longestName() + " not a number",
                        join(path, o.longestName(), "x1"), ExitCodes.USAGE, "usage"));
                }
            }
            if (cl.getCommandSpec().optionsMap().containsKey("--repo")) {
                List<String> rest = TO_THE_REPO.getOrDefault(name, List.of());
                cases.add(new Case(name + ": --repo is a regular file", join(path, rest, "--repo", file.toString()),
                    TO_THE_REPO.containsKey(name) || name.equals("init") ? ExitCodes.REPOSITORY : 0, null));
                // a mistyped s3:// is refused, not taken for a directory to create (init) or look in
                cases.add(new Case(name + ": --repo s3:/bucket (one slash)", join(path, rest, "--repo",
                    "s3:/fleet/x"), ExitCodes.USAGE, "usage"));
                if (!name.equals("init")) {
                    cases.add(Case.of(name + ": --repo does not exist", join(path, rest, "--repo", missing.toString())));
                    cases.add(Case.of(name + ": --repo is an empty directory", join(path, rest, "--repo",
                        empty.toString())));
                }
            }
        }
        return cases;
    }

    /** Command-specific mistakes against a real repository with one backup of disk vda. */
    static List<Case> specificCases() {
        String r = repo.toString();
        List<Case> c = new ArrayList<>();
        for (String cmd : List.of("show", "protect", "unprotect", "forget")) {
            c.add(new Case(cmd + ": unknown backup id", List.of(cmd, "--repo", r, "NOPE"), ExitCodes.USAGE,
                "not-found"));
        }
        c.add(new Case("restore: unknown backup id", List.of("restore", "--repo", r, "--disk", "vda", "--backup",
            "NOPE", "--to", tmp.resolve("out.raw").toString()), ExitCodes.USAGE, "not-found"));
        c.add(new Case("restore: unknown disk", List.of("restore", "--repo", r, "--disk", "vdz", "--to",
            tmp.resolve("out.raw").toString()), ExitCodes.USAGE, "not-found"));
        c.add(new Case("restore: unknown vm", List.of("restore", "--repo", r, "--vm", "nope", "--to",
            tmp.toString()), ExitCodes.USAGE, "not-found"));
        c.add(new Case("verify: unknown backup id", List.of("verify", "--repo", r, "--backup", "NOPE"),
            ExitCodes.USAGE, "not-found"));
        c.add(new Case("show: latest of an unknown disk", List.of("show", "--repo", r, "latest", "--disk", "vdz"),
            ExitCodes.USAGE, "not-found"));
        c.add(new Case("prune: unknown disk", List.of("prune", "--repo", r, "--keep-last", "1", "--disk", "vdz"),
            ExitCodes.USAGE, "not-found"));
        c.add(new Case("restore: --to a character device", List.of("restore", "--repo", r, "--disk", "vda", "--to",
            "/dev/null"), ExitCodes.USAGE, "usage"));
        c.add(new Case("restore: --to a directory for one disk", List.of("restore", "--repo", r, "--disk", "vda",
            "--to", tmp.toString()), ExitCodes.USAGE, "usage"));
        c.add(new Case("restore: --to in a missing directory", List.of("restore", "--repo", r, "--disk", "vda",
            "--to", "/nonexistent/x.raw"), ExitCodes.USAGE, "usage"));
        c.add(new Case("restore: bad time", List.of("restore", "--repo", r, "--disk", "vda", "--backup", "@yesterday",
            "--to", tmp.resolve("t.raw").toString()), ExitCodes.USAGE, "usage"));
        c.add(new Case("full: source socket does not exist", List.of("full", "--repo", r, "--disk", "vda", "--source",
            NO_SOCKET), ExitCodes.SOURCE, "source-unreachable"));
        c.add(new Case("full: not an NBD URI", List.of("full", "--repo", r, "--disk", "vda", "--source",
            "http://example.com/"), ExitCodes.USAGE, "usage"));
        c.add(new Case("full: --connections 0", List.of("full", "--repo", r, "--disk", "vda", "--source", NO_SOCKET,
            "--connections", "0"), ExitCodes.USAGE, "usage"));
        c.add(new Case("full: --buffer-size 0", List.of("full", "--repo", r, "--disk", "vda", "--source", NO_SOCKET,
            "--buffer-size", "0"), ExitCodes.USAGE, "usage"));
        c.add(new Case("full: bad disk name", List.of("full", "--repo", r, "--disk", "../etc", "--source",
            NO_SOCKET), ExitCodes.USAGE, "usage"));
        c.add(new Case("incremental: no --bitmap", List.of("incremental", "--repo", r, "--disk", "vda", "--source",
            NO_SOCKET), ExitCodes.USAGE, "usage"));
        c.add(new Case("inspect: source socket does not exist", List.of("inspect", NO_SOCKET), ExitCodes.SOURCE,
            "source-unreachable"));
        c.add(new Case("init: --chunk-size 3K", List.of("init", "--repo", tmp.resolve("r2").toString(),
            "--chunk-size", "3K"), ExitCodes.USAGE, "usage"));
        c.add(new Case("init: repository exists", List.of("init", "--repo", r), ExitCodes.REPOSITORY, null));
        c.add(new Case("prune: --keep-within 3x", List.of("prune", "--repo", r, "--keep-within", "3x"),
            ExitCodes.USAGE, "usage"));
        c.add(new Case("prune: no rule", List.of("prune", "--repo", r), ExitCodes.USAGE, "usage"));
        c.add(new Case("prune: --zone Mars", List.of("prune", "--repo", r, "--keep-last", "1", "--zone", "Mars/Base"),
            ExitCodes.USAGE, "usage"));
        c.add(new Case("gc: --max-wait -1", List.of("gc", "--repo", r, "--max-wait", "-1"), ExitCodes.USAGE,
            "usage"));
        c.add(new Case("list: --wait-lock -1", List.of("list", "--repo", r, "--wait-lock", "-1"), ExitCodes.USAGE,
            "usage"));
        c.add(new Case("verify: --sample 0", List.of("verify", "--repo", r, "--sample", "0"), ExitCodes.USAGE,
            "usage"));
        c.add(new Case("serve: --listen nonsense", List.of("serve", "--repo", r, "--listen", "nonsense"),
            ExitCodes.USAGE, "usage"));
        c.add(new Case("serve: --cache-size -1", List.of("serve", "--repo", r, "--socket", "/nonexistent/s.sock",
            "--cache-size", "-1"), ExitCodes.USAGE, "usage"));
        c.add(new Case("serve: cache bigger than the direct memory", List.of("serve", "--repo", r, "--socket",
            tmp.resolve("serve.sock").toString(), "--cache-size", "16000000"), ExitCodes.USAGE, "usage"));
        c.add(new Case("commit-overlay: no overlay", List.of("commit-overlay", "--repo", r, "--overlay",
            tmp.resolve("none.overlay").toString()), ExitCodes.USAGE, null));
        c.add(new Case("key export: plain repository", List.of("key", "export", "--repo", r), ExitCodes.REPOSITORY,
            null));
        c.add(new Case("log: unknown run", List.of("log", "--repo", r, "--run", "20260101-000000-abcdef"),
            ExitCodes.USAGE, "not-found"));
        c.add(new Case("log: --repo missing", List.of("log", "--repo", missing.toString()), ExitCodes.REPOSITORY,
            null));
        c.add(new Case("schedule: job file missing", List.of("schedule", "--config", missing.toString()),
            ExitCodes.USAGE, null));
        c.add(new Case("run-due: job file missing", List.of("run-due", "--config", missing.toString()),
            ExitCodes.USAGE, null));
        c.add(new Case("daemon: job file missing", List.of("daemon", "--config", missing.toString()),
            ExitCodes.USAGE, null));
        c.add(new Case("schedule: job file is not YAML", List.of("schedule", "--config", file.toString()),
            ExitCodes.USAGE, null));
        c.add(new Case("bitmap list: image missing", List.of("bitmap", "list", "--image", missing.toString()),
            ExitCodes.USAGE, "not-found"));
        c.add(new Case("repair: nothing to repair", List.of("repair", "--repo", r), ExitCodes.USAGE, "usage"));
        return c;
    }

    @TestFactory
    Stream<DynamicTest> everyCommandRejectsBadArgumentsAsAUserError() {
        return Stream.concat(genericCases().stream(), specificCases().stream())
            .map(c -> DynamicTest.dynamicTest(c.name() + " " + c.args(), () -> check(c)));
    }

    /** Whether the command the arguments name has {@code --json} (a few, such as serve, do not). */
    private static boolean hasJsonOption(List<String> args) {
        CommandLine cl = JBackup.commandLine();
        for (String a : args) {
            CommandLine sub = cl.getSubcommands().get(a);
            if (sub == null) {
                break;
            }
            cl = sub;
        }
        return cl.getCommandSpec().optionsMap().containsKey("--json");
    }

    private static int jsonValues(String stdout) throws java.io.IOException {
        int n = 0;
        try (var it = new ObjectMapper().readerFor(JsonNode.class).readValues(stdout)) {
            while (it.hasNext()) {
                it.next();
                n++;
            }
        }
        return n;
    }

    private static void check(Case c) throws Exception {
        Cli.Result plain = Cli.run(c.args().toArray(String[]::new));
        String what = c.args() + "\nexit " + plain.exitCode() + "\nstdout: " + plain.stdout() + "\nstderr: "
            + plain.stderr();
        assertNotEquals(0, plain.exitCode(), what);
        assertNotEquals(ExitCodes.INTERNAL, plain.exitCode(), what);
        if (c.expected() != 0) {
            assertEquals(c.expected(), plain.exitCode(), what);
        }
        assertEquals(1, plain.stderr().lines().filter(l -> l.startsWith("jbackup: error: ")).count(), what);
        assertFalse(plain.stderr().contains("looks like a bug"), what);
        assertEquals("", plain.stdout(), what);

        if (!hasJsonOption(c.args())) {
            return;
        }
        Cli.Result json = Cli.run(join(c.args(), "--json").toArray(String[]::new));
        String jwhat = c.args() + " --json\nexit " + json.exitCode() + "\nstdout: " + json.stdout() + "\nstderr: "
            + json.stderr();
        assertEquals(plain.exitCode(), json.exitCode(), jwhat);
        assertEquals(1, json.stderr().lines().filter(l -> l.startsWith("jbackup: error: ")).count(), jwhat);
        JsonNode n = json.json();
        assertTrue(n.isObject(), jwhat);
        assertEquals(1, jsonValues(json.stdout()), "exactly one JSON value on stdout: " + jwhat);
        assertEquals("error", n.path("status").asText(), jwhat);
        assertEquals(json.exitCode(), n.path("exitCode").asInt(), jwhat);
        String code = n.path("error").path("code").asText();
        assertTrue(code.matches("[a-z]+(-[a-z]+)*"), jwhat);
        if (c.errorCode() != null) {
            assertEquals(c.errorCode(), code, jwhat);
        }
        assertFalse(n.path("error").path("message").asText().isBlank(), jwhat);
    }
}
