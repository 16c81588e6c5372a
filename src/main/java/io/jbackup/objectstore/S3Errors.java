package io.jbackup.objectstore;

import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.exception.ApiCallAttemptTimeoutException;
import software.amazon.awssdk.core.exception.ApiCallTimeoutException;
import software.amazon.awssdk.core.exception.SdkClientException;
import software.amazon.awssdk.core.exception.SdkException;
import software.amazon.awssdk.services.s3.model.NoSuchBucketException;
import software.amazon.awssdk.services.s3.model.NoSuchKeyException;

import javax.xml.stream.XMLStreamException;
import java.io.IOException;
import java.net.ConnectException;
import java.net.SocketTimeoutException;
import java.net.UnknownHostException;

/**
 * Maps the AWS SDK's exceptions to the port's typed ones, by exception type, HTTP status and S3 error code (the
 * {@code <Code>} element), never by message text.
 */
final class S3Errors {
    /** S3's answer to a range that starts at or past the end of the object. */
    static final int RANGE_NOT_SATISFIABLE = 416;

    private S3Errors() {
    }

    /** The HTTP status of a service error, or 0 for a client-side failure. */
    static int status(SdkException e) {
        return e instanceof AwsServiceException a ? a.statusCode() : 0;
    }

    /**
     * Whether {@code e} is an answer whose body broke off: the SDK could not parse the XML of a listing or a
     * completion (it does not retry that itself, as the request may have taken effect).
     */
    static boolean truncated(SdkException e) {
        if (!(e instanceof SdkClientException)) {
            return false;
        }
        for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
            if (c instanceof XMLStreamException) {
                return true;
            }
        }
        return false;
    }

    /**
     * Whether {@code e} is a network failure: a reset, refused or timed-out connection, an attempt that stalled past
     * its timeout, or a body cut short.
     */
    static boolean network(SdkException e) {
        if (e instanceof ApiCallAttemptTimeoutException || e instanceof ApiCallTimeoutException) {
            return true;
        }
        if (!(e instanceof SdkClientException)) {
            return false;
        }
        for (Throwable c = e.getCause(); c != null; c = c.getCause()) {
            if (c instanceof IOException) {
                return true;
            }
        }
        return truncated(e);
    }

    static String code(AwsServiceException e) {
        return e.awsErrorDetails() == null ? null : e.awsErrorDetails().errorCode();
    }

    /**
     * The typed exception for {@code e}, raised while doing {@code what} on {@code key} (null: on the store itself)
     * in {@code store}, reached at {@code endpoint}.
     */
    static ObjectStoreException map(SdkException e, String store, String endpoint, String what, String key) {
        ObjectStoreException x = mapped(e, store, endpoint, what, key);
        // the SDK's own text (request ids, attempt counts, its advice) adds nothing to ours: at -vv only
        return x instanceof ObjectNotFoundException ? x : x.causeForLogOnly();
    }

    private static ObjectStoreException mapped(SdkException e, String store, String endpoint, String what,
                                               String key) {
        String where = (key == null ? "" : key + " in ") + store;
        if (e instanceof AwsServiceException a) {
            int status = a.statusCode();
            String code = code(a);
            String said = " (HTTP " + status + (code == null ? "" : " " + code) + ")";
            if (e instanceof NoSuchBucketException || "NoSuchBucket".equals(code) || (key == null && status == 404)) {
                return new StoreNotFoundException("the bucket of " + store + " does not exist" + said
                    + ": create it, or correct the bucket name", e);
            }
            if (e instanceof NoSuchKeyException || status == 404) {
                return new ObjectNotFoundException(store, key);
            }
            if (status == 412 || status == 409) {
                return new PreconditionFailedException(what + " " + where + ": precondition failed" + said, e);
            }
            if (status == 401 || status == 403) {
                return new StoreAccessDeniedException("S3 refused " + what + " " + where + said
                    + ": check the access key and secret key (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or the profile)"
                    + " and the permissions on the bucket", e);
            }
            if (a.isThrottlingException() || status == 429 || status >= 500) {
                return new TransientStoreException(what + " " + where + " failed" + said + " after retries", e);
            }
            String detail = a.awsErrorDetails() == null ? null : a.awsErrorDetails().errorMessage();
            return new ObjectStoreException(what + " " + where + " failed" + said
                + (detail == null || detail.isBlank() ? "" : ": " + detail), e);
        }
        if (network(e)) {
            return new TransientStoreException(what + " " + where + " failed: " + networkCause(e) + ": the object store "
                + "at " + endpoint + " did not answer after retries; check that it is running and that the endpoint "
                + "is right (--s3-endpoint, AWS_ENDPOINT_URL), then run the command again (complete backups are kept)",
                e);
        }
        return new ObjectStoreException(what + " " + where + " failed: " + e.getMessage(), e);
    }

    /** What went wrong on the network, in a few words: the deepest I/O exception of {@code e}'s causes. */
    static String networkCause(SdkException e) {
        IOException io = null;
        for (Throwable c = e.getCause(); c != null && c != c.getCause(); c = c.getCause()) {
            if (c instanceof IOException i) {
                io = i;
            }
        }
        if (io == null) {
            // an attempt timeout has no cause
            return e instanceof ApiCallAttemptTimeoutException || e instanceof ApiCallTimeoutException
                ? "no answer within the attempt timeout (--s3-timeout)" : "the answer broke off";
        }
        String m = io.getMessage() == null ? "" : io.getMessage();
        if (io instanceof UnknownHostException) {
            return "unknown host " + m.replaceFirst(":.*", "");
        }
        if (io instanceof ConnectException) {
            return m.isEmpty() ? "connection refused" : m.toLowerCase(java.util.Locale.ROOT);
        }
        if (io instanceof SocketTimeoutException) {
            return "timed out" + (m.isEmpty() ? "" : " (" + m + ")");
        }
        return io.getClass().getSimpleName() + (m.isEmpty() ? "" : ": " + m);
    }
}
