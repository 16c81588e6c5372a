package io.jbackup.nbd.client;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class NbdUriTest {
    @Test
    void parsesEveryForm() {
        assertEquals(NbdUri.tcp("host", 10809, "disk", false), NbdUri.parse("nbd://host/disk"));
        assertEquals(NbdUri.tcp("host", 10809, "", false), NbdUri.parse("nbd://host"));
        assertEquals(NbdUri.tcp("host", 10809, "", false), NbdUri.parse("nbd://host/"));
        assertEquals(NbdUri.tcp("10.0.0.1", 1234, "a/b", false), NbdUri.parse("nbd://10.0.0.1:1234/a/b"));
        assertEquals(NbdUri.tcp("::1", 10810, "x", true), NbdUri.parse("nbds://[::1]:10810/x"));
        assertEquals(NbdUri.tcp("fe80::1", 10809, "", false), NbdUri.parse("nbd://[fe80::1]/"));
        assertEquals(NbdUri.unix(Path.of("/run/nbd.sock"), "", false),
            NbdUri.parse("nbd+unix:///?socket=/run/nbd.sock"));
        assertEquals(NbdUri.unix(Path.of("/tmp/a b.sock"), "my disk", true),
            NbdUri.parse("nbds+unix:///my%20disk?socket=/tmp/a%20b.sock"));
        assertEquals(NbdUri.tcp("h", 10809, "dïsk", false), NbdUri.parse("nbd://h/d%C3%AFsk"));
        assertEquals(NbdUri.tcp("H", 10809, "", false), NbdUri.parse("NBD://H/"));
    }

    @Test
    void roundTrips() {
        for (String s : new String[] {"nbd://host/disk", "nbd://host:1234/a/b", "nbds://[::1]:10810/x",
            "nbd+unix:///?socket=/run/nbd.sock", "nbds+unix:///my%20disk?socket=/tmp/a%20b.sock", "nbd://h/d%C3%AFsk",
            "nbd://h/x%3Fy%23z%25", "nbd+unix:///e?socket=/p/s%26t%3Du"}) {
            NbdUri u = NbdUri.parse(s);
            assertEquals(s, u.toString());
            assertEquals(u, NbdUri.parse(u.toString()));
        }
        NbdUri odd = NbdUri.unix(Path.of("/tmp/x&y=z#?%"), "a?b#c%d e", false);
        assertEquals(odd, NbdUri.parse(odd.toString()));
        assertEquals("nbd://host/", NbdUri.parse("nbd://host").toString());
    }

    static void bad(String uri, String text) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NbdUri.parse(uri));
        assertTrue(e.getMessage().contains(text), e.getMessage());
    }

    @Test
    void rejectsBadUris() {
        bad("", "empty NBD URI");
        bad("http://host/x", "unsupported scheme 'http'");
        bad("nbd+vsock://1/x", "unsupported scheme");
        bad("/dev/nbd0", "has no scheme");
        bad("nbd:host", "must have '//'");
        bad("nbd+unix:///x", "need ?socket=PATH");
        bad("nbd+unix://host/x?socket=/s", "have no host");
        bad("nbd://host/x?socket=/s", "only valid with nbd+unix");
        bad("nbd://host/x?tls=1", "unsupported query parameter 'tls'");
        bad("nbd:///x", "has no (valid) host");
        bad("nbd://host:99999/x", "port 99999 is not in 1..65535");
        bad("nbd://host/x#frag", "#fragment");
        bad("nbd://user@host/x", "user names");
        bad("nbd://host/a%zz", "Malformed escape pair");
        bad("nbd://host/a b", "malformed NBD URI");
    }
}
