package io.jbackup.model;

/**
 * One attachment of a backup as the catalog lists it: a small file stored with the backup that is not part of the
 * disk image (for example a libvirt domain's XML or its NVRAM file).
 *
 * @param name the attachment's name: 1 to 64 characters of {@code [A-Za-z0-9._-]}, unique within its backup
 * @param size its length in bytes
 */
public record AttachmentInfo(String name, long size) {
}
