package io.jbackup.cli;

import com.github.luben.zstd.util.Native;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.zip.CRC32C;

/**
 * The native libraries of sqlite-jdbc and zstd-jni, extracted once into a directory beside the jar
 * ({@code JAR.native/}, by the launcher's {@code JBACKUP_CDS=dump} run that {@code mvn package} and install.sh make)
 * instead of by each run: left to themselves, both drivers copy their library out of their jar into /tmp on every
 * start, under a new name each time, and sqlite-jdbc first reads the whole library back from the jar to compare it
 * (about 0.1 CPU-s and 0.15 s of every command that opens a repository here; bench/README.md).
 *
 * <p>The launcher names the directory with {@code -Djbackup.native=DIR}. Files sit in directories named after the
 * library versions of this build ({@code sqlite-jdbc-VERSION/libsqlitejdbc.so},
 * {@code zstd-jni-VERSION/libzstd-jni-VERSION.so}, the versions from {@code version.properties}), so a directory
 * left by another build is not used, and {@code checksums} holds each file's CRC32C: a library that is missing,
 * damaged or does not load leaves that driver to its own extraction. Nothing here can stop a command.
 */
final class NativeLibraries {
    /** The system property naming the directory. */
    static final String PROPERTY = "jbackup.native";

    private NativeLibraries() {
    }

    /** The library versions this build was made with: {@code {sqlite-jdbc, zstd-jni}}, or null when unknown. */
    private static String[] versions() {
        try (InputStream in = NativeLibraries.class.getResourceAsStream("version.properties")) {
            if (in == null) {
                return null;
            }
            Properties p = new Properties();
            p.load(in);
            String sqlite = p.getProperty("sqlite");
            String zstd = p.getProperty("zstd");
            if (sqlite == null || zstd == null || sqlite.startsWith("$") || zstd.startsWith("$")) {
                return null;
            }
            return new String[] {sqlite, zstd};
        } catch (IOException e) {
            return null;
        }
    }

    /** Where sqlite-jdbc's library goes: its own name, in a directory of its version (so its fallback works). */
    static String sqliteFile(String version) {
        return "sqlite-jdbc-" + version + "/libsqlitejdbc.so";
    }

    static String zstdFile(String version) {
        return "zstd-jni-" + version + "/libzstd-jni-" + version + ".so";
    }

    /** The manifest written last by {@link #extract}: one line per library, {@code CRC32C-HEX RELATIVE-PATH}. */
    static final String CHECKSUMS = "checksums";

    /**
     * Makes both drivers load their library from {@code dir} when it holds this build's, intact (the CRC32C of each
     * file is checked against the manifest: a damaged library could crash the JVM where a missing one cannot);
     * otherwise changes nothing.
     */
    static void preset(String dir) {
        String[] v = versions();
        if (dir == null || dir.isEmpty() || v == null) {
            return;
        }
        Path d = Path.of(dir).toAbsolutePath();
        Map<String, String> sums = checksums(d);
        Path sqlite = d.resolve(sqliteFile(v[0]));
        if (intact(sqlite, sums.get(sqliteFile(v[0])))) {
            // sqlite-jdbc loads DIR/libsqlitejdbc.so first, and extracts its own copy if that fails
            System.setProperty("org.sqlite.lib.path", sqlite.getParent().toString());
            System.setProperty("org.sqlite.lib.name", sqlite.getFileName().toString());
            // before loading, the driver deletes its stale extracted copies from its temporary directory, listing all
            // of it (java.io.tmpdir: thousands of entries on a busy host, tens of ms in the interpreter); its own
            // directory holds one file. Only where this process may write there, so that the driver's fallback
            // (extracting its library when this one fails to load) still works.
            if (System.getProperty("org.sqlite.tmpdir") == null && Files.isWritable(sqlite.getParent())) {
                System.setProperty("org.sqlite.tmpdir", sqlite.getParent().toString());
            }
        }
        Path zstd = d.resolve(zstdFile(v[1]));
        if (intact(zstd, sums.get(zstdFile(v[1])))) {
            try {
                System.load(zstd.toString());
                Native.assumeLoaded();
            } catch (UnsatisfiedLinkError | SecurityException e) {
                // zstd-jni extracts its own copy when first used
            }
        }
    }

    private static Map<String, String> checksums(Path dir) {
        Map<String, String> m = new HashMap<>();
        try {
            for (String line : Files.readAllLines(dir.resolve(CHECKSUMS))) {
                int sp = line.indexOf(' ');
                if (sp > 0) {
                    m.put(line.substring(sp + 1), line.substring(0, sp));
                }
            }
        } catch (IOException e) {
            // no manifest: nothing is used
        }
        return m;
    }

    private static boolean intact(Path file, String crc) {
        try {
            return crc != null && crc.equals(crc32c(Files.readAllBytes(file)));
        } catch (IOException e) {
            return false;
        }
    }

    private static String crc32c(byte[] data) {
        CRC32C c = new CRC32C();
        c.update(data);
        return Long.toHexString(c.getValue());
    }

    /**
     * Extracts this platform's libraries (Linux; the drivers' own resource names) into {@code dir}, then writes the
     * manifest of their checksums; returns how many were written (0 on another platform or without the versions).
     */
    static int extract(Path dir) throws IOException {
        String[] v = versions();
        if (v == null || !System.getProperty("os.name", "").toLowerCase(Locale.ROOT).contains("linux")) {
            return 0;
        }
        String arch = System.getProperty("os.arch", "");
        String sqliteArch = switch (arch) {
            case "amd64", "x86_64" -> "x86_64";
            default -> arch;
        };
        StringBuilder manifest = new StringBuilder();
        copy("/org/sqlite/native/Linux/" + sqliteArch + "/libsqlitejdbc.so", dir, sqliteFile(v[0]), manifest);
        copy("/linux/" + arch + "/libzstd-jni-" + v[1] + ".so", dir, zstdFile(v[1]), manifest);
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, CHECKSUMS, ".tmp");
        Files.writeString(tmp, manifest);
        Files.move(tmp, dir.resolve(CHECKSUMS), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        return (int) manifest.chars().filter(ch -> ch == '\n').count();
    }

    private static void copy(String resource, Path dir, String name, StringBuilder manifest) throws IOException {
        byte[] data;
        try (InputStream in = NativeLibraries.class.getResourceAsStream(resource)) {
            if (in == null) {
                return;
            }
            data = in.readAllBytes();
        }
        Path target = dir.resolve(name);
        Files.createDirectories(target.getParent());
        Path tmp = Files.createTempFile(target.getParent(), target.getFileName().toString(), ".tmp");
        try {
            Files.write(tmp, data);
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(tmp);
        }
        manifest.append(crc32c(data)).append(' ').append(name).append('\n');
    }
}
