package io.jbackup.nbd.server;

import io.jbackup.nbd.protocol.Extent;
import io.netty.buffer.ByteBuf;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

/** An export that forwards every call to another; override what should differ. */
public class ForwardingExport implements NbdExport {
    protected final NbdExport delegate;

    public ForwardingExport(NbdExport delegate) {
        this.delegate = delegate;
    }

    /**
     * A view of a shared export whose {@code close()} does nothing, for providers that hand one instance to every
     * connection (the owner closes the shared instance itself).
     */
    public static NbdExport unclosable(NbdExport shared) {
        return new ForwardingExport(shared) {
            @Override
            public void close() {
            }
        };
    }

    @Override
    public String name() {
        return delegate.name();
    }

    @Override
    public String description() {
        return delegate.description();
    }

    @Override
    public long size() {
        return delegate.size();
    }

    @Override
    public boolean readOnly() {
        return delegate.readOnly();
    }

    @Override
    public boolean canMultiConn() {
        return delegate.canMultiConn();
    }

    @Override
    public int minBlockSize() {
        return delegate.minBlockSize();
    }

    @Override
    public int preferredBlockSize() {
        return delegate.preferredBlockSize();
    }

    @Override
    public int maxPayload() {
        return delegate.maxPayload();
    }

    @Override
    public CompletableFuture<ReadResult> read(long offset, int length) {
        return delegate.read(offset, length);
    }

    @Override
    public CompletableFuture<List<Extent>> allocation(long offset, long length) {
        return delegate.allocation(offset, length);
    }

    @Override
    public Map<String, ExtentSource> metaContexts() {
        return delegate.metaContexts();
    }

    @Override
    public CompletableFuture<Void> write(long offset, ByteBuf data, boolean fua) {
        return delegate.write(offset, data, fua);
    }

    @Override
    public CompletableFuture<Void> writeZeroes(long offset, long length, boolean fua) {
        return delegate.writeZeroes(offset, length, fua);
    }

    @Override
    public CompletableFuture<Void> trim(long offset, long length) {
        return delegate.trim(offset, length);
    }

    @Override
    public CompletableFuture<Void> flush() {
        return delegate.flush();
    }

    @Override
    public CompletableFuture<Void> cache(long offset, long length) {
        return delegate.cache(offset, length);
    }

    @Override
    public void close() throws IOException {
        delegate.close();
    }
}
