package io.jbackup.catalog;

import io.jbackup.model.RepositoryException;

import java.time.Instant;
import java.util.List;

/** The catalog's log of command runs (backup, verify, repair, ...). A part of the {@link Catalog} port. */
public interface RunLog {
    /** Records the start of a command run; returns its id. */
    long startRun(String command, String owner) throws RepositoryException;

    /** Records how a run ended ({@code ok}, {@code failed}, {@code damaged}, ...). */
    void finishRun(long runId, String status, String message) throws RepositoryException;

    /** A run as recorded. */
    record Run(long id, String command, Instant started, Instant finished, String status, String owner,
               String message) {
    }

    /** The most recent runs, newest first. */
    List<Run> runs(int limit) throws RepositoryException;
}
