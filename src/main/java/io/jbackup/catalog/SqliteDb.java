package io.jbackup.catalog;

import io.jbackup.model.RepositoryException;
import io.jbackup.model.RepositoryFullException;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The connections of one {@code catalog.db}: opening it (permissions, write-ahead log check, migrations), one
 * write connection with its transactions, a small pool of read connections for the hot path, and the translation of
 * SQLite errors into {@link RepositoryException}s that name the way out. The catalog's sections
 * ({@link SqliteChunkIndex}, {@link SqliteBackups}, {@link SqliteGc}, {@link SqliteRunLog}) share one of these.
 *
 * <p>Writes go through the one write connection, serialised in this process and, across processes, by SQLite
 * ({@code BEGIN IMMEDIATE}, a 60 s busy timeout, short transactions). Reads on the hot path borrow a pooled read
 * connection with its prepared statements, so several worker threads look up concurrently (WAL readers never block
 * the writer). {@code synchronous=FULL}: a committed transaction is durable.
 */
final class SqliteDb implements AutoCloseable {
    private static final int BUSY_TIMEOUT_MS = 60_000;
    private static final int MAX_POOLED_READERS = 16;

    private final Path file;
    private final String url;
    private final Connection writer;
    private final Object writeLock = new Object();
    private final ConcurrentLinkedQueue<Reader> readers = new ConcurrentLinkedQueue<>();
    private final AtomicInteger pooled = new AtomicInteger();
    private volatile boolean closed;

    private SqliteDb(Path file, Connection writer) {
        this.file = file;
        this.url = "jdbc:sqlite:" + file.toAbsolutePath();
        this.writer = writer;
    }

    /** See {@link SqliteCatalog#open}. */
    static SqliteDb open(Path file, String repositoryId, boolean create) throws RepositoryException {
        if (!create && !Files.exists(file)) {
            throw new RepositoryException("catalog " + file + " is missing; rebuild it from the packs and index files "
                + "with: jbackup repair --rebuild-catalog --repo " + file.getParent());
        }
        Path wal = file.resolveSibling(file.getFileName() + "-wal");
        boolean walLeft;
        try {
            walLeft = Files.exists(wal) && Files.size(wal) > 0;
        } catch (IOException e) {
            walLeft = true;
        }
        // 0600 before SQLite writes anything; SQLite gives catalog.db-wal and -shm the mode of catalog.db
        try {
            if (!Files.exists(file)) {
                Files.createFile(file);
                restrictToOwner(file);
            }
        } catch (IOException e) {
            throw new RepositoryException("cannot create catalog " + file + ": " + e.getMessage(), e);
        }
        SqliteDb db;
        try {
            db = new SqliteDb(file, connect("jdbc:sqlite:" + file.toAbsolutePath(), true));
        } catch (SQLException e) {
            RepositoryFullException full = RepositoryFullException.of(file.getParent(), e);
            if (full != null) {
                throw new RepositoryException("cannot open catalog " + file + ": " + full.getMessage(), full);
            }
            throw damaged(file, e.getMessage(), e);
        }
        try {
            if (walLeft) {
                // a write-ahead log left by a crash, by a process using the catalog now, or copied from elsewhere:
                // SQLite applies it without knowing whose it is, so check the structure it yields
                db.quickCheck();
            }
            db.migrate(repositoryId);
        } catch (SQLException | RepositoryException e) {
            db.close();
            if (e instanceof RepositoryException r) {
                throw r;
            }
            throw damaged(file, e.getMessage(), e);
        }
        return db;
    }

    /** {@code rw-------}, as the store's {@code FilePermissions.OWNER_FILE}; nothing on a non-POSIX file system. */
    private static void restrictToOwner(Path file) throws IOException {
        try {
            Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
        } catch (UnsupportedOperationException e) {
            // no POSIX permissions on this file system
        }
    }

    private static RepositoryException damaged(Path file, String problem, Throwable cause) {
        return new RepositoryException("catalog " + file + " is damaged or not a catalog (" + problem + "); rebuild it "
            + "from the packs and index files with: jbackup repair --rebuild-catalog --repo " + file.getParent()
            + " (the damaged file is kept as catalog.db.old-TIME)", cause);
    }

    private void quickCheck() throws SQLException, RepositoryException {
        List<String> problems = structureProblems();
        if (!problems.isEmpty()) {
            throw damaged(file, "its write-ahead log " + file.getFileName() + "-wal does not fit it: "
                + String.join("; ", problems), null);
        }
    }

    /** What {@code PRAGMA quick_check} finds (at most 5 problems; it reads every page): empty when sound. */
    private List<String> structureProblems() throws SQLException {
        List<String> problems = new ArrayList<>();
        synchronized (writeLock) {
            try (Statement s = writer.createStatement(); ResultSet rs = s.executeQuery("PRAGMA quick_check(5)")) {
                while (rs.next()) {
                    if (!"ok".equals(rs.getString(1))) {
                        problems.add(rs.getString(1));
                    }
                }
            }
        }
        return problems;
    }

    /** Checks the structure of the whole file ({@code PRAGMA quick_check}); throws when it is damaged. */
    void checkStructure() throws RepositoryException {
        List<String> problems;
        try {
            problems = structureProblems();
        } catch (SQLException e) {
            throw damaged(file, e.getMessage(), e);
        }
        if (!problems.isEmpty()) {
            throw damaged(file, String.join("; ", problems), null);
        }
    }

    private static Connection connect(String url, boolean write) throws SQLException {
        Properties p = new Properties();
        if (write) {
            // write transactions take the write lock up front: no deadlock upgrading a read transaction
            p.setProperty("transaction_mode", "IMMEDIATE");
        }
        // the driver itself, not DriverManager: that first looks for JDBC drivers in META-INF/services of every jar
        // on the class path (it opens each of them: about 35 ms of every command's start)
        Connection c = org.sqlite.JDBC.createConnection(url, p);
        try (Statement s = c.createStatement()) {
            s.execute("PRAGMA busy_timeout=" + BUSY_TIMEOUT_MS);
            if (write) {
                s.execute("PRAGMA journal_mode=WAL");
            }
            s.execute("PRAGMA synchronous=FULL");
            s.execute("PRAGMA foreign_keys=ON");
        }
        return c;
    }

    private void migrate(String repositoryId) throws SQLException, RepositoryException {
        synchronized (writeLock) {
            int version;
            try (Statement s = writer.createStatement(); ResultSet rs = s.executeQuery("PRAGMA user_version")) {
                version = rs.next() ? rs.getInt(1) : 0;
            }
            if (version > Migrations.ALL.size()) {
                throw new RepositoryException("catalog " + file + " has schema version " + version + "; this jbackup "
                    + "knows versions up to " + Migrations.ALL.size() + " (upgrade jbackup)");
            }
            if (version < Migrations.ALL.size()) {
                int from = version;
                transaction(c -> {
                    try (Statement s = c.createStatement()) {
                        for (int v = from; v < Migrations.ALL.size(); v++) {
                            for (String sql : Migrations.ALL.get(v)) {
                                s.execute(sql);
                            }
                        }
                        s.execute("PRAGMA user_version=" + Migrations.ALL.size());
                    }
                    if (from == 0) {
                        try (PreparedStatement ps = c.prepareStatement(
                            "INSERT INTO meta (key, value) VALUES ('repository', ?)")) {
                            ps.setString(1, repositoryId);
                            ps.executeUpdate();
                        }
                    }
                    return null;
                });
            }
            try (PreparedStatement ps = writer.prepareStatement("SELECT value FROM meta WHERE key = 'repository'");
                 ResultSet rs = ps.executeQuery()) {
                String id = rs.next() ? rs.getString(1) : null;
                if (!repositoryId.equals(id)) {
                    throw new RepositoryException("catalog " + file + " belongs to repository " + id + ", not to "
                        + repositoryId + "; move it away and run: jbackup repair --rebuild-catalog --repo "
                        + file.getParent());
                }
            }
        }
    }

    /** The catalog file. */
    Path file() {
        return file;
    }

    // ------------------------------------------------------------------------------------------------ writes

    /** Work in one write transaction on the write connection. */
    @FunctionalInterface
    interface Tx<T> {
        T run(Connection c) throws SQLException;
    }

    /**
     * Runs {@code tx} in one write transaction; an SQLite error becomes a {@link RepositoryException} saying it could
     * not {@code what}.
     */
    <T> T write(String what, Tx<T> tx) throws RepositoryException {
        try {
            return writeRaw(tx);
        } catch (SQLException e) {
            throw fail(what, e);
        }
    }

    /** {@link #write} that leaves the SQLite error to the caller (who tells some apart). */
    <T> T writeRaw(Tx<T> tx) throws SQLException, RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            return transaction(tx);
        }
    }

    /** Runs {@code tx} in one write transaction on the writer connection; the caller holds {@code writeLock}. */
    private <T> T transaction(Tx<T> tx) throws SQLException {
        writer.setAutoCommit(false);
        T result;
        try {
            result = tx.run(writer);
            writer.commit();
        } catch (SQLException | RuntimeException e) {
            // SQLite may have rolled back already (SQLITE_FULL, I/O errors): then rollback and the COMMIT of
            // setAutoCommit(true) fail with "no transaction is active", which must not hide the real error
            try {
                writer.rollback();
            } catch (SQLException r) {
                e.addSuppressed(r);
            }
            try {
                writer.setAutoCommit(true);
            } catch (SQLException r) {
                e.addSuppressed(r);
            }
            throw e;
        }
        writer.setAutoCommit(true);
        return result;
    }

    /** Binds the parameters of a statement. */
    @FunctionalInterface
    interface Binder {
        void bind(PreparedStatement ps) throws SQLException;
    }

    /** Maps the current row of a result. */
    @FunctionalInterface
    interface RowMapper<T> {
        T map(ResultSet rs) throws SQLException;
    }

    /** Binds the parameters of one item of a batch. */
    @FunctionalInterface
    interface BatchBinder<T> {
        void bind(PreparedStatement ps, T item) throws SQLException;
    }

    /** One statement outside a transaction; returns the rows it changed. */
    int updateOne(String what, String sql, Binder binder) throws RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            try (PreparedStatement ps = writer.prepareStatement(sql)) {
                binder.bind(ps);
                return ps.executeUpdate();
            } catch (SQLException e) {
                throw fail(what, e);
            }
        }
    }

    /** One statement for each of {@code items}, as a batch in one transaction. */
    <T> void update(String what, String sql, List<T> items, BatchBinder<T> binder) throws RepositoryException {
        write(what, c -> {
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                for (T item : items) {
                    binder.bind(ps, item);
                    ps.addBatch();
                }
                ps.executeBatch();
            }
            return null;
        });
    }

    // ------------------------------------------------------------------------------------------------- reads

    /** The rows of a query on the write connection (consistent with this process's writes). */
    <T> List<T> queryList(String sql, Binder binder, RowMapper<T> mapper) throws RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            try (PreparedStatement ps = writer.prepareStatement(sql)) {
                binder.bind(ps);
                List<T> out = new ArrayList<>();
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        out.add(mapper.map(rs));
                    }
                }
                return out;
            } catch (SQLException e) {
                throw fail("query", e);
            }
        }
    }

    /** The first row of a query, or empty. */
    <T> Optional<T> queryOne(String sql, Binder binder, RowMapper<T> mapper) throws RepositoryException {
        List<T> l = queryList(sql, binder, mapper);
        return l.isEmpty() ? Optional.empty() : Optional.of(l.get(0));
    }

    /** Several statements on the write connection, consistent with each other (e.g. totals). */
    <T> T withWriter(String what, Tx<T> work) throws RepositoryException {
        synchronized (writeLock) {
            checkOpen();
            try {
                return work.run(writer);
            } catch (SQLException e) {
                throw fail(what, e);
            }
        }
    }

    /** Receives the rows of {@link #stream}. */
    @FunctionalInterface
    interface RowVisitor {
        void visit(ResultSet rs) throws SQLException, RepositoryException;
    }

    /** Streams the rows of a query on a connection of its own (bounded memory, no lock held while visiting). */
    void stream(String what, String sql, Binder binder, RowVisitor visitor) throws RepositoryException {
        Connection c = null;
        try {
            c = connect(url, false);
            try (PreparedStatement ps = c.prepareStatement(sql)) {
                binder.bind(ps);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) {
                        visitor.visit(rs);
                    }
                }
            }
        } catch (SQLException e) {
            throw fail(what, e);
        } finally {
            closeQuietly(c);
        }
    }

    /** Work on a pooled read connection. */
    @FunctionalInterface
    interface ReadWork<T> {
        T run(Reader r) throws SQLException;
    }

    /** Runs {@code work} on a pooled read connection (several threads at once; never blocks the writer). */
    <T> T read(String what, ReadWork<T> work) throws RepositoryException {
        Reader r = borrow();
        try {
            return work.run(r);
        } catch (SQLException e) {
            r.broken = true;
            throw fail(what, e);
        } finally {
            release(r);
        }
    }

    /** A pooled read connection with the statements prepared on it. */
    static final class Reader {
        private final Connection conn;
        private final Map<String, PreparedStatement> statements = new HashMap<>();
        private boolean broken;

        private Reader(Connection conn) {
            this.conn = conn;
        }

        /** The statement for {@code sql}, prepared once per connection. */
        PreparedStatement prepare(String sql) throws SQLException {
            PreparedStatement ps = statements.get(sql);
            if (ps == null) {
                ps = conn.prepareStatement(sql);
                statements.put(sql, ps);
            }
            return ps;
        }
    }

    private Reader borrow() throws RepositoryException {
        checkOpen();
        Reader r = readers.poll();
        if (r != null) {
            pooled.decrementAndGet();
            return r;
        }
        try {
            return new Reader(connect(url, false));
        } catch (SQLException e) {
            throw fail("open a read connection", e);
        }
    }

    private void release(Reader r) {
        if (r.broken || closed || pooled.get() >= MAX_POOLED_READERS) {
            closeQuietly(r.conn);
            return;
        }
        pooled.incrementAndGet();
        readers.offer(r);
        if (closed && readers.remove(r)) {
            closeQuietly(r.conn);
        }
    }

    // ------------------------------------------------------------------------------------------------ errors

    /** An SQLite error as a {@link RepositoryException} that says what could not be done and the way out. */
    RepositoryException fail(String what, SQLException e) {
        String msg = e.getMessage();
        RepositoryFullException full = RepositoryFullException.of(file.getParent(), e);
        if (full != null) {
            return new RepositoryException("catalog " + file + ": cannot " + what + ": " + full.getMessage(), full);
        }
        String hint = msg != null && (msg.contains("SQLITE_BUSY") || msg.contains("locked"))
            ? "; another process holds the catalog too long, retry"
            : msg != null && (msg.contains("SQLITE_CORRUPT") || msg.contains("malformed") || msg.contains("SQLITE_NOTADB"))
            ? "; the catalog is damaged: rebuild it from the packs and index files with: jbackup repair "
                + "--rebuild-catalog --repo " + file.getParent() + " (the damaged file is kept as catalog.db.old-TIME)"
            : "";
        return new RepositoryException("catalog " + file + ": cannot " + what + ": " + msg + hint, e);
    }

    private void checkOpen() throws RepositoryException {
        if (closed) {
            throw new RepositoryException("catalog " + file + " is closed");
        }
    }

    private static void closeQuietly(Connection c) {
        if (c != null) {
            try {
                c.close();
            } catch (SQLException ignored) {
                // closing: nothing to do
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Reader r; (r = readers.poll()) != null; ) {
            closeQuietly(r.conn);
        }
        synchronized (writeLock) {
            closeQuietly(writer);
        }
    }
}
