package io.jbackup.nbd.server;

import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A fixed set of exports, each opened on demand by a factory. Thread-safe after construction; the first export
 * added is also the default export ({@code ""}) unless one is added under the empty name.
 */
public final class SimpleExportProvider implements ExportProvider {
    /** Opens one instance of an export. */
    @FunctionalInterface
    public interface Opener {
        NbdExport open() throws IOException;
    }

    private record Entry(String description, Opener opener) {
    }

    private final Map<String, Entry> exports = new LinkedHashMap<>();

    /** Adds an export opened by {@code opener} for every connection (and every option that needs it). */
    public synchronized SimpleExportProvider add(String name, String description, Opener opener) {
        if (exports.putIfAbsent(name, new Entry(description, opener)) != null) {
            throw new IllegalArgumentException("export '" + name + "' is already defined");
        }
        return this;
    }

    /** Adds one instance shared by all connections (never closed by the server; close it yourself). */
    public SimpleExportProvider addShared(NbdExport export) {
        return add(export.name(), export.description(), () -> ForwardingExport.unclosable(export));
    }

    @Override
    public synchronized List<ExportListing> list() {
        List<ExportListing> l = new ArrayList<>();
        exports.forEach((name, e) -> l.add(new ExportListing(name, e.description())));
        return l;
    }

    @Override
    public NbdExport open(String name) throws IOException {
        Entry e;
        synchronized (this) {
            e = exports.get(name);
            if (e == null && name.isEmpty() && !exports.isEmpty()) {
                e = exports.values().iterator().next();
            }
        }
        return e == null ? null : e.opener().open();
    }
}
