package io.jbackup.store;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.jbackup.objectstore.ObjectInfo;
import io.jbackup.objectstore.ObjectSource;
import io.jbackup.objectstore.ObjectStore;
import io.jbackup.objectstore.ObjectVersion;
import io.jbackup.objectstore.VersionedObject;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.security.SecureRandom;
import java.time.Duration;
import java.time.Instant;
import java.time.format.DateTimeParseException;
import java.time.temporal.ChronoUnit;
import java.util.HexFormat;
import java.util.Objects;
import java.util.Optional;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * The deletion lease of a repository on an object store: backups from several hosts run concurrently without a
 * lock, but whatever deletes (gc, prune, forget) first takes this one lease, so that two deleters never run at once.
 *
 * <p><b>The object</b> under the lease key is UTF-8 JSON, written whole by each conditional write:
 * <pre>{@code
 * {
 *   "version" : 1,                                 // format version; any other value is unreadable
 *   "owner" : "host-a/4711/1733468059000",         // Owner#id(): host / pid / process start millis
 *   "purpose" : "gc",                               // gc, prune or forget: for messages
 *   "nonce" : "9f86d081884c7d659a2feaa0c55ad015",   // 128 random bits in hex, one per holder, never reused
 *   "acquired" : "2026-12-06T07:14:19.123Z",        // ISO-8601 instant (UTC, ms) when this holder took it
 *   "expires" : "2026-12-06T07:16:19.456Z"          // ISO-8601 instant (UTC, ms); moved on by each renewal
 * }
 * }</pre>
 *
 * <p><b>The protocol</b>, with {@code skew} the clock-skew allowance ({@link #DEFAULT_CLOCK_SKEW}):
 * <ol>
 *   <li><b>Acquire</b>: {@code create(key, lease)} ({@code If-None-Match: *}). If an object is there, read it with
 *       its version. It is ours when it carries our nonce (our create landed and its answer was lost). A readable
 *       lease is free once {@code now > expires + skew}; an unreadable one (not JSON, wrong version, missing fields)
 *       once its modification time (stat) is more than {@code ttl + skew} ago. A free lease is taken over with
 *       {@code replace(key, itsVersion, lease)} ({@code If-Match}); when that reports a loss, the object is read
 *       back and is ours if it carries our nonce. Otherwise the acquirer polls with backoff (100 ms doubling to
 *       2 s) until its wait ends, then throws {@link RepositoryLockedException} naming the holder.</li>
 *   <li><b>Renew</b>: a daemon thread writes the lease with {@code expires = now + ttl} every {@code ttl / 3} by
 *       {@code replace(key, lastVersion, lease)}; after a failed attempt (an I/O error) it retries every
 *       {@code ttl / 12}. When the replace reports a loss, the object is read back: if it carries our nonce, the
 *       lease is still ours (an earlier write of ours landed unseen) and its version is taken; otherwise the lease
 *       is lost for good and renewal stops.</li>
 *   <li><b>Check</b>: the deleting code calls {@link #check} before each delete; it throws
 *       {@link LeaseLostException} once the lease is lost, or when the {@code expires} of our last confirmed write
 *       has passed (renewal failed for a whole ttl: the store was unreachable).</li>
 *   <li><b>Release</b>: {@link #close} stops renewal and deletes the object only if it still carries our nonce and
 *       has not expired; otherwise it leaves it alone (it is someone else's, or lapses by itself).</li>
 * </ol>
 *
 * <p><b>Why it is safe.</b> Conditional writes are atomic and reads are strongly consistent (read-after-write,
 * and a conditional write sees the latest version) on AWS S3 since December 2020, Ceph RGW and MinIO, and in
 * {@code LocalObjectStore}. So of racing creates exactly one wins, and a replace succeeds only against the version
 * its writer read: a takeover and a renewal cannot both succeed, whoever loses learns it from its next write.
 * Because every holder's nonce is unique and only its holder writes it, "the object carries my nonce" means "no one
 * wrote it since my last write", which makes the read-back after a lost answer (S3 clients retry conditional writes
 * on their own, and a retry of a write that landed gets 412) exact. A holder stops deleting at {@code expires} by
 * its own clock, computed before the write that set it; another process takes over only after
 * {@code expires + skew} by its clock. As long as the two clocks differ by less than {@code skew} minus the length
 * of one delete, the holder's last delete ends before anyone else can take the lease. Clocks are not trusted
 * beyond that bound: keep hosts synchronised (NTP), and keep {@code ttl} well above the store's latency.
 */
public final class DeletionLease implements AutoCloseable {
    /** How far the clocks of two hosts may differ; an expired lease is taken over only this long after expiry. */
    public static final Duration DEFAULT_CLOCK_SKEW = Duration.ofSeconds(30);
    /**
     * A ttl for callers without a reason to choose: renewed every 40 s, an abandoned lease is free 2.5 min after
     * its holder died.
     */
    public static final Duration DEFAULT_TTL = Duration.ofMinutes(2);
    /** The value of {@code version} in the lease object. */
    public static final int FORMAT_VERSION = 1;

    private static final Logger LOG = LoggerFactory.getLogger(DeletionLease.class);
    private static final SecureRandom RANDOM = new SecureRandom();
    private static final long FIRST_POLL_MILLIS = 100;
    private static final long MAX_POLL_MILLIS = 2000;
    private static final long STOP_RENEWAL_MILLIS = 10_000;

    /**
     * The content of a lease object.
     *
     * @param owner    {@link Owner#id()} of the holder
     * @param purpose  what it deletes for: gc, prune or forget
     * @param nonce    128 random bits in hex, unique to the holder
     * @param acquired when the holder took the lease
     * @param expires  when it lapses unless renewed
     */
    public record Lease(String owner, String purpose, String nonce, Instant acquired, Instant expires) {
        public Lease {
            Objects.requireNonNull(owner, "owner");
            Objects.requireNonNull(purpose, "purpose");
            Objects.requireNonNull(nonce, "nonce");
            Objects.requireNonNull(acquired, "acquired");
            Objects.requireNonNull(expires, "expires");
        }

        Lease withExpires(Instant e) {
            return new Lease(owner, purpose, nonce, acquired, e);
        }

        /** The object's bytes. */
        byte[] toJson() {
            ObjectNode n = Json.MAPPER.createObjectNode();
            n.put("version", FORMAT_VERSION);
            n.put("owner", owner);
            n.put("purpose", purpose);
            n.put("nonce", nonce);
            n.put("acquired", acquired.toString());
            n.put("expires", expires.toString());
            return Json.bytes(n);
        }

        /** {@code gc by pid 4711 on host-a since ACQUIRED, expiring at EXPIRES}. */
        String describe() {
            String who = Owner.parse(owner).map(o -> "pid " + o.pid() + " on " + o.host()).orElse(owner);
            return purpose + " by " + who + " since " + acquired + ", expiring at " + expires;
        }
    }

    /** A lease object read back: the lease, or why it is unreadable. */
    private record Parsed(Lease lease, String problem) {
        boolean isOurs(String nonce) {
            return lease != null && lease.nonce().equals(nonce);
        }
    }

    private final ObjectStore store;
    private final String key;
    private final Duration ttl;
    private final String nonce;
    private final Thread renewer;
    private final CountDownLatch stop = new CountDownLatch(1);
    private volatile Lease record;
    private volatile ObjectVersion version;
    private volatile Instant validUntil;
    private volatile String lostReason;
    private volatile String renewalError;
    private volatile boolean closed;

    private DeletionLease(ObjectStore store, String key, Duration ttl, Lease record, ObjectVersion version) {
        this.store = store;
        this.key = key;
        this.ttl = ttl;
        this.nonce = record.nonce();
        this.record = record;
        this.version = version;
        this.validUntil = record.expires();
        this.renewer = new Thread(this::renewLoop, "deletion-lease-renewal " + key);
        renewer.setDaemon(true);
    }

    /** {@link #acquire(ObjectStore, String, String, Duration, Duration, Duration)} with the default clock skew. */
    public static DeletionLease acquire(ObjectStore store, String key, String purpose, Duration ttl, Duration wait)
        throws IOException {
        return acquire(store, key, purpose, ttl, wait, DEFAULT_CLOCK_SKEW);
    }

    /**
     * Takes the deletion lease {@code key} of {@code store}, waiting up to {@code wait} for its holder
     * ({@link Duration#ZERO}: not at all), and starts renewing it.
     *
     * @param purpose   what the caller deletes for, for the messages of others: gc, prune or forget
     * @param ttl       how long the lease lives without renewal; renewed every third of it
     * @param clockSkew how long after its expiry an abandoned lease is taken over
     * @throws RepositoryLockedException when another process holds the lease; the message names it and the way out
     */
    public static DeletionLease acquire(ObjectStore store, String key, String purpose, Duration ttl, Duration wait,
        Duration clockSkew) throws IOException {
        Objects.requireNonNull(store, "store");
        Objects.requireNonNull(key, "key");
        if (purpose == null || purpose.isBlank()) {
            throw new IllegalArgumentException("a lease needs a purpose (gc, prune, forget)");
        }
        if (ttl.toMillis() < 3) {
            throw new IllegalArgumentException("lease ttl " + ttl + " is too short");
        }
        if (wait.isNegative() || clockSkew.isNegative()) {
            throw new IllegalArgumentException("negative wait " + wait + " or clock skew " + clockSkew);
        }
        String nonce = HexFormat.of().formatHex(randomBytes(16));
        String owner = Owner.current().id();
        long deadline = System.nanoTime() + Math.min(wait.toNanos(), Long.MAX_VALUE / 4);
        long poll = FIRST_POLL_MILLIS;
        boolean waitLogged = false;
        while (true) {
            Lease mine = fresh(owner, purpose, nonce, ttl);
            Optional<ObjectVersion> created = store.create(key, ObjectSource.of(mine.toJson()));
            if (created.isPresent()) {
                return start(store, key, ttl, mine, created.get());
            }
            Optional<VersionedObject> current = store.getVersioned(key);
            if (current.isEmpty()) {
                continue; // released since our create: try again at once
            }
            Parsed held = parse(current.get().data());
            if (held.isOurs(nonce)) {
                return start(store, key, ttl, held.lease(), current.get().version()); // our create landed unseen
            }
            String holder = holder(store, key, held, ttl, clockSkew);
            if (holder == null) {
                Optional<DeletionLease> taken = takeOver(store, key, ttl, current.get(), held,
                    fresh(owner, purpose, nonce, ttl));
                if (taken.isPresent()) {
                    return taken.get();
                }
                continue; // another process took it over first: look at its lease
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new RepositoryLockedException("repository " + store.describe() + " is locked for deletion: "
                    + holder + " (lease object " + key + "); "
                    + (wait.isZero() ? "retry later, or wait for it with --wait-lock[=DURATION]"
                    : "gave up after waiting " + DiskLock.describe(wait) + " (--wait-lock)")
                    + (held.lease() != null ? ". If that process died, its lease lapses "
                    + DiskLock.describe(clockSkew) + " after it expires and the next gc, prune or forget takes it over"
                    : ". No process holds an unreadable lease: the next gc, prune or forget takes it over once it "
                    + "counts as expired, or delete the lease object by hand if it must run sooner"));
            }
            if (!waitLogged) {
                LOG.info("repository {} is locked for deletion ({}); waiting {}", store.describe(), holder,
                    DiskLock.waiting(wait));
                waitLogged = true;
            }
            sleep(Math.max(1, Math.min(poll, left / 1_000_000)), key);
            poll = Math.min(poll * 2, MAX_POLL_MILLIS);
        }
    }

    /**
     * Whom the lease object belongs to, for messages, or null when it is free: a readable lease
     * {@code skew} after its expiry, an unreadable one {@code ttl + skew} after it was written.
     */
    private static String holder(ObjectStore store, String key, Parsed held, Duration ttl, Duration skew)
        throws IOException {
        Instant now = Instant.now();
        if (held.lease() != null) {
            return now.isAfter(held.lease().expires().plus(skew)) ? null : held.lease().describe();
        }
        Optional<ObjectInfo> st = store.stat(key);
        if (st.isEmpty()) {
            return null; // gone: the replace of the version we read fails, and the next round creates
        }
        Instant lapses = st.get().lastModified().plus(ttl).plus(skew);
        return now.isAfter(lapses) ? null : "an unreadable lease object (" + held.problem() + ") written at "
            + st.get().lastModified() + ", which counts as expired at " + lapses;
    }

    private static Optional<DeletionLease> takeOver(ObjectStore store, String key, Duration ttl,
        VersionedObject expired, Parsed held, Lease mine) throws IOException {
        Optional<ObjectVersion> v = store.replace(key, expired.version(), ObjectSource.of(mine.toJson()));
        if (v.isEmpty()) {
            Optional<VersionedObject> back = store.getVersioned(key);
            if (back.isEmpty() || !parse(back.get().data()).isOurs(mine.nonce())) {
                return Optional.empty();
            }
            v = Optional.of(back.get().version());
            mine = parse(back.get().data()).lease();
        }
        LOG.warn("took over the expired deletion lease {} of {}: {}", key, store.describe(),
            held.lease() != null ? held.lease().describe() : "an unreadable lease object (" + held.problem() + ")");
        return Optional.of(start(store, key, ttl, mine, v.get()));
    }

    private static DeletionLease start(ObjectStore store, String key, Duration ttl, Lease lease,
        ObjectVersion version) {
        DeletionLease l = new DeletionLease(store, key, ttl, lease, version);
        l.renewer.start();
        LOG.debug("took the deletion lease {} of {} for {} until {}", key, store.describe(), lease.purpose(),
            lease.expires());
        return l;
    }

    private static Lease fresh(String owner, String purpose, String nonce, Duration ttl) {
        Instant now = Instant.now().truncatedTo(ChronoUnit.MILLIS);
        return new Lease(owner, purpose, nonce, now, now.plus(ttl));
    }

    /**
     * Throws {@link LeaseLostException} unless the lease is still ours: call it before each delete.
     */
    public void check() throws LeaseLostException {
        if (closed) {
            throw new LeaseLostException("the deletion lease " + key + " of " + store.describe()
                + " was already released: this is a bug in the caller");
        }
        String lost = lostReason;
        if (lost != null) {
            throw new LeaseLostException(lost);
        }
        Instant until = validUntil;
        if (!Instant.now().isBefore(until)) {
            String err = renewalError;
            throw new LeaseLostException("the deletion lease " + key + " of " + store.describe() + " expired at "
                + until + " without a successful renewal" + (err == null ? "" : " (last error: " + err + ")")
                + ", so another process may take it over: stopped before deleting more. Nothing deleted so far is "
                + "at risk; run the command again once the object store answers");
        }
    }

    /** When the lease lapses unless renewed, as of the last confirmed write. */
    public Instant validUntil() {
        return validUntil;
    }

    /** The lease key. */
    public String key() {
        return key;
    }

    /** The lease object as last written by this holder. */
    public Lease lease() {
        return record;
    }

    private void renewLoop() {
        long every = Math.max(1, ttl.toMillis() / 3);
        long retry = Math.max(1, ttl.toMillis() / 12);
        long delay = every;
        try {
            while (!stop.await(delay, TimeUnit.MILLISECONDS)) {
                delay = renewOnce() ? every : retry;
                if (lostReason != null) {
                    return;
                }
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** One renewal; true when it confirmed a new expiry. */
    private boolean renewOnce() {
        Lease renewed = record.withExpires(Instant.now().truncatedTo(ChronoUnit.MILLIS).plus(ttl));
        try {
            Optional<ObjectVersion> v = store.replace(key, version, ObjectSource.of(renewed.toJson()));
            if (v.isPresent()) {
                confirmed(renewed, v.get());
                return true;
            }
            Optional<VersionedObject> back = store.getVersioned(key);
            if (back.isEmpty()) {
                lose("the deletion lease " + key + " of " + store.describe() + " was deleted by another process");
                return false;
            }
            Parsed p = parse(back.get().data());
            if (p.isOurs(nonce)) {
                confirmed(p.lease(), back.get().version()); // a write of ours landed though its answer was lost
                return p.lease().expires().equals(renewed.expires());
            }
            lose("the deletion lease " + key + " of " + store.describe() + " was taken over by "
                + (p.lease() != null ? p.lease().describe() : "an unreadable object (" + p.problem() + ")"));
            return false;
        } catch (IOException | RuntimeException e) {
            boolean first = renewalError == null;
            renewalError = e.toString();
            if (first) {
                LOG.warn("could not renew the deletion lease {} of {} (valid until {}): {}; retrying every {} ms",
                    key, store.describe(), validUntil, e.toString(), Math.max(1, ttl.toMillis() / 12));
            } else {
                LOG.debug("could not renew the deletion lease {} again: {}", key, e.toString());
            }
            return false;
        }
    }

    private void confirmed(Lease lease, ObjectVersion v) {
        record = lease;
        version = v;
        validUntil = lease.expires();
        if (renewalError != null) {
            LOG.info("renewed the deletion lease {} of {} again, until {}", key, store.describe(), lease.expires());
            renewalError = null;
        }
    }

    private void lose(String reason) {
        lostReason = reason + ": stopped before deleting more. Nothing deleted so far is at risk; run the command "
            + "again once the other process is done";
        LOG.warn("{}", reason);
    }

    /**
     * Stops renewal and deletes the lease object if it still carries our nonce and has not expired. Never throws:
     * a lease that cannot be deleted lapses at its expiry.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        stopRenewal();
        if (lostReason != null) {
            return;
        }
        try {
            Optional<VersionedObject> cur = store.getVersioned(key);
            if (cur.isEmpty()) {
                LOG.warn("the deletion lease {} of {} was already gone when released", key, store.describe());
                return;
            }
            Parsed p = parse(cur.get().data());
            if (!p.isOurs(nonce)) {
                LOG.warn("not deleting the deletion lease {} of {}: it is no longer ours but {}", key,
                    store.describe(), p.lease() != null ? p.lease().describe() : "unreadable (" + p.problem() + ")");
                return;
            }
            if (!Instant.now().isBefore(p.lease().expires())) {
                LOG.warn("not deleting the deletion lease {} of {}: it expired at {} and another process may be "
                    + "taking it over; it lapses by itself", key, store.describe(), p.lease().expires());
                return;
            }
            store.delete(key);
            LOG.debug("released the deletion lease {} of {}", key, store.describe());
        } catch (IOException | RuntimeException e) {
            LOG.warn("could not release the deletion lease {} of {}: {}; it lapses at {} plus the clock-skew "
                + "allowance", key, store.describe(), e.toString(), validUntil);
        }
    }

    /** Test hook: the holder "crashes" (renewal stops, the object stays) without releasing the lease. */
    void simulateCrash() {
        stopRenewal();
    }

    private void stopRenewal() {
        stop.countDown();
        if (Thread.currentThread() != renewer) {
            try {
                renewer.join(STOP_RENEWAL_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Reads a lease object; an unreadable one gives its problem. */
    private static Parsed parse(byte[] data) {
        JsonNode n;
        try {
            n = Json.MAPPER.readTree(data);
        } catch (IOException e) {
            return new Parsed(null, "not JSON");
        }
        if (n == null || !n.isObject()) {
            return new Parsed(null, "not a JSON object");
        }
        if (n.path("version").asInt(-1) != FORMAT_VERSION) {
            return new Parsed(null, "format version " + n.path("version") + ", not " + FORMAT_VERSION);
        }
        for (String f : new String[] {"owner", "purpose", "nonce", "acquired", "expires"}) {
            if (!n.path(f).isTextual()) {
                return new Parsed(null, "no " + f);
            }
        }
        try {
            return new Parsed(new Lease(n.get("owner").asText(), n.get("purpose").asText(), n.get("nonce").asText(),
                Instant.parse(n.get("acquired").asText()), Instant.parse(n.get("expires").asText())), null);
        } catch (DateTimeParseException e) {
            return new Parsed(null, "a bad instant");
        }
    }

    /** The lease in {@code data}, or empty when it is unreadable (tests and status output). */
    static Optional<Lease> read(byte[] data) {
        return Optional.ofNullable(parse(data).lease());
    }

    private static byte[] randomBytes(int n) {
        byte[] b = new byte[n];
        RANDOM.nextBytes(b);
        return b;
    }

    private static void sleep(long millis, String key) throws InterruptedIOException {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new InterruptedIOException("interrupted while waiting for the deletion lease " + key);
        }
    }
}
