package io.jbackup.packaging;

import io.jbackup.cli.Main;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * An installed layout of jbackup for tests of the real launcher: PREFIX/bin/jbackup (distribution/bin/jbackup),
 * PREFIX/lib/jbackup/jbackup.jar made from the compiled classes with the real manifest's main class and relative
 * class path, and PREFIX/lib/jbackup/lib/ linking the test class path's jars.
 */
final class InstalledLayout {
    private static final Path BASE = Path.of("").toAbsolutePath();

    /** What a launcher run left: its exit code and both outputs. */
    record Run(int exit, String stdout, String stderr) {}

    final Path prefix;
    final Path jar;

    private InstalledLayout(Path prefix, Path jar) {
        this.prefix = prefix;
        this.jar = jar;
    }

    static InstalledLayout install(Path prefix) throws Exception {
        Path bin = Files.createDirectories(prefix.resolve("bin"));
        Path libDir = Files.createDirectories(prefix.resolve("lib/jbackup/lib"));
        Files.copy(BASE.resolve("distribution/bin/jbackup"), bin.resolve("jbackup"));
        Files.setPosixFilePermissions(bin.resolve("jbackup"), PosixFilePermissions.fromString("rwxr-xr-x"));
        List<String> classPath = new ArrayList<>();
        for (String e : System.getProperty("java.class.path").split(java.io.File.pathSeparator)) {
            Path p = Path.of(e);
            if (e.endsWith(".jar") && Files.isRegularFile(p) && !Files.exists(libDir.resolve(p.getFileName()))) {
                Files.createSymbolicLink(libDir.resolve(p.getFileName()), p.toAbsolutePath());
                classPath.add("lib/" + p.getFileName());
            }
        }
        Path jar = prefix.resolve("lib/jbackup/jbackup.jar");
        writeJar(Path.of(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI()), jar, classPath);
        return new InstalledLayout(prefix, jar);
    }

    /** The classes directory as a jar with the manifest of the real one (main class, relative class path). */
    private static void writeJar(Path classes, Path out, List<String> classPath) throws IOException {
        Manifest m = new Manifest();
        m.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        m.getMainAttributes().put(Attributes.Name.MAIN_CLASS, "io.jbackup.cli.Main");
        m.getMainAttributes().put(Attributes.Name.CLASS_PATH, String.join(" ", classPath));
        try (JarOutputStream j = new JarOutputStream(Files.newOutputStream(out), m);
             Stream<Path> files = Files.walk(classes)) {
            for (Path f : files.filter(Files::isRegularFile).sorted().toList()) {
                j.putNextEntry(new JarEntry(classes.relativize(f).toString().replace('\\', '/')));
                Files.copy(f, j);
                j.closeEntry();
            }
        }
    }

    /**
     * Runs PREFIX/bin/jbackup with {@code args}, JAVA set to this test's JVM unless {@code env} sets it, without
     * JBACKUP_OPTS or JBACKUP_CDS from the environment unless {@code env} sets them.
     */
    Run launch(Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(prefix.resolve("bin/jbackup").toString()));
        cmd.addAll(Arrays.asList(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().remove("JBACKUP_OPTS");
        pb.environment().remove("JBACKUP_CDS");
        pb.environment().put("JAVA", Path.of(System.getProperty("java.home"), "bin", "java").toString());
        pb.environment().putAll(env);
        Path out = Files.createTempFile(prefix, "out", ".txt");
        Path err = Files.createTempFile(prefix, "err", ".txt");
        Process p = pb.redirectOutput(out.toFile()).redirectError(err.toFile()).start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "launcher did not finish: " + cmd);
        return new Run(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8),
            Files.readString(err, StandardCharsets.UTF_8));
    }
}
