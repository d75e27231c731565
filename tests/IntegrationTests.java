import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.parallel.ResourceLock;
import org.junit.jupiter.api.parallel.ResourceAccessMode;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The real program, as a separate process, against FakeEnvoy: one nested class per numbered point. */
class IntegrationTests extends TestSupport.WithFakeEnvoy {

    // --- helpers -----------------------------------------------------------------------------

    /** A verbose run in JSON against the fake's admin API: the tests read its decisions as events. */
    Map<String, String> admin(String... more) {
        Map<String, String> env = TestSupport.json(more);
        env.put("ENVOY_ADMIN_API", fake.url().toString());
        return env;
    }

    /** The readiness target the admin API is polled at, as the events name it. */
    String serverInfo() {
        return fake.url() + "/server_info";
    }

    /** What each poll saw, in order. */
    static List<String> seen(TestSupport.Tool tool) {
        return TestSupport.each(tool.events("poll"), "seen");
    }

    // --- 1. waiting ----------------------------------------------------------------------------

    @Nested
    class Waiting {
        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void startsTheAppOnlyOnceEnvoyIsLive() throws Exception {
            // LIVE 600 ms after the tool's first poll, whenever its JVM gets there on a busy machine
            java.util.concurrent.atomic.AtomicLong live = new java.util.concurrent.atomic.AtomicLong(Long.MAX_VALUE);
            fake.override("/server_info", exchange -> {
                long now = System.currentTimeMillis();
                String state = "INITIALIZING";
                if (live.compareAndSet(Long.MAX_VALUE, now + 600)) state = "PRE_INITIALIZING";
                else if (now >= live.get()) state = "LIVE";
                FakeEnvoy.reply(exchange, 200, "application/json", "{\"state\":\"" + state + "\"}");
            });
            Path started = dir.resolve("started-at");
            try (var tool = TestSupport.Tool.start(admin(), "sh", "-c", "date +%s%3N > '" + started + "'")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                long liveAtMillis = live.get();
                long startedAt = Long.parseLong(TestSupport.read(started).strip());
                assertTrue(startedAt >= liveAtMillis - 20, "started " + (liveAtMillis - startedAt) + " ms before LIVE");
                // the budget: the app starts within 300 ms of LIVE (poll pause capped at 200 ms, plus its start:
                // the tool's app-start line, not the time sh and date take); twice that here, for a busy machine
                long ms = TestSupport.epochMillis(tool.event("app-start")) - liveAtMillis;
                assertTrue(ms < 600, "started " + ms + " ms after LIVE");
                long polls = fake.requests().stream().filter(r -> r.path().equals("/server_info")).count();
                assertTrue(polls >= 3, "polls: " + polls);
                JsonObject ready = tool.event("ready");
                assertEquals(serverInfo(), ready.get("target").getAsString());
                assertEquals(polls, ready.get("polls").getAsLong(), tool.stderr());
                assertTrue(seen(tool).contains("state PRE_INITIALIZING"), seen(tool).toString());
                assertTrue(seen(tool).contains("state INITIALIZING"), seen(tool).toString());
                assertEquals("state LIVE", seen(tool).get(seen(tool).size() - 1));
            }
        }

        @Test
        void aNestedLiveStateDoesNotCountAndTheWaitTimeoutStartsTheAppAnyway() throws Exception {
            fake.forceState("INITIALIZING"); // its node metadata says "state": "LIVE"
            long t0 = System.nanoTime();
            try (var tool = TestSupport.Tool.start(admin("WAIT_FOR_ENVOY_TIMEOUT", "700ms"), markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                // a lower bound only: a busy machine makes it later, never earlier
                assertTrue(System.nanoTime() - t0 >= TimeUnit.MILLISECONDS.toNanos(700));
                assertTrue(appStarted());
                JsonObject timedOut = tool.event("wait-timeout");
                assertEquals("warning", timedOut.get("level").getAsString());
                assertEquals(serverInfo(), timedOut.get("target").getAsString());
                assertEquals(List.of("wait-timeout", "app-start"), TestSupport.kinds(tool.events()).stream()
                        .filter(k -> k.equals("wait-timeout") || k.equals("app-start")).toList(), "then the app started");
                assertTrue(tool.events("ready").isEmpty(), "the nested LIVE was taken for the state: " + tool.stderr());
            }
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void theGiveUpTimeoutExits69WithoutStartingTheAppAndWinsOverTheWaitTimeout() throws Exception {
            fake.forceState("INITIALIZING");
            try (var tool = TestSupport.Tool.start(admin("WAIT_FOR_ENVOY_TIMEOUT", "200ms",
                    "QUIT_WITHOUT_ENVOY_TIMEOUT", "800ms"), markerApp(0))) {
                assertEquals(69, tool.exitCode(), tool.stderr());
                assertFalse(appStarted());
                JsonObject gaveUp = tool.event("gave-up");
                assertEquals("error", gaveUp.get("level").getAsString());
                assertEquals(serverInfo(), gaveUp.get("target").getAsString());
                assertTrue(tool.events("wait-timeout").isEmpty(), "the give-up timeout wins: " + tool.stderr());
                assertTrue(tool.events("app-start").isEmpty(), tool.stderr());
                long ms = TestSupport.waitedMillis(tool.events(), gaveUp);
                // by the tool's own clock (no JVM start in it): 2x the limit is scheduling latency to spare
                assertTrue(ms >= 800 && ms < 1600, "gave up after " + ms + " ms of an 800 ms limit");
                assertEquals(List.of("admin POST /quitquitquit"), posts(), "the sidecar is still told to quit");
            }
        }

        @Test
        void aRefusingAdminApiIsNotYet() throws Exception {
            Map<String, String> env = admin("WAIT_FOR_ENVOY_TIMEOUT", "500ms", "NEVER_KILL_ISTIO", "true");
            env.put("ENVOY_ADMIN_API", "http://127.0.0.1:" + TestSupport.closedPort());
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(appStarted());
                assertEquals("connection refused", seen(tool).get(0));
                assertEquals(1, tool.events("wait-timeout").size(), tool.stderr());
            }
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void aHungAdminApiNeverStallsTheWait() throws Exception {
            fake.override("/server_info", exchange -> TestSupport.sleep(20_000));
            try (var tool = TestSupport.Tool.start(admin("WAIT_FOR_ENVOY_TIMEOUT", "1500ms", "NEVER_KILL_ISTIO", "true"),
                    markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                long ms = (System.nanoTime() - fake.requests().get(0).nanos()) / 1_000_000;
                // 2x the timeout: after it come only the app (sh) and the JVM's exit, tens of ms when idle
                assertTrue(ms < 3000, "exited " + ms + " ms after the first poll; the wait timeout is 1500 ms");
                assertEquals("no answer within 1s", seen(tool).get(0));
                assertTrue(appStarted());
            }
        }

        @Test
        void wrongAnswersAreNotYetUntilLive() throws Exception {
            AtomicInteger calls = new AtomicInteger();
            fake.override("/server_info", exchange -> {
                switch (calls.incrementAndGet()) {
                    case 1 -> FakeEnvoy.reply(exchange, 503, "text/plain", "no healthy upstream");
                    case 2 -> FakeEnvoy.reply(exchange, 200, "text/html", "<html>LIVE</html>");
                    case 3 -> FakeEnvoy.reply(exchange, 200, "application/json", "{\"status\":\"LIVE\"}");
                    case 4 -> FakeEnvoy.reply(exchange, 200, "application/json", "{\"state\":\"DRAINING\"}");
                    default -> FakeEnvoy.reply(exchange, 200, "application/json", FakeEnvoy.serverInfo("LIVE"));
                }
            });
            try (var tool = TestSupport.Tool.start(admin(), markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                List<String> expected = List.of("HTTP 503", "HTTP 200 but not a JSON object",
                        "HTTP 200 without a top-level state", "state DRAINING", "state LIVE");
                assertEquals(expected.size(), seen(tool).size(), seen(tool).toString());
                for (int i = 0; i < expected.size(); i++) { // a parser's own words may follow
                    assertTrue(seen(tool).get(i).startsWith(expected.get(i)), seen(tool).toString());
                }
                assertEquals(5, tool.event("ready").get("polls").getAsInt());
            }
        }

        @Test
        void startWithoutEnvoyDoesNotWaitButStillQuits() throws Exception {
            fake.forceState("PRE_INITIALIZING");
            try (var tool = TestSupport.Tool.start(admin("START_WITHOUT_ENVOY", "true"), markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(appStarted());
                assertFalse(fake.requests().stream().anyMatch(r -> r.path().equals("/server_info")));
                assertEquals(List.of("admin POST /quitquitquit"), posts());
            }
        }

        @Test
        void withoutAnAdminApiTheAppRunsDirectly() throws Exception {
            try (var tool = TestSupport.Tool.start(TestSupport.json(), markerApp(5))) {
                assertEquals(5, tool.exitCode(), tool.stderr());
                assertTrue(appStarted());
                assertTrue(tool.events("wait").isEmpty(), tool.stderr());
                assertEquals(List.of(), fake.requests());
            }
        }
    }

    // --- 2. starting the app -------------------------------------------------------------------

    @Nested
    class Starting {
        @Test
        void argumentsReachTheAppVerbatimAndStdoutIsTheApps() throws Exception {
            try (var tool = TestSupport.Tool.start(admin(), "printf", "%s|", "a b", "--help", "-v",
                    "--admin-api=x", "@file", "*")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals("a b|--help|-v|--admin-api=x|@file|*|", tool.stdout());
            }
        }

        @Test
        void stdinEnvironmentAndWorkingDirectoryAreTheApps() throws Exception {
            Path input = Files.writeString(dir.resolve("input"), "line one\nline two\n");
            Map<String, String> env = admin("APP_SETTING", "value with spaces");
            try (var tool = TestSupport.Tool.start(env, input, "sh", "-c", "cat; echo \"$APP_SETTING\"; pwd")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals("line one\nline two\nvalue with spaces\n" + Path.of("").toAbsolutePath() + "\n",
                        tool.stdout());
            }
        }

        @Test
        void aMissingCommandExits127AndStillQuitsTheSidecar() throws Exception {
            try (var tool = TestSupport.Tool.start(admin(), "no-such-app-anywhere", "x")) {
                assertEquals(127, tool.exitCode());
                JsonObject notStarted = tool.event("app-start");
                assertEquals("error", notStarted.get("level").getAsString());
                assertEquals(127, notStarted.get("code").getAsInt());
                assertTrue(notStarted.get("error").getAsString().contains("'no-such-app-anywhere'"), notStarted.toString());
                assertEquals(List.of("admin POST /quitquitquit"), posts());
            }
        }

        @Test
        void aCommandThatIsNotExecutableExits126() throws Exception {
            Path script = Files.writeString(dir.resolve("not-executable.sh"), "#!/bin/sh\necho hi\n");
            try (var tool = TestSupport.Tool.start(admin("NEVER_KILL_ISTIO", "true"), script.toString())) {
                assertEquals(126, tool.exitCode());
                JsonObject notStarted = tool.event("app-start");
                assertEquals(126, notStarted.get("code").getAsInt());
                assertTrue(notStarted.get("error").getAsString().contains(script.toString()), notStarted.toString());
                assertEquals("", tool.stdout());
            }
        }

        @Test
        void theAppStartsWithNoSignalBlockedWhateverTheJdkDoes() throws Exception {
            // JDKs before 20 start children with SIGQUIT blocked (JDK-8234262); the app must not notice.
            try (var tool = TestSupport.Tool.start(admin(), "grep", "^SigBlk", "/proc/self/status")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals("SigBlk:\t0000000000000000\n", tool.stdout());
            }
        }

        @Test
        void aCommandFoundOnPathIsRunByItsName() throws Exception {
            Path bin = Files.createDirectories(dir.resolve("bin"));
            Path app = Files.writeString(bin.resolve("my-app"), "#!/bin/sh\necho \"argv0=$0\"\n");
            Files.setPosixFilePermissions(app, PosixFilePermissions.fromString("rwxr-xr-x"));
            Map<String, String> env = admin("PATH", bin + ":" + System.getenv("PATH"));
            try (var tool = TestSupport.Tool.start(env, "my-app")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(tool.stdout().startsWith("argv0="), tool.stdout());
            }
        }
    }

    // --- 3. signals ----------------------------------------------------------------------------

    @Nested
    class Signals {
        @ParameterizedTest
        @ValueSource(strings = {"HUP", "INT", "TERM", "USR1", "USR2", "ALRM", "WINCH"})
        void eachIsRelayedAsTheSameSignal(String signal) throws Exception {
            var app = new TestSupport.SignalApp(dir);
            try (var tool = TestSupport.Tool.start(admin(), app.command(0))) {
                app.awaitReady();
                tool.signal(signal);
                app.awaitSignal(signal);
                app.stop();
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of(signal), app.received());
                JsonObject relayed = tool.event("signal");
                assertEquals(signal, relayed.get("signal").getAsString());
                assertTrue(relayed.get("relayed").getAsBoolean(), relayed.toString());
                assertEquals(tool.event("app-start").get("pid").getAsLong(), relayed.get("pid").getAsLong());
            }
        }

        @Test
        void chldUrgAndPipeAreNeverRelayed() throws Exception {
            var app = new TestSupport.SignalApp(dir);
            try (var tool = TestSupport.Tool.start(admin(), app.command(0))) {
                app.awaitReady();
                tool.signal("CHLD");
                tool.signal("URG");
                tool.signal("PIPE");
                tool.signal("USR1"); // a marker: once it arrives, the three before it would have too
                app.awaitSignal("USR1");
                app.stop();
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("USR1"), app.received());
            }
        }

        @ParameterizedTest
        @CsvSource({"TERM,143", "INT,130", "HUP,129"})
        void aStopSignalDuringTheWaitNeverStartsTheApp(String signal, int code) throws Exception {
            fake.forceState("INITIALIZING");
            try (var tool = TestSupport.Tool.start(admin(), markerApp(0))) {
                TestSupport.await("the first poll", () -> !fake.requests().isEmpty());
                tool.signal(signal);
                assertEquals(code, tool.exitCode(), tool.stderr());
                assertFalse(appStarted());
                JsonObject stopped = tool.event("stopped");
                assertEquals(signal, stopped.get("signal").getAsString());
                assertEquals(serverInfo(), stopped.get("target").getAsString());
                assertTrue(tool.events("app-start").isEmpty(), tool.stderr());
                assertEquals(List.of("admin POST /quitquitquit"), posts());
            }
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void aStopSignalCutsAHungPollShort() throws Exception {
            fake.override("/server_info", exchange -> TestSupport.sleep(20_000));
            try (var tool = TestSupport.Tool.start(admin("NEVER_KILL_ISTIO", "true"), markerApp(0))) {
                TestSupport.await("the first poll", () -> !fake.requests().isEmpty());
                long t0 = System.nanoTime();
                tool.signal("TERM");
                assertEquals(143, tool.exitCode(), tool.stderr());
                long ms = (System.nanoTime() - t0) / 1_000_000;
                // the point is "before the poll's 1 s timeout"; the abort and the exit take about 100 ms idle
                assertTrue(ms < 900, "exited " + ms + " ms after TERM, more than a poll's timeout");
            }
        }

        @ParameterizedTest
        @ValueSource(strings = {"USR1", "USR2", "ALRM", "WINCH"})
        void otherSignalsDuringTheWaitAreDroppedNotSentToAnAppThatCannotHandleThemYet(String signal) throws Exception {
            fake.forceState("INITIALIZING");
            try (var tool = TestSupport.Tool.start(admin(), "sh", "-c", "sleep 0.3; echo app ran")) {
                TestSupport.await("the first poll", () -> !fake.requests().isEmpty());
                tool.signal(signal);
                TestSupport.await("the signal to be dropped", () -> TestSupport.any(tool.eventsSoFar(), "signal",
                        o -> o.get("signal").getAsString().equals(signal)));
                JsonObject dropped = tool.event("signal");
                assertFalse(dropped.get("relayed").getAsBoolean(), dropped.toString());
                assertEquals("warning", dropped.get("level").getAsString(), "lost to the app: " + dropped);
                fake.forceState(null); // LIVE: the app starts, and no signal follows it
                assertEquals(0, tool.exitCode(), tool.stderr()); // a USR1 sent at the start: 138
                assertEquals("app ran\n", tool.stdout());
                assertEquals(1, tool.events("signal").size(), "nothing relayed later: " + tool.stderr());
            }
        }
    }

    // --- 4. exit codes -------------------------------------------------------------------------

    @Nested
    class ExitCodes {
        @ParameterizedTest
        @ValueSource(ints = {0, 1, 3, 42, 255})
        void theAppsCodeIsTheToolsCode(int code) throws Exception {
            try (var tool = TestSupport.Tool.start(admin(), markerApp(code))) {
                assertEquals(code, tool.exitCode(), tool.stderr());
                assertEquals(code, tool.event("app-exit").get("code").getAsInt());
                assertEquals(code, tool.event("exit").get("code").getAsInt());
            }
        }

        @ParameterizedTest
        @CsvSource({"KILL,137", "TERM,143", "SEGV,139"})
        void deathBySignalIs128PlusN(String signal, int code) throws Exception {
            try (var tool = TestSupport.Tool.start(admin(), "sh", "-c", "kill -s " + signal + " $$")) {
                assertEquals(code, tool.exitCode(), tool.stderr());
                JsonObject exited = tool.event("app-exit");
                assertEquals(code, exited.get("code").getAsInt());
                assertEquals(signal, exited.get("signal").getAsString());
                assertEquals(List.of("admin POST /quitquitquit"), posts());
            }
        }
    }

    // --- 5. quitting the sidecar ---------------------------------------------------------------

    @Nested
    class Quitting {
        @Test
        void genericEndpointsInOrderThenTheIstioApi() throws Exception {
            fake.override("/drain/a", exchange -> FakeEnvoy.reply(exchange, 200, "text/plain", "a"));
            fake.override("/drain/b", exchange -> FakeEnvoy.reply(exchange, 500, "text/plain", "b failed"));
            Map<String, String> env = admin("ISTIO_QUIT_API", fake.pilotAgentUrl() + "/",
                    "GENERIC_QUIT_ENDPOINTS", fake.url() + "/drain/a, ," + fake.url() + "/drain/b");
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("admin POST /drain/a", "admin POST /drain/b", "pilot-agent POST /quitquitquit"),
                        posts());
                List<JsonObject> quits = tool.events("quit");
                assertEquals(List.of(fake.url() + "/drain/a", fake.url() + "/drain/b", fake.pilotAgentUrl() + "/quitquitquit"),
                        TestSupport.each(quits, "url"));
                assertEquals(List.of("200", "500", "200"), TestSupport.each(quits, "status"));
                assertEquals(List.of("true", "false", "true"), TestSupport.each(quits, "ok"));
                assertEquals("warning", quits.get(1).get("level").getAsString());
            }
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void refusingAndHungEndpointsAreBoundedAndPassedOver() throws Exception {
            fake.override("/hang", exchange -> TestSupport.sleep(20_000));
            String refused = "http://127.0.0.1:" + TestSupport.closedPort() + "/drain";
            Map<String, String> env = admin("ISTIO_QUIT_API", fake.pilotAgentUrl().toString(),
                    "QUIT_REQUEST_TIMEOUT", "400ms", "GENERIC_QUIT_ENDPOINTS", refused + "," + fake.url() + "/hang");
            try (var tool = TestSupport.Tool.start(env, markerApp(7))) {
                assertEquals(7, tool.exitCode(), tool.stderr());
                long hang = fake.requests().stream().filter(r -> r.path().equals("/hang")).findFirst().orElseThrow().nanos();
                long next = fake.requests().stream().filter(r -> r.server().equals("pilot-agent")).findFirst().orElseThrow().nanos();
                long ms = (next - hang) / 1_000_000;
                // by the fake's clock, between two requests: 2x the limit leaves 400 ms for one new connection
                assertTrue(ms < 800, "the hung request held the next step " + ms + " ms; its limit is 400 ms");
                List<JsonObject> quits = tool.events("quit");
                assertEquals(List.of(refused, fake.url() + "/hang", fake.pilotAgentUrl() + "/quitquitquit"),
                        TestSupport.each(quits, "url"));
                assertEquals(Arrays.asList("connection refused", "no answer within 400ms", null),
                        TestSupport.each(quits, "error"));
                assertEquals(List.of("false", "false", "true"), TestSupport.each(quits, "ok"));
                assertTrue(posts().contains("pilot-agent POST /quitquitquit"), posts().toString());
            }
        }

        @Test
        void aFailingIstioApiFallsBackToThePkillStepOnlyWhenAsked() throws Exception {
            String deadIstio = "http://127.0.0.1:" + TestSupport.closedPort();
            // the plan alone: the confirmation would ask the admin API halfway, as JobFinishesTests shows
            try (var tool = TestSupport.Tool.start(admin("ISTIO_QUIT_API", deadIstio,
                    "ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "0"), markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of(), posts());
            }
            try (var tool = TestSupport.Tool.start(admin("ISTIO_QUIT_API", deadIstio, "ISTIO_FALLBACK_PKILL", "true"),
                    markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("admin POST /quitquitquit"), posts());
            }
        }

        @Test
        void thePkillStepSendsSigintToPilotAgentAndThenLeavesTheAdminApiAlone() throws Exception {
            Path pilotAgent = Files.copy(Path.of("/bin/sleep"), dir.resolve("pilot-agent"));
            Files.setPosixFilePermissions(pilotAgent, PosixFilePermissions.fromString("rwxr-xr-x"));
            // In a PID namespace of the test's own: the tool SIGINTs every pilot-agent it sees.
            try (var ns = TestSupport.PidNamespace.create()) {
                Process agent = ns.start(new ProcessBuilder(pilotAgent.toString(), "60"));
                ProcessHandle inside = TestSupport.PidNamespace.inside(agent);
                TestSupport.await("pilot-agent to show in /proc",
                        () -> "pilot-agent".equals(TestSupport.comm(inside.pid())));
                long pid = TestSupport.PidNamespace.pidInside(inside.pid());
                // this fake pilot-agent does not take the fake Envoy with it: confirming would ask the admin API
                try (var tool = TestSupport.Tool.in(ns, admin("ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "0"), markerApp(0))) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                    assertTrue(agent.waitFor(10, TimeUnit.SECONDS), "pilot-agent still runs");
                    assertEquals(128 + 2, agent.exitValue(), "pilot-agent should die of SIGINT");
                    assertEquals(List.of(), posts());
                    JsonObject sent = tool.event("quit");
                    assertEquals("pilot-agent", sent.get("process").getAsString());
                    assertEquals(pid, sent.get("pid").getAsLong());
                    assertEquals("INT", sent.get("signal").getAsString());
                    assertFalse(sent.has("error"), sent.toString());
                }
            }
        }

        @Test
        void aNonLoopbackAdminApiIsNeverQuit() throws Exception {
            Map<String, String> env = admin("START_WITHOUT_ENVOY", "true", "ISTIO_QUIT_API",
                    fake.pilotAgentUrl().toString(), "GENERIC_QUIT_ENDPOINTS", fake.url() + "/drain");
            env.put("ENVOY_ADMIN_API", "http://127.0.0.1.nip.io:15000");
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of(), fake.requests());
                JsonObject nothing = tool.event("quit");
                assertFalse(nothing.has("url") || nothing.has("process"), nothing.toString());
                assertTrue(nothing.get("reason").getAsString().contains("loopback"), nothing.toString());
            }
        }

        @Test
        void neverKillIstioQuitsNothing() throws Exception {
            try (var tool = TestSupport.Tool.start(admin("NEVER_KILL_ISTIO", "TRUE",
                    "ISTIO_QUIT_API", fake.pilotAgentUrl().toString()), markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of(), posts());
            }
        }

        @ParameterizedTest
        @CsvSource({"0,1", "3,0"})
        void neverKillIstioOnFailureQuitsOnlyAfterSuccess(int code, int quits) throws Exception {
            try (var tool = TestSupport.Tool.start(admin("NEVER_KILL_ISTIO_ON_FAILURE", "true",
                    "ISTIO_QUIT_API", fake.pilotAgentUrl().toString()), markerApp(code))) {
                assertEquals(code, tool.exitCode(), tool.stderr());
                assertEquals(quits, posts().size(), posts().toString());
            }
        }
    }

    // --- 6. logging ----------------------------------------------------------------------------

    @Nested
    class Logging {
        @Test
        void verboseLogsEveryStepOnStderrOnly() throws Exception {
            fake.close();
            fake = FakeEnvoy.start(0, Duration.ofMillis(300)).withPilotAgent(0);
            try (var tool = TestSupport.Tool.start(admin("ISTIO_QUIT_API", fake.pilotAgentUrl().toString()),
                    "echo", "only this")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals("only this\n", tool.stdout());
                List<String> steps = TestSupport.kinds(tool.events()).stream().distinct().toList();
                assertEquals(List.of("config", "wait", "poll", "ready", "app-start", "app-exit", "quit", "gone", "exit"), steps);
                assertEquals(fake.url().toString(), tool.event("config").getAsJsonObject("settings").get("admin-api")
                        .getAsString());
                assertEquals(fake.pilotAgentUrl() + "/quitquitquit", tool.event("quit").get("url").getAsString());
                assertEquals(200, tool.event("quit").get("status").getAsInt());
                assertEquals(0, tool.event("exit").get("code").getAsInt());
            }
            // the same steps in text: one line each, each marked as the tool's
            fake.close(); // it quit
            fake = FakeEnvoy.start(0, Duration.ZERO).withPilotAgent(0);
            Map<String, String> text = admin("ISTIO_QUIT_API", fake.pilotAgentUrl().toString());
            text.remove("ENVOY_PREFLIGHT_LOG_FORMAT");
            try (var tool = TestSupport.Tool.start(text, "echo", "only this")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals("only this\n", tool.stdout());
                assertTrue(tool.stderr().lines().count() >= 8, tool.stderr());
                for (String line : tool.stderr().split("\n")) assertTrue(line.startsWith("envoy-preflight: "), line);
            }
        }

        @Test
        void quietByDefault() throws Exception {
            Map<String, String> env = admin();
            env.remove("ENVOY_PREFLIGHT_LOGGING");
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(0, tool.exitCode());
                assertEquals("", tool.stderr());
            }
        }

        @Test
        void jsonFormatWritesOneObjectPerLine() throws Exception {
            try (var tool = TestSupport.Tool.start(admin("ENVOY_PREFLIGHT_LOG_FORMAT", "json"), "sh", "-c", "exit 4")) {
                assertEquals(4, tool.exitCode());
                List<JsonObject> lines = tool.events();
                assertTrue(lines.size() >= 5, tool.stderr());
                for (JsonObject o : lines) {
                    assertTrue(o.has("time") && o.has("level") && o.has("msg") && o.has("event"), o.toString());
                    assertEquals("envoy-preflight", o.get("logger").getAsString());
                }
                JsonObject last = lines.get(lines.size() - 1);
                assertEquals("exit", last.get("event").getAsString());
                assertEquals(4, last.get("code").getAsInt());
            }
        }

        @org.junit.jupiter.api.Tag("fast")
        @Test
        void anInternalErrorIsLoggedInTheAskedFormatAndExits70() {
            var err = new java.io.ByteArrayOutputStream();
            EnvoyPreflight tool = new EnvoyPreflight() {
                @Override
                EnvoyPreflight.Exit.Ending preflight() {
                    throw new IllegalStateException("a bug of ours");
                }
            };
            tool.env = Map.of("ENVOY_PREFLIGHT_LOG_FORMAT", "json");
            tool.err = new java.io.PrintStream(err, true);
            assertEquals(70, tool.call());
            JsonObject line = TestSupport.event(err.toString(), "internal-error");
            assertEquals("error", line.get("level").getAsString());
            assertEquals("java.lang.IllegalStateException: a bug of ours", line.get("error").getAsString());
        }

        /** A bug of ours after the app ran: still exit 70, said last, and the pod keeps the app's own message. */
        @org.junit.jupiter.api.Tag("fast")
        @Test
        void aBugAfterTheAppRanIsToldLastAndNotToThePod() throws Exception {
            var logged = new TestSupport.Captured(true, EnvoyPreflight.Log.Format.TEXT);
            EnvoyPreflight tool = new EnvoyPreflight() {
                @Override
                EnvoyPreflight.Exit.Ending shutDown(EnvoyPreflight.Config config, EnvoyPreflight.Lifecycle lifecycle,
                                                    EnvoyPreflight.Log log, EnvoyPreflight.Exit.Ending end,
                                                    EnvoyPreflight.Wait.Result waited) {
                    super.shutDown(config, lifecycle, log, end, waited);
                    throw new IllegalStateException("a bug of ours");
                }
            };
            tool.env = Map.of("START_WITHOUT_ENVOY", "true");
            tool.command = List.of("sh", "-c", "exit 3");
            var lifecycle = new EnvoyPreflight.Lifecycle(logged.log, null); // no signal handlers in the test JVM
            var end = tool.awaitRunShutDown(EnvoyPreflight.Config.resolve(tool), lifecycle, logged.log);
            assertEquals(70, end.code());
            assertNull(end.reason(), "the app ran: its own termination message stands");
            List<String> lines = logged.text().lines().toList();
            assertTrue(lines.get(lines.size() - 1).contains("internal error: java.lang.IllegalStateException: a bug of"
                    + " ours"), logged.text());
            assertTrue(logged.text().contains("the app exited with code 3"), logged.text());
        }

        /** A bug of ours in the wait: the quit still runs (with 70), then the bug is told, and the pod hears why. */
        @org.junit.jupiter.api.Tag("fast")
        @Test
        void aBugInTheWaitIsToldAfterTheQuitAndToThePod() throws Exception {
            var bytes = new java.io.ByteArrayOutputStream();
            var err = new java.io.PrintStream(bytes, true) {
                @Override
                public void println(String line) {
                    super.println(line);
                    if (line.contains("waiting for")) throw new IllegalStateException("a bug of ours");
                }
            };
            var log = new EnvoyPreflight.Log(true, EnvoyPreflight.Log.Format.TEXT, err);
            EnvoyPreflight tool = TestSupport.tool(Map.of("ENVOY_ADMIN_API", "http://127.0.0.1:" + TestSupport.closedPort(),
                    "GENERIC_QUIT_ONLY", "true"), "true");
            var lifecycle = new EnvoyPreflight.Lifecycle(log, null);
            var end = tool.awaitRunShutDown(EnvoyPreflight.Config.resolve(tool), lifecycle, log);
            assertEquals(70, end.code());
            assertEquals("internal error: java.lang.IllegalStateException: a bug of ours", end.reason());
            List<String> lines = bytes.toString().lines().toList();
            assertTrue(lines.get(lines.size() - 2).endsWith("exit code 70"), bytes.toString());
            assertTrue(lines.get(lines.size() - 1).contains("internal error"), bytes.toString());
            assertFalse(lifecycle.appStarted());
        }

        @org.junit.jupiter.api.Tag("fast")
        @Test
        void textLinesSayWhoAndTheLevelUnlessItIsInfo() {
            var logged = new TestSupport.Captured(true, EnvoyPreflight.Log.Format.TEXT);
            logged.log.info(EnvoyPreflight.Log.Event.EXIT, "a");
            logged.log.warn(EnvoyPreflight.Log.Event.SETTING, "b");
            logged.log.error(EnvoyPreflight.Log.Event.INVALID, "c");
            assertEquals("envoy-preflight: a\nenvoy-preflight: warning: b\nenvoy-preflight: error: c\n", logged.text());
        }

        @org.junit.jupiter.api.Tag("fast")
        @Test
        void jsonLinesCarryAnyTextIntact() {
            var logged = new TestSupport.Captured(false, EnvoyPreflight.Log.Format.JSON);
            String message = "quote \" backslash \\ newline \n tab \t bell \u0007 snowman \u2603";
            logged.log.warn(EnvoyPreflight.Log.Event.SETTING, message);
            assertEquals(1, logged.text().lines().count(), logged.text());
            JsonObject line = JsonParser.parseString(logged.text()).getAsJsonObject();
            assertEquals(message, line.get("msg").getAsString());
            assertEquals("warning", line.get("level").getAsString());
            assertEquals("envoy-preflight", line.get("logger").getAsString());
        }

        @Test
        void credentialsInUrlsAreNeverPrinted() throws Exception {
            Map<String, String> env = admin("ISTIO_QUIT_API", "http://agent:hunter2@127.0.0.1:"
                    + TestSupport.closedPort());
            env.put("ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "0"); // the quit API is closed on purpose: nothing to confirm
            env.put("ENVOY_ADMIN_API", "http://admin:s3cret@127.0.0.1:" + fake.url().getPort());
            String expected = "Basic " + java.util.Base64.getEncoder().encodeToString("admin:s3cret".getBytes());
            fake.override("/server_info", exchange -> { // LIVE only for the right credentials
                boolean ok = expected.equals(exchange.getRequestHeaders().getFirst("Authorization"));
                FakeEnvoy.reply(exchange, ok ? 200 : 401, "application/json", FakeEnvoy.serverInfo("LIVE"));
            });
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(1, tool.event("ready").get("polls").getAsInt(), "sent as Basic auth: " + tool.stderr());
                assertTrue(tool.event("ready").get("target").getAsString().startsWith("http://***@127.0.0.1:"),
                        tool.stderr());
                assertTrue(tool.event("quit").get("url").getAsString().startsWith("http://***@127.0.0.1:"), tool.stderr());
                assertFalse(tool.stderr().contains("s3cret") || tool.stderr().contains("hunter2"), tool.stderr());
            }
            env.remove("ENVOY_PREFLIGHT_LOG_FORMAT");
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) { // and in text
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(tool.stderr().contains("***@127.0.0.1"), tool.stderr());
                assertFalse(tool.stderr().contains("s3cret") || tool.stderr().contains("hunter2"), tool.stderr());
            }
        }
    }

    // --- never through a proxy -----------------------------------------------------------------

    @Nested
    class Proxies {
        @Test
        void proxySettingsOfTheJvmAndTheEnvironmentAreIgnored() throws Exception {
            String deadProxy = "127.0.0.1:" + TestSupport.closedPort();
            Map<String, String> env = admin("http_proxy", "http://" + deadProxy, "HTTP_PROXY", "http://" + deadProxy,
                    "JAVA_TOOL_OPTIONS", "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=" + deadProxy.split(":")[1]
                            + " -DsocksProxyHost=127.0.0.1 -DsocksProxyPort=" + deadProxy.split(":")[1]
                            + " -Djava.net.useSystemProxies=true");
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                // the one line that is not the tool's: the JVM's, for the options the test gave it
                String log = tool.stderr().replaceFirst("Picked up JAVA_TOOL_OPTIONS: .*\n", "");
                assertEquals(1, TestSupport.event(log, "ready").get("polls").getAsInt(), log);
                assertEquals(List.of("admin POST /quitquitquit"), posts());
            }
        }
    }

    // --- 7. --check and --dry-run --------------------------------------------------------------

    @Nested
    class CheckAndDryRun {
        @Test
        void checkPrintsTheStateAndExits0OnlyWhenLive() throws Exception {
            try (var tool = TestSupport.Tool.start(Map.of(), "--check", "--admin-api", fake.url().toString())) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals("LIVE\n", tool.stdout());
            }
            fake.forceState("DRAINING");
            try (var tool = TestSupport.Tool.start(admin(), "--check")) {
                assertEquals(1, tool.exitCode(), tool.stderr());
                assertEquals("state DRAINING\n", tool.stdout());
            }
            assertTrue(posts().isEmpty());
        }

        @Test
        void dryRunSaysWhatWouldBeDoneAndDoesNothing() throws Exception {
            Map<String, String> env = admin("ISTIO_QUIT_API", fake.pilotAgentUrl().toString(), "ISTIO_FALLBACK_PKILL",
                    "true", "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:1/drain", "NEVER_KILL_ISTIO_ON_FAILURE", "true");
            try (var tool = TestSupport.Tool.start(env, "--dry-run", "sh", "-c", "touch '" + dir.resolve("started") + "'")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                String out = tool.stdout();
                assertTrue(out.contains("at exit with code 0: POST http://127.0.0.1:1/drain; then POST "
                        + fake.pilotAgentUrl() + "/quitquitquit; if that fails: SIGINT pilot-agent, else POST "
                        + fake.url() + "/quitquitquit"), out);
                assertTrue(out.contains("at exit with code 1: quit nothing (never-kill-istio-on-failure"), out);
                assertTrue(out.contains("before start: GET " + fake.url() + "/server_info until state LIVE"), out);
                assertFalse(appStarted());
                assertEquals(List.of(), fake.requests());
            }
        }
    }

    // --- bad configuration ---------------------------------------------------------------------

    /** BadInputTests has every bad value in one in-process table; these show a real JVM exits 2 too. */
    @Nested
    class BadConfiguration {
        @Test
        void aBadVariableExits2InOneLineNamingItAndNothingRuns() throws Exception {
            try (var tool = TestSupport.Tool.start(TestSupport.json("ENVOY_ADMIN_API", fake.url().toString(),
                    "ISTIO_QUIT_API", fake.pilotAgentUrl().toString(), "START_WITHOUT_ENVOY", "yes"), markerApp(0))) {
                assertEquals(2, tool.exitCode(), tool.stderr());
                assertEquals(List.of("invalid"), TestSupport.kinds(tool.events()), tool.stderr());
                JsonObject invalid = tool.event("invalid");
                assertEquals("error", invalid.get("level").getAsString());
                assertTrue(invalid.get("msg").getAsString().contains("START_WITHOUT_ENVOY"), invalid.toString());
                assertFalse(appStarted());
                assertEquals(List.of(), fake.requests());
            }
        }

        @Test
        void anUnknownOptionExits2WithOneTextLineAndNoUsage() throws Exception {
            try (var tool = TestSupport.Tool.start(verbose("ENVOY_ADMIN_API", fake.url().toString()), "--wait-for-envoy",
                    markerApp(0)[0])) {
                assertEquals(2, tool.exitCode());
                assertEquals(1, tool.stderr().lines().count(), tool.stderr());
                assertTrue(tool.stderr().startsWith("envoy-preflight: error: "), tool.stderr());
                assertTrue(tool.stderr().contains("'--wait-for-envoy'"), tool.stderr());
                assertEquals(List.of(), fake.requests());
            }
        }
    }

    // --- through JBang -------------------------------------------------------------------------

    @org.junit.jupiter.api.Tag("launcher")
    @Nested
    @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
    class ThroughJBang {
        final Path root = TestSupport.repositoryRoot();

        /** Runs the committed ./jbang launcher in cwd; {exit code, stdout}. */
        Object[] jbang(Path cwd, Map<String, String> env, String... args) throws Exception {
            List<String> command = new java.util.ArrayList<>(List.of(root.resolve("jbang").toString()));
            command.addAll(List.of(args));
            ProcessBuilder pb = TestSupport.cleanEnvironment(new ProcessBuilder(command))
                    .directory(cwd.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()))
                    .redirectError(dir.resolve("jbang-stderr").toFile());
            pb.environment().put("JBANG_NO_VERSION_CHECK", "true");
            pb.environment().putAll(env);
            Process p = pb.start();
            String out = new String(p.getInputStream().readAllBytes());
            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "jbang " + args[0] + " did not finish");
            return new Object[]{p.exitValue(), out};
        }

        @Test
        void theCommittedLauncherRunsTheScriptAndTheLocalAlias() throws Exception {
            for (String script : List.of("EnvoyPreflight.java", "envoy-preflight")) {
                Object[] r = jbang(root, Map.of(), script, "sh", "-c", "echo \"hi $0\"; exit 3", "from-jbang");
                assertEquals(3, r[0], script + ": " + TestSupport.read(dir.resolve("jbang-stderr")));
                assertEquals("hi from-jbang\n", r[1], script);
            }
        }

        @Test
        void aCatalogAddedByNameServesTheAliasFromAnywhere() throws Exception {
            // A JBang home of its own, so the developer's catalogs are neither used nor changed; the cache
            // the suite built the script into, so that nothing compiles it again.
            Map<String, String> home = Map.of("JBANG_DIR", dir.resolve("jbang-home").toString(),
                    "JBANG_CACHE_DIR", TestSupport.callersJbangCache().toString());
            Path elsewhere = Files.createDirectories(dir.resolve("elsewhere"));
            Object[] added = jbang(elsewhere, home, "catalog", "add", "--name", "myorg",
                    root.resolve("jbang-catalog.json").toString());
            assertEquals(0, added[0], TestSupport.read(dir.resolve("jbang-stderr")));
            Object[] r = jbang(elsewhere, home, "envoy-preflight@myorg", "sh", "-c", "echo \"hi $0\"", "via-catalog");
            assertEquals(0, r[0], TestSupport.read(dir.resolve("jbang-stderr")));
            assertEquals("hi via-catalog\n", r[1]);
        }
    }
}
