package io.jbackup.text;

import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;

/**
 * A table of text columns as commands print it: a header row and data rows, each column as wide as its widest cell,
 * two spaces between columns, an indent before the first. Columns are left-aligned, or right-aligned where the
 * constructor says so (sizes, counts); the last column is never padded, so rows end without trailing blanks.
 *
 * <pre>
 *   ID                      TYPE            SIZE      STORED  STATE
 *   20261207-115127-12ba14  full         512 MiB  108.39 MiB  unverified
 *   20261207-115130-0beaea  incremental  512 MiB   19.31 MiB  unverified
 * </pre>
 */
public final class TextTable {
    private final String indent;
    private final boolean[] right;
    private final List<String[]> rows = new ArrayList<>();

    /**
     * @param indent printed before every row
     * @param header the column titles; their number is the number of columns
     * @param rightAligned the indexes of the right-aligned columns
     */
    public TextTable(String indent, List<String> header, int... rightAligned) {
        this.indent = indent;
        this.right = new boolean[header.size()];
        for (int c : rightAligned) {
            if (c < 0 || c >= right.length) {
                throw new IllegalArgumentException("column " + c + " of " + right.length);
            }
            right[c] = true;
        }
        rows.add(header.toArray(new String[0]));
    }

    /** Adds a data row: one cell per column, null printed as empty. */
    public TextTable row(String... cells) {
        if (cells.length != right.length) {
            throw new IllegalArgumentException(cells.length + " cells for " + right.length + " columns");
        }
        rows.add(cells.clone());
        return this;
    }

    /** Prints the header and the rows, each line ended by {@code %n}. */
    public void print(PrintWriter out) {
        int[] width = new int[right.length];
        for (String[] r : rows) {
            for (int c = 0; c < r.length; c++) {
                width[c] = Math.max(width[c], cell(r, c).length());
            }
        }
        for (String[] r : rows) {
            StringBuilder line = new StringBuilder(indent);
            for (int c = 0; c < r.length; c++) {
                String pad = " ".repeat(width[c] - cell(r, c).length());
                line.append(c == 0 ? "" : "  ").append(right[c] ? pad + cell(r, c) : cell(r, c) + pad);
            }
            out.printf("%s%n", line.toString().stripTrailing());
        }
    }

    private static String cell(String[] r, int c) {
        return r[c] == null ? "" : r[c];
    }
}
