package io.jbackup.packaging;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code .ci/install-deps}, which the README's test command and {@code .ci/run} run: it installs only the missing
 * Debian packages (apt-get update first, sudo when not root), and {@code --dry-run} lists them. apt-get, sudo, id and
 * dpkg-query are stand-ins here that record what they are asked.
 */
class InstallDepsTest {
    private static final Path BASE = Path.of("").toAbsolutePath();

    @TempDir
    Path tmp;

    private record Run(int exit, String stdout, String calls) {}

    /** Runs the script with stand-ins: only {@code missing} packages are not installed; {@code uid} is the user. */
    private Run run(List<String> missing, int uid, String... args) throws Exception {
        Path bin = Files.createDirectories(tmp.resolve("bin"));
        Path calls = tmp.resolve("calls");
        stub(bin, "dpkg-query", "for a; do p=$a; done\ncase \" " + String.join(" ", missing) + " \" in *\" $p \"*) "
            + "echo -n 'unknown ok not-installed';; *) echo -n 'install ok installed';; esac");
        stub(bin, "apt-get", "echo \"apt-get $*\" >> '" + calls + "'");
        stub(bin, "sudo", "echo \"sudo\" >> '" + calls + "'\nexec \"$@\"");
        stub(bin, "id", "echo " + uid);
        // QEMU 10 counts as extracted (a qemu-nbd that runs), so that only the Debian packages are at stake here
        Path qemu10 = tmp.resolve("qemu10");
        stub(Files.createDirectories(qemu10.resolve("usr/bin")), "qemu-nbd", "echo 'qemu-nbd 10.0.2'");
        List<String> cmd = new java.util.ArrayList<>(List.of(BASE.resolve(".ci/install-deps").toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT);
        Map<String, String> env = pb.environment();
        env.put("PATH", bin + ":" + env.get("PATH"));
        env.put("QEMU10_DIR", tmp.resolve("qemu10").toString());
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        int exit = p.waitFor();
        return new Run(exit, out, Files.exists(calls) ? Files.readString(calls) : "");
    }

    private static void stub(Path bin, String name, String body) throws IOException {
        Path f = bin.resolve(name);
        Files.writeString(f, "#!/bin/sh\n" + body + "\n");
        Files.setPosixFilePermissions(f, PosixFilePermissions.fromString("rwxr-xr-x"));
    }

    @Test
    void dryRunListsOnlyTheMissingPackagesAndInstallsNothing() throws Exception {
        Run r = run(List.of("nbdkit", "python3-libnbd", "sqlite3"), 0, "--dry-run");
        assertEquals(0, r.exit());
        assertEquals("nbdkit\npython3-libnbd\nsqlite3\n", r.stdout());
        assertEquals("", r.calls(), "a dry run runs no apt-get");

        Run none = run(List.of(), 0, "--dry-run");
        assertEquals(0, none.exit());
        assertEquals("", none.stdout());
    }

    @Test
    void installsTheMissingPackagesWithSudoAfterAnUpdate() throws Exception {
        Run r = run(List.of("qemu-utils", "nbd-server"), 1000);
        assertEquals(0, r.exit(), r.stdout());
        assertEquals("sudo\napt-get update -qq\nsudo\n"
            + "apt-get install -y -qq --no-install-recommends qemu-utils nbd-server\n", r.calls());

        Run again = run(List.of(), 1000);
        assertEquals(0, again.exit());
        assertEquals("sudo\napt-get update -qq\nsudo\n"
            + "apt-get install -y -qq --no-install-recommends qemu-utils nbd-server\n", again.calls(),
            "nothing missing: no apt-get at all");
    }

    @Test
    void asRootNeedsNoSudo() throws Exception {
        Run r = run(List.of("zstd"), 0);
        assertEquals(0, r.exit());
        assertEquals("apt-get update -qq\napt-get install -y -qq --no-install-recommends zstd\n", r.calls());
    }

    @Test
    void theReadmesTestCommandAndCiRunIt() throws Exception {
        assertTrue(Files.readString(BASE.resolve(".ci/run")).contains(".ci/install-deps"), ".ci/run calls it");
        assertTrue(Files.readString(BASE.resolve("README.md")).contains(".ci/install-deps && mvn -B -ntp verify"),
            "the README's test command installs what the tests need");
    }
}
