import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * "Bad input never costs a quit": one nested class per point of the issue. Decisions that need no
 * process run in-process (the tool's call() with its own streams); the rest run the real program.
 */
class BadInputTests extends TestSupport.WithFakeEnvoy {

    // --- 1. Ports ---------------------------------------------------------------------------------------

    @Nested
    class Ports {
        @ParameterizedTest(name = "{0}={1}")
        @CsvSource(delimiter = '|', value = {
                "GENERIC_QUIT_ENDPOINTS|http://127.0.0.1:150210/quitquitquit,http://127.0.0.1:18001/x",
                "GENERIC_READY_ENDPOINTS|http://127.0.0.1:0/ready",
                "ENVOY_ADMIN_API|http://127.0.0.1:65536",
                "ISTIO_QUIT_API|http://127.0.0.1:99999",
                "ENVOY_KILL_API|http://127.0.0.1:0/quitquitquit"})
        void aPortOutsideOneTo65535IsExit2AtStartNamingTheVariable(String variable, String value) {
            TestSupport.Ran r = TestSupport.inProcess(TestSupport.env(variable, value), "--dry-run", "true");
            assertEquals(2, r.code(), r.err());
            assertTrue(r.err().contains(variable + ": ") && r.err().contains("port"), r.err());
        }

        @Test
        void aFlagIsNamedToo() {
            TestSupport.Ran r = TestSupport.inProcess(TestSupport.env(), "--generic-quit-endpoint", "http://127.0.0.1:70000/q", "--dry-run", "true");
            assertEquals(2, r.code(), r.err());
            assertTrue(r.err().contains("--generic-quit-endpoint: "), r.err());
        }

        @Test
        void portsAtTheEdgesAreFine() {
            TestSupport.Ran r = TestSupport.inProcess(TestSupport.env("GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:1/a,http://127.0.0.1:65535/b"),
                    "--dry-run", "true");
            assertEquals(0, r.code(), r.err());
        }
    }

    // --- 2. One step never stops the next ---------------------------------------------------------------

    @Nested
    class IsolatedSteps {
        @Test
        void aStepThatThrowsStopsNeitherTheNextNorAFallback() {
            var logged = new TestSupport.Captured(true, EnvoyPreflight.Log.Format.TEXT);
            List<String> ran = new ArrayList<>();
            EnvoyPreflight.Quit.Step throwing = new EnvoyPreflight.Quit.Step() {
                public String describe() { return "throw"; }
                public boolean run(EnvoyPreflight.Quit quit) { ran.add("throw"); throw new IllegalStateException("boom"); }
            };
            EnvoyPreflight.Quit.Step second = new EnvoyPreflight.Quit.Step() {
                public String describe() { return "second"; }
                public boolean run(EnvoyPreflight.Quit quit) { ran.add("second"); return true; }
            };
            EnvoyPreflight.Quit.Step fallback = new EnvoyPreflight.Quit.Step() {
                public String describe() { return "fallback"; }
                public boolean run(EnvoyPreflight.Quit quit) { ran.add("fallback"); return true; }
            };
            new EnvoyPreflight.Quit(Duration.ofSeconds(1), logged.log).run(new EnvoyPreflight.Quit.Plan(List.of(throwing,
                    new EnvoyPreflight.Quit.Fallback(throwing, fallback), second), null));
            assertEquals(List.of("throw", "throw", "fallback", "second"), ran);
            assertTrue(logged.text().contains("boom"), logged.text());
        }
    }

    // --- 3. No secret is ever printed -------------------------------------------------------------------

    @Nested
    class Secrets {
        static final List<String> PASSWORDS = List.of("s3cr#t", "s3/cr", "s3?cr", "s3@cr", "s3%cr", "s3 cr",
                "s3\u00fcr\u65e5", "s3,cr", "s3cr\u0007");

        /** Every way a value is shown: an error, -v's configuration line, --dry-run, --check; text and JSON. */
        @Test
        void noPasswordReachesStdoutOrStderrInAnyModeOrFormat() throws Exception {
            int port = TestSupport.closedPort();
            for (String password : PASSWORDS) {
                for (String variable : List.of("ENVOY_ADMIN_API", "ISTIO_QUIT_API", "GENERIC_QUIT_ENDPOINTS",
                        "GENERIC_READY_ENDPOINTS", "ENVOY_KILL_API")) {
                    for (String format : List.of("text", "json")) {
                        String url = "http://admin:" + password + "@127.0.0.1:" + port;
                        for (String[] args : List.of(new String[]{"--dry-run", "true"}, new String[]{"--check"},
                                new String[]{"--dry-run", "-v", "true"})) {
                            Map<String, String> env = TestSupport.env(variable, url, "ENVOY_PREFLIGHT_LOG_FORMAT", format,
                                    "GENERIC_READY_ENDPOINTS", variable.equals("GENERIC_READY_ENDPOINTS") ? url
                                            : "http://127.0.0.1:" + port + "/ready");
                            TestSupport.Ran r = TestSupport.inProcess(env, args);
                            String all = r.out() + r.err();
                            String where = variable + " " + format + " " + String.join(" ", args) + ": ";
                            assertFalse(all.contains(password) || all.contains("s3"), where + all);
                            assertFalse(all.contains("admin:"), where + all);
                        }
                    }
                }
            }
        }

        @Test
        void aBadValuesPasswordIsNeverShownWhateverItHolds() throws Exception {
            for (String password : PASSWORDS) {
                for (String format : List.of("text", "json")) {
                    TestSupport.Ran r = TestSupport.inProcess(TestSupport.env("ENVOY_ADMIN_API", "http://admin:" + password + "@127.0.0.1:18001 x",
                            "ENVOY_PREFLIGHT_LOG_FORMAT", format), "true");
                    assertEquals(2, r.code(), r.err());
                    assertTrue(r.err().contains("ENVOY_ADMIN_API"), r.err());
                    assertFalse(r.err().contains("s3") || r.err().contains("admin:"), r.err());
                }
            }
        }

        @Test
        void theVerboseLogOfARealRunShowsNoPassword() throws Exception {
            fake.override("/q", exchange -> FakeEnvoy.reply(exchange, 200, "text/plain", "ok"));
            String url = "http://admin:s3cr#t@" + fake.url().getHost() + ":" + fake.url().getPort() + "/q";
            try (var tool = TestSupport.Tool.start(verbose("GENERIC_QUIT_ENDPOINTS", url), "true")) {
                assertEquals(2, tool.exitCode(), tool.stderr()); // '#' makes it a fragment: rejected, unshown
                assertFalse(tool.stderr().contains("s3cr"), tool.stderr());
            }
        }
    }

    // --- 4. Credentials as written ----------------------------------------------------------------------

    @Nested
    class Credentials {
        @ParameterizedTest
        @ValueSource(strings = {"ENVOY_ADMIN_API", "ISTIO_QUIT_API", "GENERIC_QUIT_ENDPOINTS"})
        void percentEncodedUserinfoIsSentDecoded(String variable) throws Exception {
            try (var server = new TestSupport.Recorder(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 200,
                    "{\"state\":\"LIVE\"}")) {
                String url = "http://us%40er:p%40ss%3Aw@127.0.0.1:" + server.port()
                        + (variable.equals("GENERIC_QUIT_ENDPOINTS") ? "/quit" : "");
                Map<String, String> env = TestSupport.env(variable, url);
                // the Istio quit API is used beside an admin API (this one without credentials)
                if (variable.equals("ISTIO_QUIT_API")) env.put("ENVOY_ADMIN_API", server.url());
                try (var tool = TestSupport.Tool.start(env, "true")) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                }
                List<String> auth = server.requests.stream().filter(r -> r.method().equals("POST"))
                        .map(r -> r.headers().getFirst("Authorization")).filter(java.util.Objects::nonNull)
                        .map(h -> new String(Base64.getDecoder().decode(h.substring(6)), StandardCharsets.UTF_8)).toList();
                assertFalse(auth.isEmpty(), "a POST with credentials");
                for (String sent : auth) assertEquals("us@er:p@ss:w", sent);
            }
        }
    }

    // --- 5. A sidecar's answer can't kill the wait --------------------------------------------------------

    @Nested
    class HugeAnswers {
        @ParameterizedTest
        @ValueSource(strings = {"state", "key"})
        void aHugeStateOrKeyIsNotReadyYetAndTheWaitGoesOn(String what) throws Exception {
            fake.override("/server_info", exchange -> {
                exchange.sendResponseHeaders(200, 0);
                try (var out = new java.io.BufferedOutputStream(exchange.getResponseBody(), 65536)) {
                    out.write((what.equals("state") ? "{\"state\":\"" : "{\"").getBytes());
                    byte[] chunk = "L".repeat(65536).getBytes();
                    for (int i = 0; i < 3200; i++) out.write(chunk); // 200 MB
                    out.write((what.equals("state") ? "\"}" : "\":1,\"state\":\"LIVE\"}").getBytes());
                } catch (java.io.IOException e) {
                    // the tool stopped reading: as it should
                }
            });
            try (var tool = TestSupport.Tool.start(verbose("ENVOY_ADMIN_API", fake.url().toString(),
                    "WAIT_FOR_ENVOY_TIMEOUT", "2s", "NEVER_KILL_ISTIO", "true"), "sh", "-c", "exit 4")) {
                assertEquals(4, tool.exitCode(), tool.stderr()); // the wait ended by its timeout, the app ran
                assertFalse(tool.stderr().contains("OutOfMemoryError"), tool.stderr());
                assertTrue(tool.stderr().contains("poll 1: HTTP 200 but a name or the state is longer than 64 KiB"), tool.stderr());
            }
        }
    }

    // --- 6. A sidecar can't write our log ------------------------------------------------------------------

    @Nested
    class ControlCharacters {
        @Test
        void aStateWithANewlineOrEscapesIsLoggedEscaped() throws Exception {
            fake.override("/server_info", exchange -> FakeEnvoy.reply(exchange, 200, "application/json",
                    "{\"state\":\"PRE\\nenvoy-preflight: LIVE after 1 polls\\u001b[31m\"}"));
            try (var tool = TestSupport.Tool.start(verbose("ENVOY_ADMIN_API", fake.url().toString(),
                    "WAIT_FOR_ENVOY_TIMEOUT", "300ms", "NEVER_KILL_ISTIO", "true"), "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertFalse(tool.stderr().contains("\u001b"), tool.stderr());
                assertTrue(tool.stderr().lines().noneMatch(l -> l.startsWith("envoy-preflight: LIVE")), tool.stderr());
                assertTrue(tool.stderr().contains("state PRE\\nenvoy-preflight: LIVE after 1 polls\\x1b[31m"), tool.stderr());
            }
            try (var tool = TestSupport.Tool.start(verbose("ENVOY_ADMIN_API", fake.url().toString(),
                    "WAIT_FOR_ENVOY_TIMEOUT", "300ms", "NEVER_KILL_ISTIO", "true", "ENVOY_PREFLIGHT_LOG_FORMAT", "json"),
                    "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                tool.events(); // one object a line, or this throws
                assertFalse(tool.stderr().contains("\u001b"), tool.stderr());
            }
        }

        @Test
        void theCommandIsEscapedToo() {
            var logged = new TestSupport.Captured(true, EnvoyPreflight.Log.Format.TEXT);
            logged.log.info(EnvoyPreflight.Log.Event.APP_START, "started the app: [echo, a\nb\rc\td\u001b]");
            assertEquals("envoy-preflight: started the app: [echo, a\\nb\\rc\\td\\x1b]\n", logged.text());
        }
    }

    // --- 7. Durations as Go reads them -----------------------------------------------------------------------

    @Nested
    class Durations {
        @ParameterizedTest
        @CsvSource({"0.0000000001,1", "+5s,5000000000", "-0,0", "+0,0", "-0s,0", "1ns,1", "0.5ns,1"})
        void goDurationsAreReadAsGoReadsThemAndNeverRoundToZero(String raw, long nanos) {
            assertEquals(Duration.ofNanos(nanos), EnvoyPreflight.Values.duration(raw));
        }

        @ParameterizedTest
        @ValueSource(strings = {"-5s", "+", "-", "+-5s", "--5s"})
        void stillRejected(String raw) {
            assertThrows(IllegalArgumentException.class, () -> EnvoyPreflight.Values.duration(raw));
        }

        @Test
        void aTrailingCarriageReturnIsShownEscaped() {
            TestSupport.Ran r = TestSupport.inProcess(TestSupport.env("WAIT_FOR_ENVOY_TIMEOUT", "5s\r"), "--dry-run", "true");
            assertEquals(2, r.code(), r.err());
            assertTrue(r.err().contains("'5s\\r'"), r.err());
        }

        @ParameterizedTest
        @CsvSource({"500000,500us", "1,1ns", "1500000,1500us", "2000000,2ms"})
        void aNonZeroDurationIsNeverShownAsZero(long nanos, String shown) {
            assertEquals(shown, EnvoyPreflight.Values.format(Duration.ofNanos(nanos)));
        }
    }

    // --- 8. Each quit URL once ---------------------------------------------------------------------------------

    @Nested
    class EachUrlOnce {
        @Test
        void aUrlGivenTwiceIsPostedOnceInTheFirstPlaceItAppears() throws Exception {
            String pilot = fake.pilotAgentUrl().toString();
            String drain = fake.url() + "/drain";
            Map<String, String> env = TestSupport.env("GENERIC_QUIT_ENDPOINTS", drain + "," + pilot + "/quitquitquit,"
                    + drain, "ISTIO_QUIT_API", pilot, "ENVOY_ADMIN_API", fake.url().toString());
            fake.override("/drain", exchange -> FakeEnvoy.reply(exchange, 200, "text/plain", "ok"));
            TestSupport.Ran dry = TestSupport.inProcess(env, "--dry-run", "true");
            String plan = dry.out().lines().filter(l -> l.startsWith("at exit with code 0: ")).findFirst().orElseThrow();
            assertEquals("at exit with code 0: POST " + drain + "; then POST " + pilot + "/quitquitquit", plan);
            try (var tool = TestSupport.Tool.start(env, "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
            }
            assertEquals(List.of("admin POST /drain", "pilot-agent POST /quitquitquit"), posts());
        }
    }

    // --- 9. A sidecar that comes late is still quit ----------------------------------------------------------------

    @Nested
    class LateSidecar {
        @Test
        void aSidecarThatStartsListeningAfterAnAbsentWaitIsQuitAtExit() throws Exception {
            int port = TestSupport.closedPort();
            String app = "sleep 1.2; echo app";
            try (var tool = TestSupport.Tool.start(verbose("GENERIC_READY_ENDPOINTS", "http://127.0.0.1:" + port + "/ready",
                    "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:" + port + "/quit", "SIDECAR_ABSENT_AFTER", "500ms"),
                    "sh", "-c", app)) {
                TestSupport.await("the absent wait", () -> tool.stderr().contains("there is no sidecar"));
                try (var late = new TestSupport.Recorder(port, 200)) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                    assertEquals(List.of("GET /ready", "POST /quit"), late.seen(), tool.stderr());
                    assertTrue(tool.stderr().contains("answers now (HTTP 200)"), tool.stderr());
                }
            }
        }

        @Test
        void aSidecarStillAbsentAtExitIsNotQuit() throws Exception {
            int port = TestSupport.closedPort();
            try (var tool = TestSupport.Tool.start(verbose("GENERIC_READY_ENDPOINTS", "http://127.0.0.1:" + port + "/ready",
                    "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:" + port + "/quit", "SIDECAR_ABSENT_AFTER", "300ms"), "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(tool.stderr().contains("quitting nothing"), tool.stderr());
                assertFalse(tool.stderr().contains("POST "), tool.stderr());
            }
        }
    }

    // --- 10. The app's own failures name the app ------------------------------------------------------------------

    @Nested
    class AppFailures {
        @Test
        void aScriptWithAMissingInterpreterIs126NamingTheScript() throws Exception {
            Path script = Files.writeString(dir.resolve("job.sh"), "#!/nonexistent/sh\necho never\n");
            script.toFile().setExecutable(true);
            try (var tool = TestSupport.Tool.start(TestSupport.env(), script.toString())) {
                assertEquals(126, tool.exitCode(), tool.stderr());
                assertTrue(tool.stderr().contains(script + ": /nonexistent/sh: bad interpreter"), tool.stderr());
                assertFalse(tool.stderr().contains("setpriv") || tool.stderr().contains("env:"), tool.stderr());
            }
        }

        @Test
        void aScriptWhoseInterpreterIsNotExecutableIs126() throws Exception {
            Path interpreter = Files.writeString(dir.resolve("not-a-shell"), "x");
            Path script = Files.writeString(dir.resolve("job.sh"), "#! " + interpreter + " -e\necho never\n");
            script.toFile().setExecutable(true);
            try (var tool = TestSupport.Tool.start(TestSupport.env(), script.toString())) {
                assertEquals(126, tool.exitCode(), tool.stderr());
                assertTrue(tool.stderr().contains("bad interpreter"), tool.stderr());
            }
        }
    }
}
