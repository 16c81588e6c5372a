package io.jbackup.engine;

import io.jbackup.nbd.server.ServerConfig;
import io.jbackup.store.OpenOptions;
import io.jbackup.store.Repository;
import java.io.IOException;
import java.nio.file.Path;

/**
 * A repository served read-only by {@link BackupServer} on a Unix socket (4 MiB cache: evictions happen), for tests
 * that read backups over NBD. Closing stops the server, then closes the repository.
 */
record ServedRepo(Repository repo, BackupServer server, Path sock) implements AutoCloseable {

    static ServedRepo start(Path repoDir, Path sock) throws IOException {
        Repository repo = Repository.open(repoDir, OpenOptions.defaults());
        try {
            return new ServedRepo(repo, BackupServer.start(repo, ServerConfig.builder().unixSocket(sock).build(),
                BackupServer.Options.readOnly(4L << 20, 4)), sock);
        } catch (IOException | RuntimeException e) {
            repo.close();
            throw e;
        }
    }

    /** {@code nbd+unix:///EXPORT?socket=...}. */
    String uri(String export) {
        return "nbd+unix:///" + export + "?socket=" + sock;
    }

    @Override
    public void close() {
        try {
            server.close();
        } finally {
            repo.close();
        }
    }
}
