package io.jbackup.objectstore;

import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;
import software.amazon.awssdk.core.interceptor.SdkExecutionAttribute;

import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.atomic.LongAdder;

/**
 * Counts the HTTP requests an {@link S3ObjectStore} sends, retries included (each attempt is billed), by kind:
 * {@code LIST} is a GET of a listing, the other kinds are the HTTP methods. Registered on the store's SDK client;
 * {@link #summary()} is what the store logs when it closes, for a user who pays per request.
 */
final class S3RequestCounter implements ExecutionInterceptor {

    /** What a request is billed as. */
    enum Kind { PUT, POST, GET, LIST, HEAD, DELETE, OTHER }

    private final Map<Kind, LongAdder> counts = new EnumMap<>(Kind.class);
    private final LongAdder bytesSent = new LongAdder();

    S3RequestCounter() {
        for (Kind k : Kind.values()) {
            counts.put(k, new LongAdder());
        }
    }

    @Override
    public void beforeTransmission(Context.BeforeTransmission context, ExecutionAttributes attributes) {
        String operation = attributes.getAttribute(SdkExecutionAttribute.OPERATION_NAME);
        Kind kind = switch (context.httpRequest().method()) {
            case PUT -> Kind.PUT;
            case POST -> Kind.POST;
            case GET -> operation != null && operation.startsWith("List") ? Kind.LIST : Kind.GET;
            case HEAD -> Kind.HEAD;
            case DELETE -> Kind.DELETE;
            default -> Kind.OTHER;
        };
        counts.get(kind).increment();
        context.requestBody().flatMap(b -> b.optionalContentLength()).ifPresent(bytesSent::add);
    }

    /** The requests sent so far of one kind. */
    long count(Kind kind) {
        return counts.get(kind).sum();
    }

    /** All requests sent so far. */
    long total() {
        long t = 0;
        for (LongAdder a : counts.values()) {
            t += a.sum();
        }
        return t;
    }

    /** {@code 412 (PUT 300, GET 100, LIST 10, HEAD 2), 1234567 bytes sent}: the kinds with a count only. */
    String summary() {
        StringBuilder b = new StringBuilder().append(total()).append(" (");
        String sep = "";
        for (Map.Entry<Kind, LongAdder> e : counts.entrySet()) {
            long n = e.getValue().sum();
            if (n > 0) {
                b.append(sep).append(e.getKey()).append(' ').append(n);
                sep = ", ";
            }
        }
        return b.append("), ").append(bytesSent.sum()).append(" bytes sent").toString();
    }
}
