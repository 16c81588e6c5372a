package io.jbackup.text;

import org.junit.jupiter.api.Test;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class TextTableTest {
    private static List<String> print(TextTable t) {
        StringWriter w = new StringWriter();
        try (PrintWriter out = new PrintWriter(w)) {
            t.print(out);
        }
        return w.toString().lines().toList();
    }

    /** The case `jbackup list` printed misaligned: a size wider than the header's column (10 and 11 characters). */
    @Test
    void everyColumnIsAsWideAsItsWidestCell() {
        TextTable t = new TextTable("  ", List.of("ID", "TYPE", "SIZE", "STORED", "STATE"), 2, 3)
            .row("20261207-115127-12ba14", "full", "512 MiB", "108.39 MiB", "unverified")
            .row("20261207-115130-0beaea", "incremental", "1023.99 GiB", "19.31 MiB", "verified  a=b");
        assertEquals(List.of(
            "  ID                      TYPE                SIZE      STORED  STATE",
            "  20261207-115127-12ba14  full             512 MiB  108.39 MiB  unverified",
            "  20261207-115130-0beaea  incremental  1023.99 GiB   19.31 MiB  verified  a=b"), print(t));
    }

    @Test
    void theLastColumnIsNotPaddedAndEmptyCellsPrintAsNothing() {
        TextTable t = new TextTable("", List.of("A", "LONG HEADER"), 0)
            .row("1", null)
            .row(null, "x");
        assertEquals(List.of("A  LONG HEADER", "1", "   x"), print(t));
    }

    @Test
    void aRowOfTheWrongWidthOrAColumnThatDoesNotExistIsRefused() {
        TextTable t = new TextTable("", List.of("A", "B"));
        assertThrows(IllegalArgumentException.class, () -> t.row("1"));
        assertThrows(IllegalArgumentException.class, () -> new TextTable("", List.of("A"), 1));
    }
}
