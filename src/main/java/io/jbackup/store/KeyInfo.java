package io.jbackup.store;

import java.time.Instant;

/**
 * One key slot of an encrypted repository as {@code jbackup key list} shows it.
 *
 * @param id      the slot id: its file {@code keys/ID.key} ({@code repository} for the slot {@code init} wrote)
 * @param created when the slot was added (null if it cannot be read)
 * @param label   the label given to {@code key add} (may be null)
 * @param host    the host the slot was added on (may be null)
 * @param current whether this slot's passphrase opened the repository for this command
 * @param problem why the slot file cannot be read, or null when it is intact
 */
public record KeyInfo(String id, Instant created, String label, String host, boolean current, String problem) {
}
