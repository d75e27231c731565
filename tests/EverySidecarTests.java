import com.google.gson.JsonObject;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.parallel.ResourceLock;
import org.junit.jupiter.api.parallel.ResourceAccessMode;

import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.OffsetDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * "Every sidecar a Job meets": one nested class per point of the issue, against the real program
 * (in-process only for modes that start nothing).
 */
class EverySidecarTests extends TestSupport.WithFakeEnvoy {

    // --- 1. Readiness by TCP and by file --------------------------------------------------------------

    @Nested
    class TcpAndFile {
        @Test
        void aTcpListenerAndAFileThatAppearLateAreWaitedForInOrder() throws Exception {
            int port = TestSupport.closedPort();
            Path secret = dir.resolve("secrets/db-password");
            String tcp = "tcp://127.0.0.1:" + port;
            String file = secret.toUri().toString();
            try (var tool = TestSupport.Tool.start(TestSupport.json("GENERIC_READY_ENDPOINTS", tcp + "," + file),
                    "echo", "app")) {
                TestSupport.await("a refused connection", () -> TestSupport.any(tool.eventsSoFar(), "poll",
                        o -> tcp.equals(TestSupport.text(o, "target"))));
                try (ServerSocket listener = new ServerSocket(port, 8, InetAddress.getLoopbackAddress())) {
                    TestSupport.await("the file to be polled", () -> TestSupport.any(tool.eventsSoFar(), "poll",
                            o -> file.equals(TestSupport.text(o, "target"))));
                    Files.createDirectories(secret.getParent());
                    Files.writeString(secret, "s3cret");
                    assertEquals(0, tool.exitCode(), tool.stderr());
                }
                assertEquals("app\n", tool.stdout());
                assertEquals(List.of(tcp, file), TestSupport.each(tool.events("wait"), "target"));
                assertEquals(List.of(tcp, file), TestSupport.each(tool.events("ready"), "target"));
                // one after the other: the file is not even waited for until TCP accepted, and the app starts last
                List<String> story = tool.events().stream().filter(o -> List.of("wait", "ready", "app-start")
                        .contains(o.get("event").getAsString())).map(o -> o.get("event").getAsString()
                        + (o.has("target") ? " " + o.get("target").getAsString() : "")).toList();
                assertEquals(List.of("wait " + tcp, "ready " + tcp, "wait " + file, "ready " + file, "app-start"), story);
            }
        }

        @org.junit.jupiter.api.Tag("fast")
        @Test
        void checkAsksThemToo() throws Exception {
            try (ServerSocket listener = new ServerSocket(0, 8, InetAddress.getLoopbackAddress())) {
                Path missing = dir.resolve("missing");
                var r = TestSupport.inProcess(TestSupport.env("GENERIC_READY_ENDPOINTS", "tcp://127.0.0.1:"
                        + listener.getLocalPort() + "," + missing.toUri()), "--check");
                assertEquals(1, r.code(), r.err());
                assertEquals("tcp://127.0.0.1:" + listener.getLocalPort() + ": connection accepted\n" + missing.toUri()
                        + ": does not exist\n", r.out());
            }
        }

        @Test
        void aRefusedTcpConnectionMeansNothingListensAndAMissingFileNever() throws Exception {
            int port = TestSupport.closedPort();
            try (var tool = TestSupport.Tool.start(TestSupport.json("GENERIC_READY_ENDPOINTS", "tcp://127.0.0.1:" + port,
                    "SIDECAR_ABSENT_AFTER", "300ms"), "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals("tcp://127.0.0.1:" + port, tool.event("absent").get("target").getAsString());
            }
            String never = dir.resolve("never").toUri().toString();
            try (var tool = TestSupport.Tool.start(TestSupport.json("GENERIC_READY_ENDPOINTS", never,
                    "SIDECAR_ABSENT_AFTER", "300ms", "WAIT_FOR_ENVOY_TIMEOUT", "800ms"), "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(tool.events("absent").isEmpty(), tool.stderr());
                assertEquals(never, tool.event("wait-timeout").get("target").getAsString());
            }
        }

        @Test
        void aMissingFileAtExitDoesNotMakeAnAbsentSidecarCome() throws Exception {
            int port = TestSupport.closedPort();
            try (var tool = TestSupport.Tool.start(TestSupport.json("GENERIC_READY_ENDPOINTS", "tcp://127.0.0.1:" + port + ","
                    + dir.resolve("never").toUri(), "SIDECAR_ABSENT_AFTER", "300ms", "GENERIC_QUIT_ENDPOINTS",
                    "http://127.0.0.1:" + port + "/quit"), "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(1, tool.events("absent").size(), tool.stderr());
                assertTrue(tool.events("late").isEmpty(), tool.stderr());
                JsonObject nothing = tool.event("quit");
                assertTrue(nothing.has("reason") && !nothing.has("url"), nothing.toString());
            }
        }
    }

    // --- 2. Quit by signal --------------------------------------------------------------------------------

    @Nested
    class QuitBySignal {
        /** The tool signals every process of a name it sees: here, only those in this namespace. */
        TestSupport.PidNamespace ns;

        @org.junit.jupiter.api.BeforeEach
        void ownNamespace() throws Exception {
            ns = TestSupport.PidNamespace.create();
        }

        @org.junit.jupiter.api.AfterEach
        void endNamespace() {
            ns.close(); // and with it every process left inside, a test that failed midway too
        }

        /** A process named name in ns that records each signal it gets, and ignores TERM if asked to. */
        Process sidecar(String name, boolean ignoresTerm) throws Exception {
            Path exe = dir.resolve(name);
            Files.writeString(exe, String.join("\n", "#!/bin/bash",
                    ignoresTerm ? "trap 'echo TERM >> \"$0.signals\"' TERM" : "trap 'echo TERM >> \"$0.signals\"; exit 0' TERM",
                    "trap 'echo INT >> \"$0.signals\"; exit 0' INT",
                    "touch \"$0.ready\"",
                    "while true; do sleep 0.05; done", ""));
            Files.setPosixFilePermissions(exe, PosixFilePermissions.fromString("rwxr-xr-x"));
            Process p = ns.start(new ProcessBuilder(exe.toString()));
            TestSupport.await(name + " to start", () -> Files.exists(dir.resolve(name + ".ready")));
            return p;
        }

        /** The pid the tool logs for a sidecar: the namespace's. */
        long pidInside(Process sidecar) throws Exception {
            return TestSupport.PidNamespace.pidInside(TestSupport.PidNamespace.inside(sidecar).pid());
        }

        List<String> signals(String name) {
            String s = TestSupport.read(dir.resolve(name + ".signals"));
            return s.isEmpty() ? List.of() : List.of(s.strip().split("\n"));
        }

        @Test
        void eachProcessOfThatNameGetsTheSignalAndTheToolWaitsForIt() throws Exception {
            Process shipper = sidecar("fake-shipper", false);
            Process other = sidecar("other-sidecar", false);
            long shipperPid = pidInside(shipper);
            Map<String, String> env = TestSupport.json("GENERIC_QUIT_PROCESSES", "fake-shipper:INT");
            try (var tool = TestSupport.Tool.in(ns, env, "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertTrue(shipper.waitFor(5, TimeUnit.SECONDS), "the shipper still runs");
                assertEquals(List.of("INT"), signals("fake-shipper"));
                assertTrue(other.isAlive(), "another name was signalled");
                JsonObject sent = tool.event("quit");
                assertEquals("fake-shipper", sent.get("process").getAsString());
                assertEquals(shipperPid, sent.get("pid").getAsLong());
                assertEquals("INT", sent.get("signal").getAsString());
                assertFalse(sent.has("error"), sent.toString());
            }
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void oneThatIgnoresTermIsKilledWhenTheQuitTimeoutRunsOut() throws Exception {
            Process stubborn = sidecar("stubborn", true);
            long stubbornPid = pidInside(stubborn);
            try (var tool = TestSupport.Tool.in(ns, TestSupport.json("GENERIC_QUIT_PROCESSES", "stubborn",
                    "QUIT_REQUEST_TIMEOUT", "1s"), "sh", "-c", "exit 3")) {
                assertEquals(3, tool.exitCode(), tool.stderr());
                assertTrue(stubborn.waitFor(5, TimeUnit.SECONDS), "still alive");
                assertEquals(List.of("TERM"), signals("stubborn"));
                assertEquals(128 + 9, stubborn.exitValue(), "killed");
                List<JsonObject> steps = tool.events("quit");
                // the KILL is one warning (sending it), and a second line only if it could not be sent
                assertEquals(Arrays.asList("TERM", "KILL"), TestSupport.each(steps, "signal"), tool.stderr());
                assertEquals(Arrays.asList(null, "still running"), TestSupport.each(steps, "error"), tool.stderr());
                assertEquals(stubbornPid, steps.get(0).get("pid").getAsLong());
                assertEquals(List.of(Long.toString(stubbornPid)), TestSupport.array(steps.get(1), "pids"));
                long ms = TestSupport.millisBetween(steps.get(0), steps.get(1));
                // by the tool's own clock; the second bound is 2x the timeout: KILL is sent as soon as it runs out
                assertTrue(ms >= 900 && ms < 2000, "KILL " + ms + " ms after TERM, with a 1s timeout");
            }
        }

        @Test
        void noSuchProcessIsSaidClearlyAndChangesNothing() throws Exception {
            Map<String, String> env = TestSupport.env("GENERIC_QUIT_PROCESSES", "no-such-proc", "ENVOY_PREFLIGHT_LOG_FORMAT", "json");
            try (var tool = TestSupport.Tool.in(ns, env, "sh", "-c", "exit 4")) { // not verbose: a warning shows anyway
                assertEquals(4, tool.exitCode(), tool.stderr());
                JsonObject missed = tool.event("quit");
                assertEquals("warning", missed.get("level").getAsString());
                assertEquals("no-such-proc", missed.get("process").getAsString());
                assertEquals("not visible", missed.get("error").getAsString());
                // what to change, for whoever reads it: the pod's spec
                assertTrue(missed.get("msg").getAsString().contains("shareProcessNamespace"), missed.toString());
            }
        }

        /** A longer name is exit 2 (BadInputTests' table); --help says so before anyone tries. */
        @Test
        void theHelpSaysANameHasAtMost15Characters() {
            String help = EnvoyPreflight.commandLine(new EnvoyPreflight()).getUsageMessage();
            assertTrue(help.replaceAll("\\s+", " ").contains("at most 15 bytes"), help);
        }

        @org.junit.jupiter.api.Tag("fast")
        @Test
        void itRunsAfterTheQuitEndpointsAndBeforeIstioAndDryRunShowsIt() {
            var r = TestSupport.inProcess(TestSupport.env("GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:9091/quitquitquit",
                    "GENERIC_QUIT_PROCESSES", "vector,fluent-bit:INT", "ISTIO_QUIT_API", "http://127.0.0.1:15020",
                    "ENVOY_ADMIN_API", "http://127.0.0.1:15000"), "--dry-run", "true");
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("at exit with code 0: POST http://127.0.0.1:9091/quitquitquit; then SIGTERM every vector"
                    + " process, SIGINT every fluent-bit process (the eldest of each family), then KILL any left; then POST"
                    + " http://127.0.0.1:15020/quitquitquit\n"), r.out());
        }
    }

    // --- 3. An exit file -------------------------------------------------------------------------------------

    @Nested
    class ExitFile {
        @Test
        void theCodeIsThereBeforeTheFirstQuitRequest() throws Exception {
            Path exitFile = dir.resolve("shared/exit-code");
            Files.createDirectories(exitFile.getParent());
            List<String> atQuit = new CopyOnWriteArrayList<>();
            fake.override("/drain", exchange -> {
                atQuit.add(TestSupport.read(exitFile));
                FakeEnvoy.reply(exchange, 200, "text/plain", "ok");
            });
            try (var tool = TestSupport.Tool.start(TestSupport.env("GENERIC_QUIT_ENDPOINTS", fake.url() + "/drain",
                    "ENVOY_PREFLIGHT_EXIT_FILE", exitFile.toString()), "sh", "-c", "exit 7")) {
                assertEquals(7, tool.exitCode(), tool.stderr());
            }
            assertEquals(List.of("7\n"), atQuit);
            assertEquals("7\n", Files.readString(exitFile));
            try (var files = Files.list(exitFile.getParent())) {
                assertEquals(List.of("exit-code"), files.map(f -> f.getFileName().toString()).toList(), "no temporary left");
            }
        }

        @Test
        void aGiveUpAStopAndQuitOnlyWriteTheirCodes() throws Exception {
            Path exitFile = dir.resolve("exit-code");
            fake.forceState("INITIALIZING");
            try (var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_ADMIN_API", fake.url().toString(),
                    "QUIT_WITHOUT_ENVOY_TIMEOUT", "300ms", "NEVER_KILL_ISTIO", "true", "ENVOY_PREFLIGHT_EXIT_FILE",
                    exitFile.toString()), "true")) {
                assertEquals(69, tool.exitCode(), tool.stderr());
            }
            assertEquals("69\n", Files.readString(exitFile));
            try (var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_ADMIN_API", fake.url().toString(),
                    "NEVER_KILL_ISTIO", "true", "ENVOY_PREFLIGHT_EXIT_FILE", exitFile.toString()), "true")) {
                int before = fake.requests().size();
                TestSupport.await("a poll", () -> fake.requests().size() > before);
                tool.signal("TERM");
                assertEquals(143, tool.exitCode(), tool.stderr());
            }
            assertEquals("143\n", Files.readString(exitFile));
            try (var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_PREFLIGHT_EXIT_FILE", exitFile.toString()),
                    "--quit-only", "--exit-code", "5")) {
                assertEquals(5, tool.exitCode(), tool.stderr());
            }
            assertEquals("5\n", Files.readString(exitFile));
        }

        @Test
        void notWithCheckDryRunOrWaitOnlyAndAFailureIsOnlyAWarning() throws Exception {
            Path exitFile = dir.resolve("exit-code");
            for (String mode : List.of("--check", "--dry-run", "--wait-only")) {
                List<String> args = new ArrayList<>(List.of("--exit-file", exitFile.toString(), mode));
                if (mode.equals("--dry-run")) args.add("true");
                var r = TestSupport.inProcess(TestSupport.env("ENVOY_ADMIN_API", fake.url().toString()),
                        args.toArray(String[]::new));
                assertTrue(r.code() == 0 || mode.equals("--check"), mode + ": " + r.err());
                assertFalse(Files.exists(exitFile), mode);
            }
            try (var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_PREFLIGHT_EXIT_FILE", "/nonexistent/dir/exit-code",
                    "ENVOY_PREFLIGHT_LOG_FORMAT", "json"), "sh", "-c", "exit 9")) {
                assertEquals(9, tool.exitCode(), tool.stderr());
                JsonObject failed = tool.event("exit-file");
                assertEquals("warning", failed.get("level").getAsString());
                assertEquals("/nonexistent/dir/exit-code", failed.get("path").getAsString());
                assertTrue(failed.has("error") && !failed.has("code"), failed.toString());
            }
        }
    }

    // --- 4. kubexit's tombstones -----------------------------------------------------------------------------

    @Nested
    class Tombstones {
        @Test
        void bornWhileTheAppRunsThenDiedWithItsExitCode() throws Exception {
            Path graveyard = dir.resolve("graveyard");
            Path tombstone = graveyard.resolve("job");
            try (var tool = TestSupport.Tool.start(TestSupport.env("KUBEXIT_NAME", "job", "KUBEXIT_GRAVEYARD", graveyard + "/"),
                    "sh", "-c", "until [ -e '" + tombstone + "' ]; do sleep 0.01; done; cat '" + tombstone + "'; exit 3")) {
                assertEquals(3, tool.exitCode(), tool.stderr());
                Map<String, Object> born = new org.yaml.snakeyaml.Yaml().load(tool.stdout());
                assertEquals(List.of("Born"), List.copyOf(born.keySet()), tool.stdout());
            }
            Map<String, Object> dead = new org.yaml.snakeyaml.Yaml().load(Files.readString(tombstone));
            assertEquals(List.of("Born", "Died", "ExitCode"), List.copyOf(dead.keySet()));
            var bornAt = OffsetDateTime.parse((String) dead.get("Born")); // RFC 3339, as kubexit's Go reads it
            var diedAt = OffsetDateTime.parse((String) dead.get("Died"));
            assertFalse(diedAt.isBefore(bornAt));
            assertEquals(3, dead.get("ExitCode"));
        }

        @Test
        void whenTheAppNeverStartsItsTombstoneSaysItDiedAndOthersCanReadIt() throws Exception {
            Path graveyard = dir.resolve("graveyard");
            try (var tool = TestSupport.Tool.start(TestSupport.env("KUBEXIT_NAME", "job", "KUBEXIT_GRAVEYARD", graveyard.toString()),
                    "no-such-command-here")) {
                assertEquals(127, tool.exitCode(), tool.stderr());
            }
            Path tombstone = graveyard.resolve("job");
            Map<String, Object> dead = new org.yaml.snakeyaml.Yaml().load(Files.readString(tombstone));
            assertEquals(List.of("Died", "ExitCode"), List.copyOf(dead.keySet()), "as kubexit: no Born for a child never started");
            assertEquals(127, dead.get("ExitCode"));
            assertEquals("rw-r--r--", PosixFilePermissions.toString(Files.getPosixFilePermissions(tombstone)),
                    "a kubexit sidecar running as another user reads it");
        }

        @Test
        void withoutBothVariablesNothingIsWritten() throws Exception {
            try (var tool = TestSupport.Tool.start(TestSupport.env("KUBEXIT_NAME", "job"), "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals("", tool.stderr());
            }
        }
    }

    // --- 5. Named sidecars -------------------------------------------------------------------------------------

    @Nested
    class NamedSidecars {
        @Test
        void linkerdOnItsDefaultPort() throws Exception {
            try (var linkerd = TestSupport.Recorder.onDefaultPort(4191).leavesOnPost();
                 var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_PREFLIGHT_SIDECARS", "linkerd"), "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("GET /ready", "POST /shutdown"), linkerd.seen());
            }
        }

        @Test
        void cloudSqlProxyOnItsDefaultPorts() throws Exception {
            try (var health = TestSupport.Recorder.onDefaultPort(9090);
                 var admin = TestSupport.Recorder.onDefaultPort(9091).leavesOnPost(health);
                 var tool = TestSupport.Tool.start(TestSupport.env(), "--sidecar", "cloud-sql-proxy", "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("GET /readiness"), health.seen());
                assertEquals(List.of("POST /quitquitquit"), admin.seen());
            }
        }

        @Test
        @ResourceLock(TestSupport.ISTIO_PORTS)
        void istioOnItsDefaultPorts() throws Exception {
            try (var ready = TestSupport.Recorder.onDefaultPort(15021); var pilot = TestSupport.Recorder.onDefaultPort(15020)) {
                FakeEnvoy envoy;
                try {
                    envoy = FakeEnvoy.start(15000, java.time.Duration.ZERO);
                } catch (java.net.BindException e) {
                    Assumptions.abort("port 15000 is taken here");
                    return;
                }
                pilot.leavesOnPost(ready, envoy); // pilot-agent takes Envoy with it
                try (envoy; var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_PREFLIGHT_SIDECARS", "istio"), "true")) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                    assertTrue(envoy.requests().stream().anyMatch(r -> r.path().equals("/server_info")), envoy.requests().toString());
                    assertEquals(List.of("GET /healthz/ready"), ready.seen());
                    assertEquals(List.of("POST /quitquitquit"), pilot.seen());
                }
            }
        }

        @Test
        void daprOnItsPortWithItsTokenWhichIsNeverLogged() throws Exception {
            try (var dapr = new TestSupport.Recorder(0, 204).leavesOnPost()) {
                String port = String.valueOf(dapr.port());
                Map<String, String> env = TestSupport.json("ENVOY_PREFLIGHT_SIDECARS", "dapr", "DAPR_HTTP_PORT", port,
                        "DAPR_API_TOKEN", "t0ken-s3cret");
                try (var tool = TestSupport.Tool.start(env, "true")) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                    assertEquals(List.of("GET /v1.0/healthz/outbound", "POST /v1.0/shutdown"), dapr.seen());
                    assertEquals(List.of("t0ken-s3cret", "t0ken-s3cret"), dapr.header("dapr-api-token"));
                    assertFalse(tool.stderr().contains("t0ken"), tool.stderr());
                    JsonObject settings = tool.event("config").getAsJsonObject("settings");
                    assertEquals(List.of("dapr"), TestSupport.array(settings, "sidecars"));
                    assertEquals(List.of("http://127.0.0.1:" + port + "/v1.0/healthz/outbound"),
                            TestSupport.array(settings, "ready-endpoints"));
                }
                env.remove("ENVOY_PREFLIGHT_LOG_FORMAT"); // and in text
                var dry = TestSupport.inProcess(env, "--dry-run", "true");
                assertFalse((dry.out() + dry.err()).contains("t0ken"), dry.out());
            }
        }

        /** A line break inside the token is exit 2 (BadInputTests' table); one at its end, as a file gives it, is not. */
        @Test
        void aTrailingLineBreakInTheTokenIsTrimmed() throws Exception {
            try (var dapr = new TestSupport.Recorder(0, 204).leavesOnPost()) {
                try (var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_PREFLIGHT_SIDECARS", "dapr", "DAPR_HTTP_PORT",
                        String.valueOf(dapr.port()), "DAPR_API_TOKEN", "from-a-file\n"), "true")) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                }
                assertEquals(List.of("from-a-file", "from-a-file"), dapr.header("dapr-api-token"));
            }
        }

        @Test
        void daprOnItsDefaultPort() throws Exception {
            try (var dapr = TestSupport.Recorder.onDefaultPort(3500).leavesOnPost();
                 var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_PREFLIGHT_SIDECARS", "dapr"), "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("GET /v1.0/healthz/outbound", "POST /v1.0/shutdown"), dapr.seen());
            }
        }

        @org.junit.jupiter.api.Tag("fast")
        @Test
        void theUsersListEntriesComeAfterTheSidecarsAndDryRunShowsWhatEachNameSet() {
            // issue 20: a list set by the user no longer drops a named sidecar's entries (its quit above all)
            var r = TestSupport.inProcess(TestSupport.env("ENVOY_PREFLIGHT_SIDECARS", "linkerd,cloud-sql-proxy",
                    "GENERIC_READY_ENDPOINTS", "http://127.0.0.1:8080/ok"), "--dry-run", "true");
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("ready-endpoints=[http://127.0.0.1:4191/ready, http://127.0.0.1:9090/readiness,"
                    + " http://127.0.0.1:8080/ok]\n"), r.out());
            assertTrue(r.out().contains("generic-quit-endpoints=[http://127.0.0.1:4191/shutdown,"
                    + " http://127.0.0.1:9091/quitquitquit]\n"), r.out());
            assertTrue(r.out().contains("sidecar linkerd: ready-endpoints=[http://127.0.0.1:4191/ready],"
                    + " generic-quit-endpoints=[http://127.0.0.1:4191/shutdown]\n"), r.out());
            assertTrue(r.out().contains("sidecar cloud-sql-proxy: ready-endpoints=[http://127.0.0.1:9090/readiness],"
                    + " generic-quit-endpoints=[http://127.0.0.1:9091/quitquitquit]\n"), r.out());
        }
    }

    // --- 6. The Cloud SQL Proxy Operator's variable -------------------------------------------------------------

    @Nested
    class CloudSqlProxyOperator {
        @Test
        void eachSpaceSeparatedUrlIsPostedWithNoOtherConfiguration() throws Exception {
            try (var a = new TestSupport.Recorder(0, 200).leavesOnPost();
                 var b = new TestSupport.Recorder(0, 200).leavesOnPost()) {
                Map<String, String> env = TestSupport.json("CSQL_PROXY_QUIT_URLS", a.url() + "/quitquitquit " + b.url()
                        + "/quitquitquit");
                try (var tool = TestSupport.Tool.start(env, "true")) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                    JsonObject config = tool.event("config");
                    assertTrue(TestSupport.array(config, "set_by").contains("CSQL_PROXY_QUIT_URLS"), config.toString());
                    assertEquals(List.of(a.url() + "/quitquitquit", b.url() + "/quitquitquit"),
                            TestSupport.array(config.getAsJsonObject("settings"), "csql-proxy-quit-urls"));
                }
                env.remove("ENVOY_PREFLIGHT_LOG_FORMAT");
                assertEquals(List.of("POST /quitquitquit"), a.seen());
                assertEquals(List.of("POST /quitquitquit"), b.seen());
                var dry = TestSupport.inProcess(env, "--dry-run", "true");
                assertTrue(dry.out().contains("at exit with code 0: POST " + a.url() + "/quitquitquit; then POST " + b.url()
                        + "/quitquitquit\n"), dry.out());
            }
        }
    }

    // --- 7. The pod's own view of a failure ----------------------------------------------------------------------

    @Nested
    class TerminationMessage {
        Path termination() { return dir.resolve("termination-log"); }

        String afterRun(Map<String, String> env, String... command) throws Exception {
            env.put("ENVOY_PREFLIGHT_TERMINATION_LOG", termination().toString());
            try (var tool = TestSupport.Tool.start(env, command)) {
                tool.exitCode();
            }
            return TestSupport.read(termination());
        }

        @Test
        void eachFailureOfTheToolsOwnSaysWhy() throws Exception {
            assertTrue(afterRun(TestSupport.env("QUIT_REQUEST_TIMEOUT", "soon"), "true")
                    .startsWith("envoy-preflight: QUIT_REQUEST_TIMEOUT: not a duration"), TestSupport.read(termination()));
            assertTrue(afterRun(TestSupport.env(), "no-such-command-here").contains("not found on PATH (exit 127)"));
            Path notExecutable = Files.writeString(dir.resolve("job.sh"), "echo\n");
            assertTrue(afterRun(TestSupport.env(), notExecutable.toString()).contains("not executable (exit 126)"));
            fake.forceState("INITIALIZING");
            assertTrue(afterRun(TestSupport.env("ENVOY_ADMIN_API", fake.url().toString(), "QUIT_WITHOUT_ENVOY_TIMEOUT", "300ms",
                    "NEVER_KILL_ISTIO", "true"), "true").contains("Envoy was not LIVE within the give-up timeout"));
            Map<String, String> env = TestSupport.env("ENVOY_ADMIN_API", fake.url().toString(), "NEVER_KILL_ISTIO", "true",
                    "ENVOY_PREFLIGHT_TERMINATION_LOG", termination().toString());
            try (var tool = TestSupport.Tool.start(env, "true")) {
                int before = fake.requests().size();
                TestSupport.await("a poll", () -> fake.requests().size() > before);
                tool.signal("TERM");
                assertEquals(143, tool.exitCode());
            }
            assertTrue(TestSupport.read(termination()).matches("envoy-preflight: stopped by SIGTERM while waiting for Envoy.*\\(exit 143\\)\n"),
                    TestSupport.read(termination()));
        }

        @Test
        void theReasonIsTheOneThatDecidedTheCodeNotALaterQuitFailure() throws Exception {
            fake.forceState("INITIALIZING");
            String said = afterRun(TestSupport.env("ENVOY_ADMIN_API", fake.url().toString(), "QUIT_WITHOUT_ENVOY_TIMEOUT", "300ms",
                    "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:" + TestSupport.closedPort() + "/quit"), "true");
            assertTrue(said.startsWith("envoy-preflight: Envoy was not LIVE within the give-up timeout"), said);
        }

        @Test
        void neverWithQuitOnlyWhereTheCallersAppRan() throws Exception {
            assertEquals("", afterRun(TestSupport.env(), "--quit-only", "--exit-code", "137"));
            assertEquals("", afterRun(TestSupport.env(), "--quit-only", "--exit-code", "2"));
        }

        @Test
        void neverWhenTheAppRanNorWhenOff() throws Exception {
            assertEquals("", afterRun(TestSupport.env(), "sh", "-c", "exit 2"), "the app's own exit 2");
            assertEquals("", afterRun(TestSupport.env(), "sh", "-c", "kill -TERM $$"), "the app's own 143");
            try (var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_PREFLIGHT_TERMINATION_LOG", "off"), "no-such-cmd")) {
                assertEquals(127, tool.exitCode());
            }
            assertFalse(Files.exists(termination()));
        }

        @Test
        void theDefaultIsUsedOnlyWhereItExists() throws Exception {
            Assumptions.assumeFalse(Files.exists(Path.of("/dev/termination-log")), "this machine has /dev/termination-log");
            try (var tool = TestSupport.Tool.start(TestSupport.env(), "no-such-cmd")) {
                assertEquals(127, tool.exitCode());
            }
            assertFalse(Files.exists(Path.of("/dev/termination-log")), "created where there was none");
        }
    }
}
