package io.jbackup.nbd.tls;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.HexFormat;
import java.util.List;
import java.util.Optional;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class PskKeyFileTest {
    @TempDir
    Path tmp;

    private Path file(String content) throws Exception {
        return Files.writeString(tmp.resolve("keys.psk"), content);
    }

    @Test
    void parsesEntriesInOrderWithCrlfBlankLinesAndUpperCaseHex() throws Exception {
        PskKeyFile f = PskKeyFile.load(file("alice:00ff10\r\n\nbob:ABCDEF0123456789\nqemu:01"));
        assertEquals(List.of("alice", "bob", "qemu"), List.copyOf(f.identities()));
        assertArrayEquals(new byte[] {0, (byte) 0xff, 0x10}, f.key("alice").orElseThrow());
        assertArrayEquals(HexFormat.of().parseHex("abcdef0123456789"), f.key("bob").orElseThrow());
        assertArrayEquals(new byte[] {1}, f.key("qemu").orElseThrow());
        assertEquals(Optional.empty(), f.key("carol"));
    }

    @Test
    void keyIsACopy() throws Exception {
        PskKeyFile f = PskKeyFile.load(file("alice:0102\n"));
        f.key("alice").orElseThrow()[0] = 9;
        assertArrayEquals(new byte[] {1, 2}, f.key("alice").orElseThrow());
    }

    @Test
    void firstOfDuplicateIdentitiesWins() throws Exception {
        PskKeyFile f = PskKeyFile.load(file("alice:01\nalice:02\n"));
        assertArrayEquals(new byte[] {1}, f.key("alice").orElseThrow());
        assertEquals(1, f.identities().size());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "alice:00\\nnocolon\\n|line 2: no ':' between username and key",
        ":0011|line 1: empty username",
        "alice:|line 1: empty key for 'alice'",
        "alice:abc|line 1: key for 'alice' has an odd number of hex digits (3)",
        "alice:zz|line 1: key for 'alice' is not hex",
        "alice:00 11|line 1: key for 'alice' has an odd number of hex digits (5)",
        "\\n\\nalice: 0011|line 3: key for 'alice' has an odd number of hex digits (5)",
    })
    void rejectsMalformedLinesWithFileAndLineNumber(String content, String expected) throws Exception {
        Path p = file(content.replace("\\n", "\n"));
        NbdTlsException e = assertThrows(NbdTlsException.class, () -> PskKeyFile.load(p));
        assertTrue(e.getMessage().startsWith("PSK key file " + p + " " + expected), e.getMessage());
        assertTrue(e.getMessage().endsWith("expected username:hexkey"), e.getMessage());
    }

    @Test
    void boundsFileSizeLineCountKeyAndIdentityLength() throws Exception {
        Path big = Files.write(tmp.resolve("big.psk"), new byte[PskKeyFile.MAX_FILE_BYTES + 1]);
        assertTrue(assertThrows(NbdTlsException.class, () -> PskKeyFile.load(big)).getMessage()
            .contains("is larger than " + PskKeyFile.MAX_FILE_BYTES + " bytes"));

        Path many = Files.writeString(tmp.resolve("many.psk"), "\n".repeat(PskKeyFile.MAX_LINES) + "a:00\n");
        assertTrue(assertThrows(NbdTlsException.class, () -> PskKeyFile.load(many)).getMessage()
            .contains("has more than " + PskKeyFile.MAX_LINES + " lines"));

        Path longKey = file("a:" + "00".repeat(PskKeyFile.MAX_KEY_BYTES + 1));
        assertTrue(assertThrows(NbdTlsException.class, () -> PskKeyFile.load(longKey)).getMessage()
            .contains("longer than " + PskKeyFile.MAX_KEY_BYTES + " bytes"));
        assertEquals(1, PskKeyFile.load(file("a:" + "00".repeat(PskKeyFile.MAX_KEY_BYTES))).identities().size());

        Path longUser = file("u".repeat(PskKeyFile.MAX_IDENTITY_BYTES + 1) + ":00");
        assertTrue(assertThrows(NbdTlsException.class, () -> PskKeyFile.load(longUser)).getMessage()
            .contains("username longer than"));
    }

    @Test
    void rejectsNonUtf8AndMissingFiles() throws Exception {
        Path bin = Files.write(tmp.resolve("bin.psk"), new byte[] {'a', ':', (byte) 0xc3, '0', '0'});
        assertTrue(assertThrows(NbdTlsException.class, () -> PskKeyFile.load(bin)).getMessage()
            .contains("is not UTF-8 text"));
        Path missing = tmp.resolve("nope/keys.psk");
        NbdTlsException e = assertThrows(NbdTlsException.class, () -> PskKeyFile.load(missing));
        assertTrue(e.getMessage().startsWith("PSK key file " + missing + " does not exist"), e.getMessage());
    }

    @Test
    void writeCreatesOwnerOnlyFileThatLoadsBack() throws Exception {
        Path p = tmp.resolve("keys.psk");
        byte[] key = HexFormat.of().parseHex("000102fffe");
        Files.writeString(p, "old:00\n");
        PskKeyFile.write(p, "jbackup", key);
        assertEquals("jbackup:000102fffe\n", Files.readString(p, StandardCharsets.UTF_8));
        assertEquals("rw-------", PosixFilePermissions.toString(Files.getPosixFilePermissions(p)));
        assertArrayEquals(key, PskKeyFile.load(p).key("jbackup").orElseThrow());
        try (var s = Files.list(tmp)) {
            assertEquals(1, s.count(), "no temporary file left behind");
        }
    }

    @Test
    void writeRejectsUnusableNamesAndKeys() {
        Path p = tmp.resolve("keys.psk");
        assertThrows(IllegalArgumentException.class, () -> PskKeyFile.write(p, "a:b", new byte[] {1}));
        assertThrows(IllegalArgumentException.class, () -> PskKeyFile.write(p, "a\nb", new byte[] {1}));
        assertThrows(IllegalArgumentException.class, () -> PskKeyFile.write(p, "", new byte[] {1}));
        assertThrows(IllegalArgumentException.class, () -> PskKeyFile.write(p, "a", new byte[0]));
        assertTrue(Files.notExists(p));
    }
}
