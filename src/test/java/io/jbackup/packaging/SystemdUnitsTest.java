package io.jbackup.packaging;

import io.jbackup.testutil.Proc;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every systemd unit we ship (distribution/systemd, installed by install.sh, and the copies in examples/systemd)
 * passes {@code systemd-analyze verify}, and the JVM options its {@code Environment=} line sets reach the JVM
 * through the launcher, as systemd splits that line.
 */
class SystemdUnitsTest {
    private static final Path BASE = Path.of("").toAbsolutePath();
    /** The ExecStart prefix of each shipped directory: install.sh substitutes @PREFIX@; the examples name /usr/local. */
    private static final List<String[]> SHIPPED = List.of(
        new String[] {"distribution/systemd", "@PREFIX@"},
        new String[] {"examples/systemd", "/usr/local"});

    @TempDir
    Path tmp;

    /** Installs the launcher under tmp/prefix (with a placeholder jar) and the units, ExecStart pointing at it. */
    private List<Path> installUnits() throws IOException {
        Path prefix = tmp.resolve("prefix");
        Files.createDirectories(prefix.resolve("bin"));
        Files.createDirectories(prefix.resolve("lib/jbackup"));
        Files.copy(BASE.resolve("distribution/bin/jbackup"), prefix.resolve("bin/jbackup"));
        Files.setPosixFilePermissions(prefix.resolve("bin/jbackup"), PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.createFile(prefix.resolve("lib/jbackup/jbackup.jar"));
        List<Path> units = new ArrayList<>();
        for (String[] shipped : SHIPPED) {
            Path out = Files.createDirectories(tmp.resolve(shipped[0].replace('/', '-')));
            try (Stream<Path> s = Files.list(BASE.resolve(shipped[0]))) {
                for (Path u : s.filter(p -> p.toString().endsWith(".service") || p.toString().endsWith(".timer"))
                    .sorted().toList()) {
                    String text = Files.readString(u).replace(shipped[1] + "/bin/jbackup", prefix + "/bin/jbackup");
                    units.add(Files.writeString(out.resolve(u.getFileName()), text));
                }
            }
        }
        assertEquals(6, units.size(), "three units in each shipped directory: " + units);
        return units;
    }

    @Test
    void everyShippedUnitPassesSystemdAnalyzeVerify() throws Exception {
        Assumptions.assumeTrue(Proc.onPath("systemd-analyze"), "systemd-analyze is not installed (.ci/install-deps installs it)");
        List<Path> units = installUnits();
        for (String dir : List.of("distribution-systemd", "examples-systemd")) {
            List<String> cmd = new ArrayList<>(List.of("systemd-analyze", "verify",
                // the man pages of Documentation= exist only after `mvn package`: distribution/test-install.sh
                // verifies the installed units with them
                "--man=no"));
            // a timer needs its service next to it: verify each directory's units together
            units.stream().filter(u -> u.getParent().getFileName().toString().equals(dir))
                .forEach(u -> cmd.add(u.toString()));
            Process p = new ProcessBuilder(cmd).directory(tmp.toFile()).redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(60, TimeUnit.SECONDS));
            assertFalse(out.contains("Invalid environment assignment"), out);
            assertFalse(out.toLowerCase().contains("ignoring"), out);
            for (Path u : units) {
                assertFalse(out.contains(u.getFileName().toString()), "systemd-analyze complains about " + u + ":\n" + out);
            }
            assertEquals(0, p.exitValue(), String.join(" ", cmd) + ":\n" + out);
        }
    }

    @Test
    void theLauncherReceivesEveryJvmOptionOfTheUnitsEnvironment() throws Exception {
        List<Path> units = installUnits();
        Path fakeJava = tmp.resolve("java");
        Path args = tmp.resolve("args");
        Files.writeString(fakeJava, "#!/bin/sh\nprintf '%s\\n' \"$@\" > '" + args + "'\n");
        Files.setPosixFilePermissions(fakeJava, PosixFilePermissions.fromString("rwxr-xr-x"));
        int services = 0;
        for (Path u : units) {
            if (!u.toString().endsWith(".service")) {
                continue;
            }
            services++;
            List<String> assignments = new ArrayList<>();
            for (String line : Files.readAllLines(u)) {
                if (line.startsWith("Environment=")) {
                    assignments.addAll(systemdWords(line.substring("Environment=".length())));
                }
            }
            // a command the units run (the launcher adds -XX:TieredStopAtLevel=1 to short ones such as --version,
            // -XX:CompileThresholdScaling=3 and an inlining rule to the others)
            ProcessBuilder pb = new ProcessBuilder(tmp.resolve("prefix/bin/jbackup").toString(), "run-due");
            pb.environment().remove("JBACKUP_OPTS");
            for (String a : assignments) {
                assertTrue(a.matches("[A-Za-z_][A-Za-z0-9_]*=.*"),
                    u.getFileName() + ": systemd ignores \"" + a + "\" (not VAR=VALUE; quote the whole assignment)");
                pb.environment().put(a.substring(0, a.indexOf('=')), a.substring(a.indexOf('=') + 1));
            }
            assertTrue(pb.environment().containsKey("JBACKUP_OPTS"), u + " sets JBACKUP_OPTS");
            pb.environment().put("JAVA", fakeJava.toString());
            Process p = pb.redirectErrorStream(true).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertEquals(0, p.waitFor(), out);
            List<String> jvmArgs = Files.readAllLines(args);
            List<String> options = jvmArgs.subList(0, jvmArgs.indexOf("-jar"));
            assertEquals(List.of("-XX:CompileThresholdScaling=3", "-XX:CompileCommand=quiet",
                "-XX:CompileCommand=dontinline,io.netty.buffer.PooledByteBuf::deallocate",
                "-XX:CompileCommand=CompileThresholdScaling,sun.security.provider.DigestBase::engineUpdate,0.05", "-Xmx512m",
                "-XX:+UseParallelGC"), options,
                u + ": the JVM options the launcher passes");
        }
        assertEquals(4, services);
    }

    /** Splits an Environment= value as systemd does: whitespace separates words, quotes group, backslash escapes. */
    static List<String> systemdWords(String value) {
        List<String> words = new ArrayList<>();
        StringBuilder w = null;
        char quote = 0;
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (quote == 0 && Character.isWhitespace(c)) {
                if (w != null) {
                    words.add(w.toString());
                    w = null;
                }
                continue;
            }
            if (w == null) {
                w = new StringBuilder();
            }
            if (c == '\\' && i + 1 < value.length() && quote != '\'') {
                w.append(value.charAt(++i));
            } else if (quote == 0 && (c == '"' || c == '\'')) {
                quote = c;
            } else if (c == quote) {
                quote = 0;
            } else {
                w.append(c);
            }
        }
        if (w != null) {
            words.add(w.toString());
        }
        return words;
    }
}
