package io.jbackup.nbd.tls;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.jbackup.testutil.TlsFixtures;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;

import java.net.SocketAddress;
import java.net.UnixDomainSocketAddress;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.function.Supplier;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** {@link BcTlsHandler} client against {@link BcTlsHandler} server over real loopback TCP and unix sockets. */
class BcTlsHandlerTest {
    private static final long TIMEOUT_MS = BcTlsHandler.DEFAULT_HANDSHAKE_TIMEOUT_MILLIS;
    private static Net net;

    @TempDir
    Path tmp;

    @BeforeAll
    static void startNet() {
        net = new Net();
    }

    @AfterAll
    static void stopNet() {
        net.close();
    }

    private TlsFixtures.PskCreds alice() {
        return TlsFixtures.psk(tmp.resolve("psk"), "alice");
    }

    private static BcTlsHandler client(TlsFixtures.PskCreds c, TlsVersions v) {
        return BcTlsHandler.pskClient(c.user(), c.key(), c.keysFile(), v, TIMEOUT_MS);
    }

    private static Supplier<ChannelHandler> serverTls(TlsFixtures.PskCreds c, TlsVersions v) throws NbdTlsException {
        PskKeyFile keys = PskKeyFile.load(c.keysFile());
        return () -> BcTlsHandler.pskServer(keys, v, TIMEOUT_MS);
    }

    @ParameterizedTest
    @EnumSource(TlsVersions.class)
    void echoesBothWays(TlsVersions clientVersions) throws Exception {
        TlsFixtures.PskCreds creds = alice();
        try (Net.Server srv = net.server(Net.loopback(), serverTls(creds, TlsVersions.TLS_1_3_AND_1_2), true)) {
            Probe probe = new Probe();
            BcTlsHandler tls = client(creds, clientVersions);
            Channel ch = net.connect(srv.address(), tls, probe);
            TlsHandshakeCompletion done = probe.awaitSuccess();
            String expected = clientVersions == TlsVersions.TLS_1_2 ? "TLSv1.2" : "TLSv1.3";
            assertEquals(expected, done.protocol());
            assertEquals(clientVersions == TlsVersions.TLS_1_2 ? "TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256"
                : "TLS_AES_128_GCM_SHA256", done.cipherSuite());
            TlsHandshakeCompletion serverDone = srv.probe().awaitSuccess();
            assertEquals(expected, serverDone.protocol());
            assertEquals(done.cipherSuite(), serverDone.cipherSuite());

            for (int i = 0; i < 5; i++) {
                byte[] msg = ("hello " + i).getBytes();
                ch.writeAndFlush(Unpooled.wrappedBuffer(msg)).syncUninterruptibly();
                assertArrayEquals(msg, probe.read(msg.length));
            }
            assertEquals(1, probe.handshakeEvents());
            ch.close().syncUninterruptibly();
            srv.probe().awaitClosed();
            assertFalse(srv.probe().error.isDone(), () -> "server saw " + srv.probe().error.getNow(null));
            assertFalse(probe.error.isDone(), () -> "client saw " + probe.error.getNow(null));
        }
    }

    @Test
    void largeWritesArriveIntactOverUnixSocket() throws Exception {
        TlsFixtures.PskCreds creds = alice();
        SocketAddress sock = UnixDomainSocketAddress.of(tmp.resolve("s.sock"));
        try (Net.Server srv = net.server(sock, serverTls(creds, TlsVersions.TLS_1_3_AND_1_2), true)) {
            Probe probe = new Probe();
            Channel ch = net.connect(srv.address(), client(creds, TlsVersions.TLS_1_3_AND_1_2), probe);
            probe.awaitSuccess();
            byte[] data = new byte[6 * 1024 * 1024 + 12345];
            new Random(42).nextBytes(data);
            // one heap write and one direct write, each several MiB
            ch.write(Unpooled.wrappedBuffer(data));
            ByteBuf direct = ch.alloc().directBuffer(data.length).writeBytes(data);
            ch.writeAndFlush(direct).syncUninterruptibly();
            assertArrayEquals(sha256(data), sha256(probe.read(data.length)), "first copy");
            assertArrayEquals(sha256(data), sha256(probe.read(data.length)), "second copy");
            ch.close().syncUninterruptibly();
        }
    }

    @Test
    void writesBeforeHandshakeAreQueuedAndDelivered() throws Exception {
        TlsFixtures.PskCreds creds = alice();
        try (Net.Server srv = net.server(Net.loopback(), serverTls(creds, TlsVersions.TLS_1_3_AND_1_2), true)) {
            Probe probe = new Probe();
            Channel ch = net.connect(srv.address(), probe);
            BcTlsHandler tls = client(creds, TlsVersions.TLS_1_3_AND_1_2);
            byte[] first = "written before the handshake".getBytes();
            byte[] second = new byte[100_000];
            new Random(1).nextBytes(second);
            boolean completeBeforeWrite = ch.eventLoop().submit(() -> {
                ch.pipeline().addFirst("tls", tls);
                boolean before = tls.isHandshakeComplete();
                ch.write(Unpooled.wrappedBuffer(first));
                ch.writeAndFlush(ch.alloc().directBuffer().writeBytes(second));
                return before;
            }).get();
            assertFalse(completeBeforeWrite);
            probe.awaitSuccess();
            assertArrayEquals(first, probe.read(first.length));
            assertArrayEquals(second, probe.read(second.length));
            ch.close().syncUninterruptibly();
        }
    }

    @ParameterizedTest
    @EnumSource(value = TlsVersions.class, names = {"TLS_1_3", "TLS_1_2"})
    void wrongKeyFailsOnBothSidesWithClearMessages(TlsVersions v) throws Exception {
        TlsFixtures.PskCreds server = alice();
        TlsFixtures.PskCreds wrong = TlsFixtures.psk(tmp.resolve("other"), "alice");
        try (Net.Server srv = net.server(Net.loopback(), serverTls(server, TlsVersions.TLS_1_3_AND_1_2), true)) {
            Probe probe = new Probe();
            Channel ch = net.connect(srv.address(), client(wrong, v), probe);
            TlsHandshakeCompletion c = probe.awaitHandshake();
            assertFalse(c.success());
            NbdTlsException e = assertInstanceOf(NbdTlsException.class, c.cause());
            assertTrue(e.getMessage().contains("rejected by the server")
                && e.getMessage().contains("identity 'alice'")
                && e.getMessage().contains("--tls-psk-file"), e.getMessage());
            assertTrue(probe.awaitError() == e, "exceptionCaught carries the same exception");
            probe.awaitClosed();

            TlsHandshakeCompletion sc = srv.probe().awaitHandshake();
            assertFalse(sc.success());
            assertTrue(sc.cause().getMessage().contains("identity 'alice' does not match " + server.keysFile()),
                sc.cause().getMessage());
            srv.probe().awaitClosed();
            assertFalse(ch.isActive());
        }
    }

    @Test
    void unknownIdentityIsNamedByTheServer() throws Exception {
        TlsFixtures.PskCreds server = alice();
        TlsFixtures.PskCreds bob = TlsFixtures.psk(tmp.resolve("bob"), "bob");
        try (Net.Server srv = net.server(Net.loopback(), serverTls(server, TlsVersions.TLS_1_3_AND_1_2), true)) {
            Probe probe = new Probe();
            net.connect(srv.address(), client(bob, TlsVersions.TLS_1_3_AND_1_2), probe);
            TlsHandshakeCompletion c = probe.awaitHandshake();
            assertFalse(c.success());
            assertTrue(c.cause().getMessage().contains("identity 'bob'"), c.cause().getMessage());
            TlsHandshakeCompletion sc = srv.probe().awaitHandshake();
            assertTrue(sc.cause().getMessage().contains("offered identity 'bob', which is not in"),
                sc.cause().getMessage());
        }
    }

    @Test
    void handshakeTimesOutWhenThePeerSaysNothing() throws Exception {
        TlsFixtures.PskCreds creds = alice();
        // a plain server that never answers
        try (Net.Server srv = net.server(Net.loopback(), ChannelInboundHandlerAdapter::new, false)) {
            Probe probe = new Probe();
            net.connect(srv.address(), BcTlsHandler.pskClient("alice", creds.key(), creds.keysFile(),
                TlsVersions.TLS_1_3_AND_1_2, 300), probe);
            TlsHandshakeCompletion c = probe.awaitHandshake();
            assertFalse(c.success());
            assertTrue(c.cause().getMessage().contains("did not complete within 300 ms"), c.cause().getMessage());
            probe.awaitClosed();
        }
    }

    @Test
    void peerClosingDuringHandshakeFailsTheHandshake() throws Exception {
        TlsFixtures.PskCreds creds = alice();
        Supplier<ChannelHandler> closer = () -> new ChannelInboundHandlerAdapter() {
            @Override
            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                ((ByteBuf) msg).release();
                ctx.close();
            }
        };
        try (Net.Server srv = net.server(Net.loopback(), closer, false)) {
            Probe probe = new Probe();
            net.connect(srv.address(), client(creds, TlsVersions.TLS_1_3_AND_1_2), probe);
            TlsHandshakeCompletion c = probe.awaitHandshake();
            assertFalse(c.success());
            assertTrue(c.cause().getMessage().startsWith("TLS-PSK handshake rejected by the server (it closed the "
                + "connection)"), c.cause().getMessage());
            assertFalse(probe.error.isDone(), "a plain close is reported by the event only");
            probe.awaitClosed();
        }
    }

    @Test
    void serverReportsTheClientIdentity() throws Exception {
        TlsFixtures.PskCreds creds = alice();
        CompletableFuture<BcTlsHandler> made = new CompletableFuture<>();
        PskKeyFile keys = PskKeyFile.load(creds.keysFile());
        try (Net.Server srv = net.server(Net.loopback(), () -> {
            BcTlsHandler h = BcTlsHandler.pskServer(keys, TlsVersions.TLS_1_3_AND_1_2, TIMEOUT_MS);
            made.complete(h);
            return h;
        }, true)) {
            Probe probe = new Probe();
            Channel ch = net.connect(srv.address(), client(creds, TlsVersions.TLS_1_2), probe);
            probe.awaitSuccess();
            srv.probe().awaitSuccess();
            assertEquals("alice", Probe.await(made, "server handler").pskIdentity());
            assertEquals("TLSv1.2", made.get().protocol());
            ch.close().syncUninterruptibly();
        }
    }

    static byte[] sha256(byte[] b) throws Exception {
        return MessageDigest.getInstance("SHA-256").digest(b);
    }
}
