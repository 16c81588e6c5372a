package io.jbackup.nbd.server;

/**
 * One entry of {@code NBD_OPT_LIST}: an export name and its human-readable description.
 */
public record ExportListing(String name, String description) {
    public ExportListing {
        if (name == null) {
            throw new IllegalArgumentException("export name must not be null");
        }
        if (description == null) {
            description = "";
        }
    }
}
