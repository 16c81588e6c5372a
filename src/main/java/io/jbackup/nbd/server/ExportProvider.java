package io.jbackup.nbd.server;

import java.io.IOException;
import java.util.List;

/**
 * The exports a {@link NbdServer} serves. Called from a blocking-capable thread (never the event loop), so
 * implementations may do I/O (catalog look-ups, opening files).
 */
public interface ExportProvider {
    /** Exports listed by {@code NBD_OPT_LIST}, with descriptions. */
    List<ExportListing> list() throws IOException;

    /**
     * Opens the export {@code name} ({@code ""} = the default export, if there is one). Returns null if there is no
     * such export. The server may open an export several times while a client negotiates (INFO, meta contexts, GO)
     * and closes each instance it gets when done with it; a provider that wants several connections to share one
     * instance (a writable overlay) hands out wrappers whose {@code close()} does not close the shared state.
     */
    NbdExport open(String name) throws IOException;
}
