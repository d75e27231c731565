import com.google.gson.JsonObject;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
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
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * "Bad input never costs a quit": one nested class per point of the issue. Decisions that need no
 * process run in-process (the tool's call() with its own streams); the rest run the real program.
 */
class BadInputTests extends TestSupport.WithFakeEnvoy {

    // --- 0. A bad value is exit 2, whatever it is and wherever it came from --------------------------------

    /**
     * One bad input: the environment and arguments it adds to a run that would otherwise wait for
     * the fake, run the app and quit the sidecar; what the one error line must show (the variable or
     * flag, and the value a user wrote); and a secret it must not show.
     */
    record Bad(String name, Map<String, String> env, List<String> args, List<String> shows, String hides) {
        @Override
        public String toString() {
            return name;
        }

        /** A variable with a bad value, shown as written (quoted). */
        static Bad variable(String variable, String value) {
            return new Bad(variable + "=" + value, Map.of(variable, value), List.of(), List.of(variable, "'" + value + "'"),
                    null);
        }

        /** A list variable whose nth entry is bad: the error says which, and shows the list as written. */
        static Bad entry(String variable, String value, int n) {
            return new Bad(variable + "=" + value, Map.of(variable, value), List.of(),
                    List.of(variable, "entry " + n, "'" + value + "'"), null);
        }

        /** Bad variables (NAME, VALUE pairs) whose error shows these fragments. */
        static Bad variables(List<String> shows, String... pairs) {
            return new Bad(String.join(" ", pairs).replace("\n", "\\n").replace("\r", "\\r"), TestSupport.env(pairs),
                    List.of(), shows, null);
        }

        /** A command line, whose error shows these fragments. */
        static Bad flags(List<String> args, String... shows) {
            return new Bad(String.join(" ", args), Map.of(), args, List.of(shows), null);
        }

        Bad hiding(String secret) {
            return new Bad(name, env, args, shows, secret);
        }

        /** Whether the bad value is the log format itself: then the error is a text line. */
        boolean text() {
            return name.contains("LOG_FORMAT=") || name.contains("--log-format");
        }
    }

    static Stream<Bad> badValues() {
        return Stream.of(
                // the variables, each kind of value
                Bad.variable("ENVOY_ADMIN_API", "http://127.0.0.1:15000/a b"),
                Bad.variable("ENVOY_ADMIN_API", "ftp://127.0.0.1:15000"),
                Bad.variable("ENVOY_ADMIN_API", "http://"),
                Bad.variable("ENVOY_ADMIN_API", "notaurl^^"),
                Bad.variable("ENVOY_ADMIN_API", "127.0.0.1:15000"),
                Bad.variable("ENVOY_ADMIN_API", "http://127.0.0.1:15000/?x=1"),
                Bad.variable("ENVOY_ADMIN_API", "http://127.0.0.1:65536"),
                Bad.variable("START_WITHOUT_ENVOY", "yes"),
                Bad.variable("START_WITHOUT_ENVOY", "1"),
                Bad.variable("WAIT_FOR_ENVOY_TIMEOUT", "-5s"),
                Bad.variable("WAIT_FOR_ENVOY_TIMEOUT", "-3s"),
                Bad.variable("WAIT_FOR_ENVOY_TIMEOUT", "soon"),
                Bad.variable("WAIT_FOR_ENVOY_TIMEOUT", "5 s"),
                Bad.variables(List.of("WAIT_FOR_ENVOY_TIMEOUT", "'5s\\r'"), "WAIT_FOR_ENVOY_TIMEOUT", "5s\r"),
                Bad.variable("QUIT_WITHOUT_ENVOY_TIMEOUT", "-1"),
                Bad.variable("QUIT_WITHOUT_ENVOY_TIMEOUT", "1d"),
                Bad.variable("SIDECAR_ABSENT_AFTER", "soon"),
                Bad.variable("ISTIO_QUIT_API", "http://127.0.0.1 :15020"),
                Bad.variable("ISTIO_QUIT_API", "tcp://127.0.0.1:15020"),
                Bad.variable("ISTIO_QUIT_API", "http:///quitquitquit"),
                Bad.variable("ISTIO_QUIT_API", "notaurl^^"),
                Bad.variable("ISTIO_QUIT_API", "http://127.0.0.1:99999"),
                Bad.variable("ISTIO_FALLBACK_PKILL", "on"),
                Bad.variable("ENVOY_KILL_API", "127.0.0.1:15000/quitquitquit"),
                Bad.variable("ENVOY_KILL_API", "http://127.0.0.1:0/quitquitquit"),
                Bad.entry("GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:1/a,htp://127.0.0.1:2/b,http://127.0.0.1:3/c", 2),
                Bad.entry("GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:1/a,notaurl^^", 2),
                Bad.entry("GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:150210/quitquitquit,http://127.0.0.1:18001/x", 1),
                Bad.entry("GENERIC_READY_ENDPOINTS", "http://127.0.0.1:4191/ready,ftp://127.0.0.1/x", 2),
                Bad.entry("GENERIC_READY_ENDPOINTS", "http://127.0.0.1:0/ready", 1),
                Bad.entry("GENERIC_READY_ENDPOINTS", "file:///run/a%00b", 1),
                Bad.entry("GENERIC_READY_ENDPOINTS", "tcp://127.0.0.1", 1),
                Bad.entry("GENERIC_READY_ENDPOINTS", "tcp://127.0.0.1:0", 1),
                Bad.entry("GENERIC_READY_ENDPOINTS", "tcp://127.0.0.1:70000", 1),
                Bad.entry("GENERIC_READY_ENDPOINTS", "tcp://127.0.0.1:5432/db", 1),
                Bad.entry("GENERIC_READY_ENDPOINTS", "file://host/etc/x", 1),
                Bad.entry("GENERIC_READY_ENDPOINTS", "file:relative", 1),
                Bad.entry("GENERIC_READY_ENDPOINTS", "udp://127.0.0.1:53", 1),
                Bad.entry("GENERIC_QUIT_PROCESSES", "vector:NOPE", 1),
                Bad.variable("NEVER_KILL_ISTIO", "yes"),
                Bad.variable("NEVER_KILL_ISTIO_ON_FAILURE", "0"),
                Bad.variable("GENERIC_QUIT_ONLY", "y"),
                Bad.variable("USE_ISTIO_ENDPOINT", "on"),
                Bad.variable("QUIT_REQUEST_TIMEOUT", "0"),
                Bad.variable("QUIT_REQUEST_TIMEOUT", "-2s"),
                Bad.variable("QUIT_REQUEST_TIMEOUT", "fast"),
                Bad.variable("ENVOY_PREFLIGHT_POLL_MAX_INTERVAL", "0ms"),
                Bad.variable("ENVOY_PREFLIGHT_LOGGING", "verbose"),
                Bad.variable("ENVOY_PREFLIGHT_LOG_FORMAT", "yaml"),
                Bad.variable("ENVOY_PREFLIGHT_LOG_FORMAT", "xml"),
                Bad.variables(List.of("ENVOY_PREFLIGHT_SIDECARS", "'envoy-gateway'", "istio", "linkerd", "cloud-sql-proxy",
                        "dapr"), "ENVOY_PREFLIGHT_SIDECARS", "envoy-gateway"), // and says which names it knows
                Bad.variables(List.of("DAPR_API_TOKEN"), "ENVOY_PREFLIGHT_SIDECARS", "dapr",
                        "DAPR_API_TOKEN", "ab\ncd-s3cret").hiding("s3cret"),
                Bad.variables(List.of("DAPR_HTTP_PORT", "'3500/x'"), "ENVOY_PREFLIGHT_SIDECARS", "dapr",
                        "DAPR_HTTP_PORT", "3500/x"),
                // the peers' aliases are read, and so checked, like their variables
                Bad.variable("SCUTTLE_LOGGING", "yes"),
                Bad.variable("NEVER_KILL_ENVOY", "1"),
                Bad.variable("ALWAYS_KILL_ENVOY", "no"),
                // credentials in a bad value are never shown: the value is, redacted
                Bad.variables(List.of("ENVOY_ADMIN_API", "***@"), "ENVOY_ADMIN_API", "http://user:hunter2@bad host:1/x").hiding("hunter2"),
                Bad.variables(List.of("ISTIO_QUIT_API", "***@"), "ISTIO_QUIT_API", "http://user:hunter2@bad host:1/x").hiding("hunter2"),
                Bad.variables(List.of("ISTIO_QUIT_API", "***@"), "ISTIO_QUIT_API", "ftp://agent:hunter2@x").hiding("hunter2"),
                Bad.variables(List.of("GENERIC_QUIT_ENDPOINTS", "***@"), "GENERIC_QUIT_ENDPOINTS", "http://user:hunter2@bad host:1/x")
                        .hiding("hunter2"),
                // '#' makes the rest a fragment, which a quit URL may not have
                Bad.variables(List.of("GENERIC_QUIT_ENDPOINTS", "***@"), "GENERIC_QUIT_ENDPOINTS", "http://admin:s3cr#t@127.0.0.1:1/q")
                        .hiding("s3cr"),
                // the flags, through picocli
                Bad.flags(List.of("--admin-api", "http://127.0.0.1:15000/a b", "true"), "--admin-api", "'http://127.0.0.1:15000/a b'"),
                Bad.flags(List.of("--admin-api", "gopher://127.0.0.1", "true"), "--admin-api", "'gopher://127.0.0.1'"),
                Bad.flags(List.of("--wait-timeout", "-1s", "true"), "--wait-timeout", "'-1s'"),
                Bad.flags(List.of("--give-up-timeout", "ten", "true"), "--give-up-timeout", "'ten'"),
                Bad.flags(List.of("--istio-quit-api", "notaurl^^", "true"), "--istio-quit-api", "'notaurl^^'"),
                Bad.flags(List.of("--generic-quit-endpoint", "http://127.0.0.1:1/a,http//bad", "true"), "--generic-quit-endpoint",
                        "entry 2", "'http://127.0.0.1:1/a,http//bad'"),
                Bad.flags(List.of("--generic-quit-endpoint", "http://127.0.0.1:70000/q", "true"), "--generic-quit-endpoint",
                        "entry 1", "'http://127.0.0.1:70000/q'"),
                Bad.flags(List.of("--ready-endpoint", "notaurl^^", "true"), "--ready-endpoint", "entry 1", "'notaurl^^'"),
                Bad.flags(List.of("--quit-timeout", "0s", "true"), "--quit-timeout", "'0s'"),
                Bad.flags(List.of("--poll-max-interval", "-250ms", "true"), "--poll-max-interval", "'-250ms'"),
                Bad.flags(List.of("--log-format", "xml", "true"), "--log-format", "'xml'"),
                Bad.flags(List.of("--quit-process", "fluent-bit-forwarder", "true"), "--quit-process", "entry 1",
                        "'fluent-bit-forwarder'"),
                Bad.flags(List.of("--start-without-envoy=yes", "true"), "--start-without-envoy", "'yes'"),
                Bad.flags(List.of("--istio-fallback-pkill=1", "true"), "--istio-fallback-pkill", "'1'"),
                Bad.flags(List.of("--never-kill-istio=on", "true"), "--never-kill-istio", "'on'"),
                Bad.flags(List.of("--never-kill-istio-on-failure=no", "true"), "--never-kill-istio-on-failure", "'no'"),
                Bad.flags(List.of("--verbose=2", "true"), "--verbose", "'2'"),
                Bad.flags(List.of("--wait-for-envoy", "true"), "--wait-for-envoy"),
                Bad.flags(List.of("--bogus", "true"), "--bogus"),
                // the modes, and what goes with them
                new Bad("no COMMAND", Map.of(), List.of(), List.of("COMMAND"), null),
                Bad.flags(List.of("--wait-only", "true"), "--wait-only", "COMMAND", "'true'"),
                Bad.flags(List.of("--quit-only", "sh", "-c", "true"), "--quit-only", "COMMAND", "'sh'"),
                Bad.flags(List.of("--exit-code", "3", "true"), "--exit-code", "--quit-only"),
                Bad.flags(List.of("--quit-only", "--exit-code", "256"), "--exit-code", "'256'"),
                Bad.flags(List.of("--quit-only", "--exit-code", "-1"), "--exit-code", "'-1'"),
                Bad.flags(List.of("--quit-only", "--exit-code", "x"), "--exit-code", "'x'"),
                Bad.flags(List.of("--wait-only", "--quit-only"), "--wait-only", "--quit-only"));
    }

    @org.junit.jupiter.api.Tag("fast")
    @Nested
    class ExitTwo {
        /**
         * In-process, so the table costs no JVM a row; IntegrationTests shows a real JVM exiting 2.
         * The run around each row is verbose and in JSON, with a fake to wait for and quit, and an
         * app that leaves a marker: whatever starts, waits or quits would show.
         */
        @ParameterizedTest(name = "{0}")
        @MethodSource("BadInputTests#badValues")
        void isRejectedBeforeAnythingStartsInOneLineNamingWhatWasBad(Bad bad) {
            Map<String, String> env = TestSupport.json("ENVOY_ADMIN_API", fake.url().toString(),
                    "ISTIO_QUIT_API", fake.pilotAgentUrl().toString(), "GENERIC_QUIT_ENDPOINTS", fake.url() + "/drain");
            env.putAll(bad.env());
            List<String> args = new ArrayList<>(bad.args());
            if (bad.args().isEmpty() && !bad.env().isEmpty()) args.addAll(List.of(markerApp(0)));
            TestSupport.Ran r = TestSupport.inProcess(env, args.toArray(String[]::new));
            assertEquals(2, r.code(), r.err());
            String message;
            if (bad.text()) { // the log format itself was bad: the error comes as text
                assertEquals(1, r.err().lines().count(), r.err());
                assertTrue(r.err().startsWith("envoy-preflight: error: "), r.err());
                message = r.err();
            } else {
                List<JsonObject> events = r.events();
                assertEquals(List.of("invalid"), TestSupport.kinds(events), "one line, and nothing else happened: " + r.err());
                assertEquals("error", events.get(0).get("level").getAsString());
                message = events.get(0).get("msg").getAsString();
            }
            for (String shown : bad.shows()) assertTrue(message.contains(shown), "shows " + shown + ": " + message);
            if (bad.hides() != null) assertFalse((r.out() + r.err()).contains(bad.hides()), r.out() + r.err());
            assertEquals("", r.out());
            assertFalse(appStarted(), "the app ran");
            assertEquals(List.of(), fake.requests(), "something was waited for or quit");
        }
    }

    // --- 1. Ports ---------------------------------------------------------------------------------------

    @org.junit.jupiter.api.Tag("fast")
    @Nested
    class Ports {
        @Test
        void portsAtTheEdgesAreFine() {
            TestSupport.Ran r = TestSupport.inProcess(TestSupport.env("GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:1/a,http://127.0.0.1:65535/b"),
                    "--dry-run", "true");
            assertEquals(0, r.code(), r.err());
        }
    }

    // --- 2. One step never stops the next ---------------------------------------------------------------

    @org.junit.jupiter.api.Tag("fast")
    @Nested
    class IsolatedSteps {
        @Test
        void aStepThatThrowsStopsNeitherTheNextNorAFallback() {
            var logged = new TestSupport.Captured(true, EnvoyPreflight.Log.Format.JSON);
            List<String> ran = new ArrayList<>();
            EnvoyPreflight.Plan.Step throwing = new EnvoyPreflight.Plan.Step() {
                public String describe() { return "throw"; }
                public boolean run(EnvoyPreflight.Quit quit) { ran.add("throw"); throw new IllegalStateException("boom"); }
            };
            EnvoyPreflight.Plan.Step second = new EnvoyPreflight.Plan.Step() {
                public String describe() { return "second"; }
                public boolean run(EnvoyPreflight.Quit quit) { ran.add("second"); return true; }
            };
            EnvoyPreflight.Plan.Step fallback = new EnvoyPreflight.Plan.Step() {
                public String describe() { return "fallback"; }
                public boolean run(EnvoyPreflight.Quit quit) { ran.add("fallback"); return true; }
            };
            new EnvoyPreflight.Quit(Duration.ofSeconds(1), logged.log, 0, () -> false).run(new EnvoyPreflight.Plan(List.of(throwing,
                    new EnvoyPreflight.Plan.Fallback(throwing, fallback), second), null), Duration.ZERO);
            assertEquals(List.of("throw", "throw", "fallback", "second"), ran);
            // each throw is an internal error of its own step, logged, and no more
            List<JsonObject> errors = logged.events();
            assertEquals(List.of("internal-error", "internal-error"), TestSupport.kinds(errors), logged.text());
            for (JsonObject e : errors) assertEquals("java.lang.IllegalStateException: boom", e.get("error").getAsString());
        }
    }

    // --- 3. No secret is ever printed -------------------------------------------------------------------

    @org.junit.jupiter.api.Tag("fast")
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
    }

    // --- 4. Credentials as written ----------------------------------------------------------------------

    @Nested
    class Credentials {
        @ParameterizedTest
        @ValueSource(strings = {"ENVOY_ADMIN_API", "ISTIO_QUIT_API", "GENERIC_QUIT_ENDPOINTS"})
        void percentEncodedUserinfoIsSentDecoded(String variable) throws Exception {
            try (var server = new TestSupport.Recorder(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 200,
                    "{\"state\":\"LIVE\"}").leavesOnPost()) {
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
            try (var tool = TestSupport.Tool.start(TestSupport.json("ENVOY_ADMIN_API", fake.url().toString(),
                    "WAIT_FOR_ENVOY_TIMEOUT", "2s", "NEVER_KILL_ISTIO", "true"), "sh", "-c", "exit 4")) {
                assertEquals(4, tool.exitCode(), tool.stderr()); // the wait ended by its timeout, the app ran
                assertFalse(tool.stderr().contains("OutOfMemoryError"), tool.stderr());
                String seen = tool.events("poll").get(0).get("seen").getAsString();
                assertTrue(seen.startsWith("HTTP 200 but the body is longer than 1 MiB"), seen);
                assertEquals(1, tool.events("wait-timeout").size(), tool.stderr());
                assertTrue(tool.events("ready").isEmpty(), tool.stderr());
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
            // The wait timeout only ends a wait for a state that never comes, but the first poll must be
            // answered within it: 1500 ms, where 300 ms once saw no answer beside compiles and CPU hogs.
            try (var tool = TestSupport.Tool.start(verbose("ENVOY_ADMIN_API", fake.url().toString(),
                    "WAIT_FOR_ENVOY_TIMEOUT", "1500ms", "NEVER_KILL_ISTIO", "true"), "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertFalse(tool.stderr().contains("\u001b"), tool.stderr());
                assertTrue(tool.stderr().lines().noneMatch(l -> l.startsWith("envoy-preflight: LIVE")), tool.stderr());
                assertTrue(tool.stderr().contains("state PRE\\nenvoy-preflight: LIVE after 1 polls\\x1b[31m"), tool.stderr());
            }
            try (var tool = TestSupport.Tool.start(verbose("ENVOY_ADMIN_API", fake.url().toString(),
                    "WAIT_FOR_ENVOY_TIMEOUT", "1500ms", "NEVER_KILL_ISTIO", "true",
                    "ENVOY_PREFLIGHT_LOG_FORMAT", "json"),
                    "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertFalse(tool.stderr().contains("\u001b"), tool.stderr());
                // one object a line (or events() throws), the sidecar's text intact inside it
                assertEquals("state PRE\nenvoy-preflight: LIVE after 1 polls\u001b[31m",
                        tool.events("poll").get(0).get("seen").getAsString());
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

    @org.junit.jupiter.api.Tag("fast")
    @Nested
    class Durations {
        @ParameterizedTest
        @CsvSource({"0.0000000001,1", "+5s,5000000000", "-0,0", "+0,0", "-0s,0", "1ns,1", "0.5ns,1"})
        void goDurationsAreReadAsGoReadsThemAndNeverRoundToZero(String raw, long nanos) {
            assertEquals(Duration.ofNanos(nanos), EnvoyPreflight.Setting.duration(raw));
        }

        @ParameterizedTest
        @ValueSource(strings = {"-5s", "+", "-", "+-5s", "--5s"})
        void stillRejected(String raw) {
            assertThrows(IllegalArgumentException.class, () -> EnvoyPreflight.Setting.duration(raw));
        }

        @ParameterizedTest
        @CsvSource({"500000,500us", "1,1ns", "1500000,1500us", "2000000,2ms"})
        void aNonZeroDurationIsNeverShownAsZero(long nanos, String shown) {
            assertEquals(shown, EnvoyPreflight.Log.format(Duration.ofNanos(nanos)));
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
            try (var tool = TestSupport.Tool.start(TestSupport.json("GENERIC_READY_ENDPOINTS", "http://127.0.0.1:" + port
                    + "/ready", "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:" + port + "/quit", "SIDECAR_ABSENT_AFTER", "500ms"),
                    "sh", "-c", app)) {
                TestSupport.await("the absent wait", () -> TestSupport.any(tool.eventsSoFar(), "absent", o -> true));
                try (var late = new TestSupport.Recorder(port, 200)) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                    assertEquals(List.of("GET /ready", "POST /quit"), late.seen(), tool.stderr());
                    JsonObject came = tool.event("late");
                    assertEquals("http://127.0.0.1:" + port + "/ready", came.get("target").getAsString());
                    assertEquals("HTTP 200", came.get("seen").getAsString());
                    assertEquals(200, tool.event("quit").get("status").getAsInt());
                }
            }
        }

        @Test
        void aSidecarStillAbsentAtExitIsNotQuit() throws Exception {
            int port = TestSupport.closedPort();
            try (var tool = TestSupport.Tool.start(TestSupport.json("GENERIC_READY_ENDPOINTS", "http://127.0.0.1:" + port
                    + "/ready", "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:" + port + "/quit", "SIDECAR_ABSENT_AFTER", "300ms"),
                    "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(tool.events("late").isEmpty(), tool.stderr());
                JsonObject nothing = tool.event("quit"); // the one quit line: why nothing, and no POST
                assertTrue(nothing.has("reason") && !nothing.has("url"), nothing.toString());
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
            try (var tool = TestSupport.Tool.start(TestSupport.json(), script.toString())) {
                assertEquals(126, tool.exitCode(), tool.stderr());
                assertFalse(tool.stderr().contains("setpriv") || tool.stderr().contains("env:"), tool.stderr());
                JsonObject notStarted = tool.event("app-start"); // judged before any wrapper could name itself
                assertEquals(126, notStarted.get("code").getAsInt());
                // as bash says it, naming the script and its interpreter
                assertTrue(notStarted.get("error").getAsString().contains(script + ": /nonexistent/sh: bad interpreter"),
                        notStarted.toString());
            }
        }

        @Test
        void aScriptWhoseInterpreterIsNotExecutableIs126() throws Exception {
            Path interpreter = Files.writeString(dir.resolve("not-a-shell"), "x");
            Path script = Files.writeString(dir.resolve("job.sh"), "#! " + interpreter + " -e\necho never\n");
            script.toFile().setExecutable(true);
            try (var tool = TestSupport.Tool.start(TestSupport.json(), script.toString())) {
                assertEquals(126, tool.exitCode(), tool.stderr());
                JsonObject notStarted = tool.event("app-start");
                assertEquals(126, notStarted.get("code").getAsInt());
                assertTrue(notStarted.get("error").getAsString().contains(interpreter + ": bad interpreter"),
                        notStarted.toString());
            }
        }
    }
}
