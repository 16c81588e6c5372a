package io.jbackup.engine;

import com.fasterxml.jackson.annotation.JsonValue;

/**
 * Why an incremental backup was not safe, so that {@code incremental} refused and {@code auto} made a full backup.
 * {@link #code()} is stable (kebab-case): it is what {@code --json} prints as {@code fallbackReason}, for scripts.
 */
public enum FallbackReason {
    /** No {@code --bitmap} was given (and none is recorded for {@code --rotate-bitmap}). */
    NO_BITMAP("no-bitmap"),
    /** The disk has no complete backup to build on: a full backup is what is needed. */
    NO_PARENT("no-parent"),
    /** The disk has a parent, but the export does not offer the named dirty bitmap (misspelt, or not exported). */
    BITMAP_MISSING("bitmap-missing"),
    /** The export's size differs from the parent backup's. */
    SIZE_CHANGED("size-changed"),
    /** The repository's chunk size differs from the parent backup's. */
    CHUNK_SIZE_CHANGED("chunk-size-changed"),
    /** The parent backup is not complete. */
    PARENT_INCOMPLETE("parent-incomplete"),
    /**
     * libvirt: the domain no longer has the checkpoint of the disk's newest backup (the domain was redefined or
     * migrated), or has it without an intact bitmap on the disk (QEMU was killed, the host crashed), or the disk's
     * newest backup was not taken through libvirt.
     */
    CHECKPOINT_LOST("checkpoint-lost");

    private final String code;

    FallbackReason(String code) {
        this.code = code;
    }

    @JsonValue
    public String code() {
        return code;
    }

    /**
     * True when the full backup is not what the user asked for and should be looked at: the bitmap is missing
     * although the disk has a parent, so every run would silently be a full one. {@code auto} then exits 3.
     */
    public boolean notAsAsked() {
        return this == BITMAP_MISSING;
    }
}
