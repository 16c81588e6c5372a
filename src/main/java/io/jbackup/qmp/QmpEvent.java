package io.jbackup.qmp;

import com.fasterxml.jackson.databind.JsonNode;

import java.time.Instant;

/**
 * An asynchronous QMP event: {@code {"event": NAME, "data": {...}, "timestamp": {"seconds": S, "microseconds": U}}}.
 *
 * @param name      the event name, e.g. {@code BLOCK_JOB_CANCELLED} or {@code JOB_STATUS_CHANGE}
 * @param data      the event's data object (an empty object when the event has none)
 * @param timestamp when QEMU emitted it
 */
public record QmpEvent(String name, JsonNode data, Instant timestamp) {
    /** {@code data.FIELD} as text, or "" when absent. */
    public String text(String field) {
        return data.path(field).asText("");
    }
}
