import com.google.gson.JsonObject;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.parallel.ResourceLock;
import org.junit.jupiter.api.parallel.ResourceAccessMode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Beyond Envoy's LIVE flag, against the real program: ready endpoints, sidecars that are not
 * Envoy, Istio's quit without ISTIO_QUIT_API, the peers' variables, no sidecar at all, and the
 * modes for scripts. One nested class per numbered point of the issue.
 */
class SidecarsTests extends TestSupport.WithFakeEnvoy {

    @BeforeEach
    void genericSidecar() throws IOException {
        fake.withGenericSidecar(0);
    }

    String ready() {
        return fake.genericUrl() + "/ready";
    }

    String shutdown() {
        return fake.genericUrl() + "/shutdown";
    }

    // --- 1. readiness endpoints ------------------------------------------------------------------

    @Nested
    class ReadyEndpoints {
        @Test
        void polledAfterLiveInOrderAndTheAppStartsOnlyOnceEachAnswers2xx() throws Exception {
            // not ready to its first poll, ready after: whenever the tool gets there (not by the clock)
            java.util.concurrent.atomic.AtomicInteger asked = new java.util.concurrent.atomic.AtomicInteger();
            fake.overrideGeneric("/ready", exchange -> {
                boolean ready = asked.incrementAndGet() > 1;
                FakeEnvoy.reply(exchange, ready ? 200 : 503, "text/plain", ready ? "ready\n" : "not yet\n");
            });
            Map<String, String> env = TestSupport.json("ENVOY_ADMIN_API", fake.url().toString(),
                    "GENERIC_READY_ENDPOINTS", " " + ready() + " , ," + fake.url() + "/ready ");
            Path started = dir.resolve("started-at");
            try (var tool = TestSupport.Tool.start(env, "sh", "-c", "touch '" + started + "'")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                List<String> order = fake.requests().stream().filter(r -> r.method().equals("GET"))
                        .map(r -> r.server() + " " + r.path()).distinct().toList();
                assertEquals(List.of("admin /server_info", "generic /ready", "admin /ready"), order);
                List<String> targets = List.of(fake.url() + "/server_info", ready(), fake.url() + "/ready");
                assertEquals(targets, TestSupport.each(tool.events("wait"), "target"));
                assertEquals(targets, TestSupport.each(tool.events("ready"), "target"));
                JsonObject firstGenericPoll = TestSupport.first(tool.events(), "poll",
                        o -> ready().equals(TestSupport.text(o, "target")));
                assertEquals("HTTP 503", firstGenericPoll.get("seen").getAsString());
                assertEquals(1, tool.events("ready").get(2).get("polls").getAsInt());
                List<String> kinds = TestSupport.kinds(tool.events());
                assertTrue(kinds.lastIndexOf("ready") < kinds.indexOf("app-start"), "the app starts after the last: " + kinds);
            }
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void aLinkerdOnlyPodNeedsNoAdminApiAndTheAppStartsWithin300msOfReady() throws Exception {
            fake.close();
            fake = FakeEnvoy.start(0, Duration.ofMillis(1200)).withGenericSidecar(0);
            long readyAtMillis = fake.liveAt().toEpochMilli();
            Path started = dir.resolve("started-at");
            try (var tool = TestSupport.Tool.start(TestSupport.json("GENERIC_READY_ENDPOINTS", ready()),
                    "sh", "-c", "date +%s%3N > '" + started + "'")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                long startedAt = Long.parseLong(TestSupport.read(started).strip());
                assertTrue(startedAt >= readyAtMillis - 20, "started " + (readyAtMillis - startedAt) + " ms early");
                long from = TestSupport.readySeenFrom(readyAtMillis, fake.requests());
                // the budget: 300 ms from ready to the app's start (the tool's app-start line: not the time sh
                // and date take); at most twice that here, for a busy machine
                long ms = TestSupport.epochMillis(tool.event("app-start")) - from;
                assertTrue(ms < 600, "started " + ms + " ms after ready");
                assertEquals(List.of(), gets("admin"), "no admin API was configured");
            }
        }

        @Test
        void startWithoutEnvoySkipsEveryWait() throws Exception {
            Map<String, String> env = verbose("ENVOY_ADMIN_API", fake.url().toString(), "START_WITHOUT_ENVOY", "true",
                    "GENERIC_READY_ENDPOINTS", "http://127.0.0.1:" + TestSupport.closedPort() + "/ready," + ready());
            fake.forceState("INITIALIZING");
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(appStarted());
                assertEquals(List.of(), gets("admin"));
                assertEquals(List.of(), gets("generic"));
            }
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void theTimeoutsCountFromTheStartOfTheWholeWait() throws Exception {
            fake.close();
            fake = FakeEnvoy.start(0, Duration.ofMillis(900)).withGenericSidecar(0);
            fake.overrideGeneric("/ready", exchange -> FakeEnvoy.reply(exchange, 503, "text/plain", "never\n"));
            Map<String, String> env = TestSupport.json("ENVOY_ADMIN_API", fake.url().toString(), "GENERIC_READY_ENDPOINTS",
                    ready(), "QUIT_WITHOUT_ENVOY_TIMEOUT", "1200ms", "NEVER_KILL_ISTIO", "true");
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(69, tool.exitCode(), tool.stderr());
                assertFalse(appStarted());
                JsonObject gaveUp = tool.event("gave-up");
                assertEquals(ready(), gaveUp.get("target").getAsString());
                assertTrue(tool.events("app-start").isEmpty(), tool.stderr());
                // 900 ms for LIVE, then the endpoint: restarting the clock there would take 2100 ms or more
                long ms = TestSupport.waitedMillis(tool.events(), gaveUp);
                assertTrue(ms >= 1200 && ms < 2000, "gave up after " + ms + " ms of a 1200 ms limit");
            }
        }

        @Test
        void aStopSignalEndsTheWaitOnAReadyEndpoint() throws Exception {
            fake.overrideGeneric("/ready", exchange -> FakeEnvoy.reply(exchange, 503, "text/plain", "no\n"));
            try (var tool = TestSupport.Tool.start(TestSupport.json("GENERIC_READY_ENDPOINTS", ready()), markerApp(0))) {
                TestSupport.await("the first poll", () -> !gets("generic").isEmpty());
                TestSupport.kill("TERM", tool.pid());
                assertEquals(143, tool.exitCode(), tool.stderr());
                assertFalse(appStarted());
                JsonObject stopped = tool.event("stopped");
                assertEquals("TERM", stopped.get("signal").getAsString());
                assertEquals(ready(), stopped.get("target").getAsString());
            }
        }

        @Test
        void checkAsksTheAdminApiAndEachEndpointOnceAndExits0OnlyIfAllAreReady() throws Exception {
            Map<String, String> env = TestSupport.env("ENVOY_ADMIN_API", fake.url().toString(),
                    "GENERIC_READY_ENDPOINTS", ready());
            try (var tool = TestSupport.Tool.start(env, "--check")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals("LIVE\n" + ready() + ": HTTP 200\n", tool.stdout());
            }
            fake.overrideGeneric("/ready", exchange -> FakeEnvoy.reply(exchange, 503, "text/plain", "no\n"));
            try (var tool = TestSupport.Tool.start(env, "--check", "--ready-endpoint", fake.url() + "/ready")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                // the flag wins over the variable: only the flag's endpoint is asked, not the one now failing
                assertEquals("LIVE\n" + fake.url() + "/ready: HTTP 200\n", tool.stdout());
            }
            try (var tool = TestSupport.Tool.start(TestSupport.env("GENERIC_READY_ENDPOINTS", ready()), "--check")) {
                assertEquals(1, tool.exitCode(), tool.stderr());
                assertEquals(ready() + ": HTTP 503\n", tool.stdout());
            }
            assertEquals(List.of(), posts());
        }
    }

    // --- 2. quitting sidecars that are not Envoy -------------------------------------------------

    @Nested
    class NotEnvoy {
        @Test
        void withoutAnAdminApiTheGenericQuitEndpointsArePostedInOrderAndNothingElse() throws Exception {
            fake.override("/drain", exchange -> FakeEnvoy.reply(exchange, 200, "text/plain", "drained\n"));
            Map<String, String> env = verbose("GENERIC_QUIT_ENDPOINTS", fake.url() + "/drain," + shutdown(),
                    "ISTIO_QUIT_API", fake.pilotAgentUrl().toString());
            try (var tool = TestSupport.Tool.start(env, markerApp(4))) {
                assertEquals(4, tool.exitCode(), tool.stderr());
                assertEquals(List.of("admin POST /drain", "generic POST /shutdown"), posts());
            }
        }

        @ParameterizedTest
        @CsvSource({"NEVER_KILL_ISTIO,0", "NEVER_KILL_ISTIO_ON_FAILURE,3"})
        void theNeverKillSwitchesStillApply(String variable, int code) throws Exception {
            try (var tool = TestSupport.Tool.start(verbose("GENERIC_QUIT_ENDPOINTS", shutdown(), variable, "true"),
                    markerApp(code))) {
                assertEquals(code, tool.exitCode(), tool.stderr());
                assertEquals(List.of(), posts());
            }
        }

        @Test
        void aLinkerdJobWaitsForItsProxyAndShutsItDown() throws Exception {
            fake.close();
            fake = FakeEnvoy.start(0, Duration.ofMillis(500)).withGenericSidecar(0);
            try (var tool = TestSupport.Tool.start(verbose("GENERIC_READY_ENDPOINTS", ready(),
                    "GENERIC_QUIT_ENDPOINTS", shutdown()), markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(appStarted());
                assertEquals(List.of("generic POST /shutdown"), posts());
                assertTrue(fake.awaitQuit(Duration.ofSeconds(1)), "the proxy was not shut down");
            }
        }
    }

    // --- 3. Istio-aware quit without ISTIO_QUIT_API ----------------------------------------------

    @Nested
    @ResourceLock(TestSupport.ISTIO_PORTS)
    class IstioQuit {
        /** A fake on Istio's own ports, 15000 and 15020; the test is skipped if they are taken. */
        FakeEnvoy onIstioPorts() {
            try {
                return FakeEnvoy.start(15000, Duration.ZERO).withPilotAgent(15020);
            } catch (IOException e) {
                org.junit.jupiter.api.Assumptions.abort("ports 15000/15020 are taken here: " + e);
                return null;
            }
        }

        @Test
        void pilotAgentIsAskedOnItsPortAndEnvoyIsLeftToIt() throws Exception {
            try (FakeEnvoy istio = onIstioPorts()) {
                try (var tool = TestSupport.Tool.start(verbose("ENVOY_ADMIN_API", "http://127.0.0.1:15000"), markerApp(0))) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                    assertEquals(List.of("pilot-agent POST /quitquitquit"), TestSupport.posts(istio));
                }
            }
        }

        @Test
        void whenPilotAgentFailsEnvoysOwnQuitIsTheLastResort() throws Exception {
            try (FakeEnvoy istio = onIstioPorts()) {
                istio.overridePilotAgent("/quitquitquit", istio.misbehave(FakeEnvoy.Fault.HTTP_503));
                try (var tool = TestSupport.Tool.start(verbose("ENVOY_ADMIN_API", "http://127.0.0.1:15000"), markerApp(0))) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                    assertEquals(List.of("pilot-agent POST /quitquitquit", "admin POST /quitquitquit"),
                            TestSupport.posts(istio));
                }
            }
        }

        @Test
        void dryRunShowsTheChainAndOtherPortsKeepTheirFallback() throws Exception {
            try (var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_ADMIN_API", "http://127.0.0.1:15000"),
                    "--dry-run", "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(tool.stdout().contains("at exit with code 0: SIGINT pilot-agent, else POST "
                        + "http://127.0.0.1:15020/quitquitquit, else POST http://127.0.0.1:15000/quitquitquit\n"),
                        tool.stdout());
            }
            try (var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_ADMIN_API", "http://127.0.0.1:9901"),
                    "--dry-run", "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(tool.stdout().contains("at exit with code 0: SIGINT pilot-agent, else POST "
                        + "http://127.0.0.1:9901/quitquitquit\n"), tool.stdout());
            }
        }
    }

    // --- 4. every peer's variables ---------------------------------------------------------------

    @Nested
    class PeersVariables {
        Map<String, String> admin(String... more) {
            Map<String, String> env = TestSupport.env(more);
            env.put("ENVOY_ADMIN_API", fake.url().toString());
            return env;
        }

        @Test
        void scuttleLoggingTurnsOnTheLogAndSaysSo() throws Exception {
            try (var tool = TestSupport.Tool.start(admin("SCUTTLE_LOGGING", "true", "ENVOY_PREFLIGHT_LOG_FORMAT", "json"),
                    markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                JsonObject config = tool.event("config");
                assertTrue(config.getAsJsonObject("settings").get("verbose").getAsBoolean(), config.toString());
                assertEquals(List.of("ENVOY_ADMIN_API", "SCUTTLE_LOGGING", "ENVOY_PREFLIGHT_LOG_FORMAT"),
                        TestSupport.array(config, "set_by"));
                assertEquals(1, tool.event("ready").get("polls").getAsInt());
            }
        }

        @Test
        void neverKillEnvoyQuitsNothing() throws Exception {
            try (var tool = TestSupport.Tool.start(admin("NEVER_KILL_ENVOY", "true"), markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of(), posts());
            }
        }

        @ParameterizedTest
        @CsvSource({"false,3,0", "false,0,1", "true,3,1"})
        void alwaysKillEnvoyFalseKeepsTheSidecarAfterAFailure(String value, int code, int quits) throws Exception {
            try (var tool = TestSupport.Tool.start(admin("ALWAYS_KILL_ENVOY", value), markerApp(code))) {
                assertEquals(code, tool.exitCode(), tool.stderr());
                assertEquals(quits, posts().size(), posts().toString());
            }
        }

        @Test
        void envoyKillApiIsPostedInsteadOfTheAdminQuit() throws Exception {
            fake.override("/kill", exchange -> {
                FakeEnvoy.reply(exchange, 200, "text/plain", "killed\n");
                new Thread(fake::close).start(); // and Envoy goes, as the confirmation expects
            });
            try (var tool = TestSupport.Tool.start(admin("ENVOY_KILL_API", fake.url() + "/kill?now=1"), markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("admin POST /kill"), posts());
            }
        }

        @Test
        void genericQuitOnlyPostsOnlyTheGenericEndpoints() throws Exception {
            Map<String, String> env = admin("ISTIO_QUIT_API", fake.pilotAgentUrl().toString(),
                    "GENERIC_QUIT_ENDPOINTS", shutdown(), "GENERIC_QUIT_ONLY", "true");
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("generic POST /shutdown"), posts());
            }
            env.remove("GENERIC_QUIT_ONLY");
            fake.close();
            fake = FakeEnvoy.start(0, Duration.ZERO).withPilotAgent(0).withGenericSidecar(0);
            env.put("ENVOY_ADMIN_API", fake.url().toString());
            env.put("GENERIC_QUIT_ENDPOINTS", shutdown());
            env.put("ISTIO_QUIT_API", fake.pilotAgentUrl().toString());
            try (var tool = TestSupport.Tool.start(env, "--generic-quit-only", "sh", "-c", "exit 0")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("generic POST /shutdown"), posts());
            }
        }

        @Test
        void useIstioEndpointPointsAtIstiosPortsWhereUnset() throws Exception {
            for (String[] how : List.of(new String[]{"USE_ISTIO_ENDPOINT", "true"}, new String[]{"--use-istio-endpoint"})) {
                Map<String, String> env = how.length == 2 ? TestSupport.env(how) : Map.of();
                String[] args = how.length == 2 ? new String[]{"--dry-run", "true"} : new String[]{how[0], "--dry-run", "true"};
                try (var tool = TestSupport.Tool.start(env, args)) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                    assertTrue(tool.stdout().contains("admin-api=http://127.0.0.1:15000\n"), tool.stdout());
                    assertTrue(tool.stdout().contains("istio-quit-api=http://127.0.0.1:15020\n"), tool.stdout());
                    assertTrue(tool.stdout().contains("at exit with code 0: POST http://127.0.0.1:15020/quitquitquit\n"),
                            tool.stdout());
                }
            }
        }

        @Test
        void whenAnAliasAndItsVariableAreBothSetTheVariableWinsWithAWarning() throws Exception {
            try (var tool = TestSupport.Tool.start(admin("ENVOY_PREFLIGHT_LOGGING", "false", "SCUTTLE_LOGGING", "true",
                    "NEVER_KILL_ISTIO", "false", "NEVER_KILL_ENVOY", "true", "ENVOY_PREFLIGHT_LOG_FORMAT", "json"),
                    markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                // two warnings, and nothing else: ENVOY_PREFLIGHT_LOGGING=false won, so no info line
                List<JsonObject> events = tool.events();
                assertEquals(List.of("setting", "setting"), TestSupport.kinds(events), tool.stderr());
                for (JsonObject warning : events) assertEquals("warning", warning.get("level").getAsString());
                assertTrue(events.get(0).get("msg").getAsString().contains("NEVER_KILL_ENVOY"), tool.stderr());
                assertTrue(events.get(1).get("msg").getAsString().contains("SCUTTLE_LOGGING"), tool.stderr());
                assertEquals(List.of("admin POST /quitquitquit"), posts(), "NEVER_KILL_ISTIO=false won");
            }
        }

        @Test
        void helpListsTheNewSettingsAndTheAliases() throws Exception {
            try (var tool = TestSupport.Tool.start(Map.of(), "--help")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                for (String name : List.of("GENERIC_READY_ENDPOINTS", "--ready-endpoint", "USE_ISTIO_ENDPOINT",
                        "--[no-]use-istio-endpoint", "SCUTTLE_LOGGING", "NEVER_KILL_ENVOY", "--envoy-kill-api",
                        "ENVOY_KILL_API", "ALWAYS_KILL_ENVOY (inverted)", "GENERIC_QUIT_ONLY", "--[no-]generic-quit-only", "SIDECAR_ABSENT_AFTER", "--absent-after",
                        "--wait-only", "--quit-only", "--exit-code")) {
                    assertTrue(tool.stdout().contains(name), name + " in:\n" + tool.stdout());
                }
            }
        }
    }

    // --- 5. one manifest, with or without a mesh -------------------------------------------------

    @Nested
    class NoSidecar {
        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void nothingListeningForTheWholeSpanMeansNoSidecar() throws Exception {
            String admin = "http://127.0.0.1:" + TestSupport.closedPort();
            Map<String, String> env = TestSupport.json("ENVOY_ADMIN_API", admin,
                    "GENERIC_READY_ENDPOINTS", "http://127.0.0.1:" + TestSupport.closedPort() + "/ready",
                    "GENERIC_QUIT_ENDPOINTS", shutdown(), "SIDECAR_ABSENT_AFTER", "600ms");
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(appStarted());
                assertEquals(List.of(), fake.requests(), "nothing is quit");
                long warnings = tool.events().stream().filter(o -> o.get("level").getAsString().equals("warning")).count();
                assertEquals(1, warnings, tool.stderr());
                JsonObject absent = tool.event("absent");
                assertEquals("warning", absent.get("level").getAsString());
                assertEquals(admin + "/server_info", absent.get("target").getAsString(), "judged on the first target");
                assertTrue(tool.event("quit").has("reason"), "nothing is quit: " + tool.stderr());
                long ms = TestSupport.waitedMillis(tool.events(), absent);
                // by the tool's own clock: 2x the span is scheduling latency to spare
                assertTrue(ms >= 600 && ms < 1200, "judged after " + ms + " ms of 600 ms");
            }
        }

        @ParameterizedTest
        @CsvSource({"admin", "generic"})
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void anyOtherAnswerMeansASidecarIsThere(String which) throws Exception {
            fake.forceState("INITIALIZING");
            fake.overrideGeneric("/ready", exchange -> FakeEnvoy.reply(exchange, 503, "text/plain", "no\n"));
            Map<String, String> env = TestSupport.json("SIDECAR_ABSENT_AFTER", "300ms", "WAIT_FOR_ENVOY_TIMEOUT", "900ms",
                    "GENERIC_QUIT_ENDPOINTS", shutdown());
            env.put(which.equals("admin") ? "ENVOY_ADMIN_API" : "GENERIC_READY_ENDPOINTS",
                    which.equals("admin") ? fake.url().toString() : ready());
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(1, tool.events("wait-timeout").size(), tool.stderr());
                assertTrue(tool.events("absent").isEmpty(), tool.stderr());
                long ms = TestSupport.waitedMillis(tool.events(), tool.event("wait-timeout"));
                // by the tool's own clock: 2x the timeout is scheduling latency to spare
                assertTrue(ms >= 900 && ms < 1800, "waited " + ms + " ms for a 900 ms timeout");
                assertTrue(posts().contains("generic POST /shutdown"), posts().toString());
            }
        }

        @Test
        void unsetMeansNoJudgement() throws Exception {
            String admin = "http://127.0.0.1:" + TestSupport.closedPort();
            Map<String, String> env = TestSupport.json("ENVOY_ADMIN_API", admin, "WAIT_FOR_ENVOY_TIMEOUT", "700ms",
                    "GENERIC_QUIT_ENDPOINTS", shutdown());
            try (var tool = TestSupport.Tool.start(env, markerApp(0))) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(admin + "/server_info", tool.event("wait-timeout").get("target").getAsString());
                assertTrue(tool.events("absent").isEmpty(), tool.stderr());
                assertEquals(List.of("generic POST /shutdown"), posts());
            }
        }
    }

    // --- 6. modes for CI scripts and lifecycle hooks ---------------------------------------------

    @Nested
    class Modes {
        Map<String, String> admin(String... more) {
            Map<String, String> env = TestSupport.json(more);
            env.put("ENVOY_ADMIN_API", fake.url().toString());
            env.put("ISTIO_QUIT_API", fake.pilotAgentUrl().toString());
            return env;
        }

        @Test
        void waitOnlyExits0WhenReadyAndQuitsNothing() throws Exception {
            try (var tool = TestSupport.Tool.start(admin("GENERIC_READY_ENDPOINTS", ready()), "--wait-only")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("/server_info"), gets("admin"));
                assertEquals(List.of("/ready"), gets("generic"));
                assertEquals(List.of(), posts());
                assertEquals("", tool.stdout());
            }
        }

        @Test
        void waitOnlyExits69OnTheGiveUpTimeoutAnd0AfterTheWaitTimeout() throws Exception {
            fake.forceState("INITIALIZING");
            try (var tool = TestSupport.Tool.start(admin("QUIT_WITHOUT_ENVOY_TIMEOUT", "400ms"), "--wait-only")) {
                assertEquals(69, tool.exitCode(), tool.stderr());
                assertEquals(fake.url() + "/server_info", tool.event("gave-up").get("target").getAsString());
                assertEquals(69, tool.event("exit").get("code").getAsInt());
            }
            try (var tool = TestSupport.Tool.start(admin("WAIT_FOR_ENVOY_TIMEOUT", "400ms"), "--wait-only")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                JsonObject timedOut = tool.event("wait-timeout");
                assertEquals("warning", timedOut.get("level").getAsString());
                assertEquals(fake.url() + "/server_info", timedOut.get("target").getAsString());
                assertTrue(tool.events("app-start").isEmpty(), "--wait-only runs no app: " + tool.stderr());
            }
            assertEquals(List.of(), posts());
        }

        @ParameterizedTest
        @CsvSource({"TERM,143", "INT,130"})
        void waitOnlyExits128PlusNOnAStopSignal(String signal, int code) throws Exception {
            fake.forceState("INITIALIZING");
            try (var tool = TestSupport.Tool.start(admin(), "--wait-only")) {
                TestSupport.await("the first poll", () -> !gets("admin").isEmpty());
                TestSupport.kill(signal, tool.pid());
                assertEquals(code, tool.exitCode(), tool.stderr());
                assertEquals(List.of(), posts());
            }
        }

        @Test
        void quitOnlyQuitsAtOnceAsIfTheAppHadExitedWithTheCode() throws Exception {
            try (var tool = TestSupport.Tool.start(admin(), "--quit-only", "--exit-code", "0")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("pilot-agent POST /quitquitquit"), posts());
                assertEquals(List.of(), gets("admin"), "nothing is waited for");
            }
            fake.close();
            fake = FakeEnvoy.start(0, Duration.ZERO).withPilotAgent(0).withGenericSidecar(0);
            try (var tool = TestSupport.Tool.start(admin(), "--quit-only")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("pilot-agent POST /quitquitquit"), posts(), "--exit-code defaults to 0");
            }
        }

        @Test
        void quitOnlyLetsNeverKillIstioOnFailureSeeTheCode() throws Exception {
            try (var tool = TestSupport.Tool.start(admin("NEVER_KILL_ISTIO_ON_FAILURE", "true"), "--quit-only",
                    "--exit-code", "3")) {
                assertEquals(3, tool.exitCode(), tool.stderr());
                assertEquals(List.of(), posts());
                String reason = tool.event("quit").get("reason").getAsString();
                assertTrue(reason.contains("never-kill-istio-on-failure") && reason.contains("3"), reason);
            }
        }

        @Test
        void theReadmesCiScriptWaitsRunsAndQuitsWithTheTestsCode() throws Exception {
            // The README's script, with the tool's JVM in place of `jbang envoy-preflight@org`.
            String readme = Files.readString(TestSupport.repositoryRoot().resolve("README.md"));
            var block = java.util.regex.Pattern.compile("### In a CI script.*?```bash\n(.*?)```", java.util.regex.Pattern.DOTALL)
                    .matcher(readme);
            assertTrue(block.find(), "README section 'In a CI script' with a bash block");
            String tool = String.join(" ", TestSupport.javaCommand().stream().map(TestSupport::quote).toList());
            String script = block.group(1).replace("jbang envoy-preflight@org", tool)
                    .replace("./run-tests.sh", "sh -c 'touch " + dir.resolve("started") + "; exit 5'");
            ProcessBuilder pb = TestSupport.cleanEnvironment(new ProcessBuilder("bash", "-c", script))
                    .redirectErrorStream(true).redirectOutput(dir.resolve("ci.log").toFile());
            pb.environment().putAll(admin());
            Process p = pb.start();
            assertTrue(p.waitFor(60, java.util.concurrent.TimeUnit.SECONDS), TestSupport.read(dir.resolve("ci.log")));
            assertEquals(5, p.exitValue(), TestSupport.read(dir.resolve("ci.log")));
            assertTrue(appStarted());
            assertEquals(List.of("pilot-agent POST /quitquitquit"), posts());
        }
    }
}
