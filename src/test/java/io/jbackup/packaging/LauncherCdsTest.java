package io.jbackup.packaging;

import io.jbackup.packaging.InstalledLayout.Run;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The launcher's class data sharing archive (distribution/bin/jbackup, JBACKUP_CDS): {@code JBACKUP_CDS=dump} writes
 * JAR.jsa next to the jar and later runs use it, checksummed by the JVM only once the file was written to after the
 * dump; a damaged archive (truncated, bytes flipped, garbage, empty) or one that no longer matches the jar is
 * ignored: {@code jbackup --version} still exits 0 and prints the version and
 * nothing else, with nothing on standard error. Runs the real launcher on an installed layout (PREFIX/bin/jbackup,
 * PREFIX/lib/jbackup/jbackup.jar, lib/jbackup/lib/) made from the compiled classes and the test class path.
 */
class LauncherCdsTest {
    @TempDir
    static Path prefix;

    private static InstalledLayout layout;
    private static Path jar;
    private static Path jsa;
    private static byte[] goodArchive;
    private static String goodSize;
    private static String expectedVersion;
    private static String repo;
    private static String expectedList;

    @BeforeAll
    static void install() throws Exception {
        layout = InstalledLayout.install(prefix);
        jar = layout.jar;
        jsa = prefix.resolve("lib/jbackup/jbackup.jsa");

        expectedVersion = launch(Map.of("JBACKUP_CDS", "off"), "--version").stdout();
        assertTrue(expectedVersion.startsWith("jbackup ") && expectedVersion.contains("\nJava "), expectedVersion);

        repo = prefix.resolve("repo").toString();
        assertEquals(0, launch(Map.of("JBACKUP_CDS", "off"), "init", "--repo", repo, "--encryption", "none").exit());
        Run list = launch(Map.of("JBACKUP_CDS", "off"), "list", "--repo", repo);
        assertEquals(0, list.exit(), list.toString());
        expectedList = list.stdout();

        Run dump = launch(Map.of("JBACKUP_CDS", "dump"));
        assertEquals(0, dump.exit(), dump.toString());
        assertFalse(dump.stderr().contains("failed"), "every training command ran: " + dump);
        assertTrue(Files.size(jsa) > 0, "no archive written");
        goodArchive = Files.readAllBytes(jsa);
        // "SIZE INODE CHANGE-TIME" of the archive as the dump left it
        String stamp = Files.readString(prefix.resolve("lib/jbackup/jbackup.jsa.size")).trim();
        goodSize = stamp.split(" ")[0];
        assertEquals(String.valueOf(goodArchive.length), goodSize, stamp);
        assertTrue(stamp.matches("\\d+ \\d+ \\d{4}-\\d\\d-\\d\\d .+"), stamp);
    }

    private static Run launch(Map<String, String> env, String... args) throws Exception {
        return layout.launch(env, args);
    }

    /** Puts {@code bytes} in place as the archive, and its size file saying {@code size}. */
    private static void archive(byte[] bytes, String size) throws IOException {
        Files.deleteIfExists(jsa);
        Files.write(jsa, bytes);
        Files.writeString(prefix.resolve("lib/jbackup/jbackup.jsa.size"), size + "\n");
    }

    private static void assertVersionOnly(String what) throws Exception {
        Run r = launch(Map.of(), "--version");
        assertEquals(0, r.exit(), what + ": " + r);
        assertEquals(expectedVersion, r.stdout(), what + ": stdout");
        assertEquals("", r.stderr(), what + ": stderr");
    }

    @Test
    void anIntactArchiveIsUsed() throws Exception {
        archive(goodArchive, goodSize);
        Path log = prefix.resolve("classes.log");
        Run r = launch(Map.of("JBACKUP_OPTS", "-Xlog:class+load:file=" + log), "list", "--help");
        assertEquals(0, r.exit(), r.toString());
        assertTrue(r.stdout().contains("Usage: jbackup list"), r.stdout());
        String loaded = Files.readString(log);
        assertTrue(loaded.contains("io.jbackup.cli.JBackup source: shared objects file"),
            "the jbackup classes did not come from the archive");
        // picocli's classes are of class file version 49, which JDK 17 archives only in a static archive (checked on
        // Java 17, which CI runs; Java 25's archive leaves them out, as a run of the suite there showed)
        if (Runtime.version().feature() == 17) {
            assertTrue(loaded.contains("picocli.CommandLine source: shared objects file"),
                "picocli's classes did not come from the archive");
        }
        assertVersionOnly("intact archive");
        // the S3 client's classes too (trained against an S3 endpoint in memory): here a refused connection
        Path s3log = prefix.resolve("s3-classes.log");
        Run s3 = launch(Map.of("JBACKUP_OPTS", "-Xlog:class+load:file=" + s3log, "AWS_ACCESS_KEY_ID", "k",
            "AWS_SECRET_ACCESS_KEY", "s"), "list", "--repo", "s3://bucket/x", "--s3-endpoint", "http://127.0.0.1:1",
            "--s3-region", "us-east-1", "--s3-retries", "0", "--cache-dir", prefix.resolve("s3-cache").toString());
        assertEquals(5, s3.exit(), s3.toString());
        assertTrue(Files.readString(s3log).contains("software.amazon.awssdk.services.s3.DefaultS3Client source: shared "
            + "objects file"), "the S3 client's classes did not come from the archive");
        Run list = launch(Map.of(), "list", "--repo", repo);
        assertEquals(0, list.exit(), list.toString());
        assertEquals(expectedList, list.stdout());
        assertEquals("", list.stderr());
    }

    /**
     * The built-in demo (a full, an incremental, a restore and a serve) defines almost no method-handle classes at
     * run time. Each one is generated with ASM and loaded at start-up (about 1 ms each, and ASM itself then becomes
     * hot enough for the optimising compiler): string concatenation through invokedynamic spun about 50, and a
     * record's generated {@code hashCode} (BackupEngine.DiskKey) 14 (bench/README.md, "Start-up without spun
     * classes").
     */
    @Test
    void aBackupAndRestoreSpinNoMethodHandleClasses() throws Exception {
        archive(goodArchive, goodSize);
        Path log = prefix.resolve("demo-classes.log");
        Run r = launch(Map.of("JBACKUP_OPTS", "-Xmx512m -XX:+UseParallelGC -Xlog:class+load:file=" + log),
            "demo", "--builtin");
        assertEquals(0, r.exit(), r.toString());
        List<String> spun = Files.readAllLines(log).stream().filter(l -> l.contains("java.lang.invoke.LambdaForm$MH/"))
            .toList();
        assertTrue(spun.size() <= 5, spun.size() + " method-handle classes spun at run time (2 expected): a record's"
            + " equals/hashCode/toString first used on this path, or string concatenation compiled to invokedynamic"
            + " (pom.xml: -XDstringConcat=inline)\n" + String.join("\n", spun));
    }

    /** {@code --version} with the JVM's flags printed first: whether the archive was checksummed before use. */
    private static boolean checksummed(String what) throws Exception {
        Run r = launch(Map.of("JBACKUP_OPTS", "-XX:+PrintCommandLineFlags -Xmx512m -XX:+UseParallelGC"), "--version");
        assertEquals(0, r.exit(), what + ": " + r);
        String flags = r.stdout().substring(0, r.stdout().indexOf('\n') + 1);
        assertTrue(flags.contains("-XX:SharedArchiveFile="), what + ": the archive is not used: " + flags);
        assertEquals(expectedVersion, r.stdout().substring(flags.length()), what + ": stdout");
        assertEquals("", r.stderr(), what + ": stderr");
        return flags.contains("-XX:+VerifySharedSpaces");
    }

    @Test
    void onlyAnArchiveWrittenToSinceTheDumpIsChecksummed() throws Exception {
        Run dump = launch(Map.of("JBACKUP_CDS", "dump"));
        assertEquals(0, dump.exit(), dump.toString());
        assertFalse(dump.stderr().contains("failed"), "every training command ran: " + dump);
        assertFalse(checksummed("as dumped"), "an archive untouched since the dump was checksummed again");
        assertVersionOnly("as dumped");
        // the same file, same size and inode, written in place: its change time tells
        byte[] b = Files.readAllBytes(jsa);
        long at = b.length / 2;
        try (FileChannel ch = FileChannel.open(jsa, StandardOpenOption.WRITE)) {
            ByteBuffer flipped = ByteBuffer.allocate(8);
            for (int i = 0; i < 8; i++) {
                flipped.put((byte) (b[(int) at + i] ^ 0xA5));
            }
            ch.write(flipped.flip(), at);
        }
        assertEquals(b.length, Files.size(jsa));
        assertTrue(checksummed("written in place"), "an archive written to after the dump was not checksummed");
        Run list = launch(Map.of(), "list", "--repo", repo);
        assertEquals(0, list.exit(), list.toString());
        assertEquals(expectedList, list.stdout());
        assertEquals("", list.stderr());
    }

    @Test
    void aTruncatedArchiveIsIgnored() throws Exception {
        // JDK 17 dies with SIGBUS on this one: the launcher must not pass it
        archive(Arrays.copyOf(goodArchive, goodArchive.length / 2), goodSize);
        assertVersionOnly("truncated to half");
        archive(Arrays.copyOf(goodArchive, 1000), goodSize);
        assertVersionOnly("truncated to 1000 bytes");
        archive(goodArchive, "");
        Files.delete(prefix.resolve("lib/jbackup/jbackup.jsa.size"));
        assertVersionOnly("no size file");
    }

    @Test
    void anArchiveWithFlippedBytesIsIgnored() throws Exception {
        // without the JVM's checksum (VerifySharedSpaces) some of these make list fail (exit 1) or crash the JVM
        long[] offsets = {8, 4096, goodArchive.length / 50, goodArchive.length / 20, goodArchive.length / 10,
            goodArchive.length / 2, goodArchive.length * 9L / 10};
        for (long offset : offsets) {
            byte[] b = goodArchive.clone();
            for (int i = (int) offset; i < offset + 8; i++) {
                b[i] ^= (byte) 0xA5;
            }
            archive(b, goodSize);
            assertVersionOnly("bytes flipped at " + offset);
            Run r = launch(Map.of(), "list", "--repo", repo);
            assertEquals(0, r.exit(), "bytes flipped at " + offset + ": " + r);
            assertEquals(expectedList, r.stdout(), "bytes flipped at " + offset);
            assertEquals("", r.stderr(), "bytes flipped at " + offset);
        }
    }

    @Test
    void garbageAndEmptyArchivesAreIgnored() throws Exception {
        byte[] garbage = "not a class data sharing archive\n".repeat(1000).getBytes(StandardCharsets.UTF_8);
        archive(garbage, String.valueOf(garbage.length));
        assertVersionOnly("garbage");
        archive(new byte[0], "0");
        assertVersionOnly("empty");
    }

    @Test
    void anArchiveOfAnotherJarIsIgnored() throws Exception {
        archive(goodArchive, goodSize);
        FileTime before = Files.getLastModifiedTime(jar);
        Path copy = prefix.resolve("jbackup.jar.orig");
        Files.copy(jar, copy, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.COPY_ATTRIBUTES);
        try {
            // a rebuilt jar as the JVM sees it: another modification time than the archive recorded
            Files.setLastModifiedTime(jar, FileTime.fromMillis(before.toMillis() - 86_400_000L));
            assertVersionOnly("jar of another time");
        } finally {
            Files.copy(copy, jar, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.COPY_ATTRIBUTES);
        }
    }
    /**
     * The SQLite and zstd libraries are extracted with the archive into JAR.native/ and loaded from there, so no run
     * writes a copy to /tmp; damaged ones there are not used, and the command still works.
     */
    @Test
    void nativeLibrariesComeFromBesideTheJarAndDamagedOnesAreIgnored() throws Exception {
        archive(goodArchive, goodSize);
        Path dir = prefix.resolve("lib/jbackup/jbackup.native");
        List<Path> libs;
        try (Stream<Path> files = Files.walk(dir)) {
            libs = files.filter(f -> f.getFileName().toString().endsWith(".so")).sorted().toList();
        }
        assertEquals(2, libs.size(), libs.toString());
        assertTrue(libs.get(0).toString().contains("/sqlite-jdbc-"), libs.toString());
        assertTrue(libs.get(1).toString().contains("/zstd-jni-"), libs.toString());
        assertTrue(Files.readString(dir.resolve("checksums")).lines().count() == 2, "a checksum for each");
        Path tmp = Files.createTempDirectory(prefix, "drivers-tmp");
        Path log = prefix.resolve("libraries.log");
        String opts = "-Xlog:library=info:file=" + log + " -Dorg.sqlite.tmpdir=" + tmp + " -DZstdTempFolder=" + tmp;
        Run r = launch(Map.of("JBACKUP_OPTS", opts), "list", "--repo", repo);
        assertEquals(0, r.exit(), r.toString());
        assertEquals(expectedList, r.stdout());
        String loaded = Files.readString(log);
        for (Path lib : libs) {
            assertTrue(loaded.contains("Loaded library " + lib), lib + " not loaded: " + loaded);
        }
        try (Stream<Path> files = Files.list(tmp)) {
            assertEquals(List.of(), files.toList(), "nothing extracted to the drivers' temporary directory");
        }

        List<byte[]> good = new ArrayList<>();
        for (Path lib : libs) {
            good.add(Files.readAllBytes(lib));
        }
        try {
            for (Path lib : libs) {
                byte[] b = Files.readAllBytes(lib); // damaged: still an ELF file of the same size
                b[b.length / 2] ^= 1;
                Files.write(lib, b);
            }
            Files.deleteIfExists(log);
            Run damaged = launch(Map.of("JBACKUP_OPTS", opts), "list", "--repo", repo);
            assertEquals(0, damaged.exit(), damaged.toString());
            assertEquals(expectedList, damaged.stdout());
            assertEquals("", damaged.stderr());
            String fallback = Files.readString(log);
            assertTrue(fallback.contains("Loaded library " + tmp), "SQLite fell back to its own copy: " + fallback);
            for (Path lib : libs) {
                assertFalse(fallback.contains("Loaded library " + lib), lib + " was loaded though damaged");
            }
        } finally {
            for (int i = 0; i < libs.size(); i++) {
                Files.write(libs.get(i), good.get(i));
            }
        }
    }
}
