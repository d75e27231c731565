import com.google.gson.JsonObject;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.parallel.ResourceLock;
import org.junit.jupiter.api.parallel.ResourceAccessMode;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * "The Job always finishes" (issue 20): every quit confirmed, nothing silent, and each hostile
 * finding closed. One nested class per point; each test names the finding it reproduces.
 */
class JobFinishesTests extends TestSupport.WithFakeEnvoy {

    static Map<String, String> json(String... more) {
        return TestSupport.json(more);
    }

    static List<JsonObject> warnings(List<JsonObject> events) {
        return events.stream().filter(o -> !"info".equals(TestSupport.text(o, "level"))).toList();
    }

    // --- 1. A quit counts when the sidecar has gone ---------------------------------------------------

    @Nested
    class Confirmed {
        @Test
        void aSidecarThatLeavesIsGoneAndNothingIsWarned() throws Exception {
            String port = Integer.toString(fake.url().getPort());
            try (var tool = TestSupport.Tool.start(json("ENVOY_ADMIN_API", fake.url().toString(),
                    "ISTIO_QUIT_API", fake.pilotAgentUrl().toString()), "sh", "-c", "exit 3")) {
                assertEquals(3, tool.exitCode(), tool.stderr());
                List<String> gone = TestSupport.each(tool.events("gone"), "target");
                assertTrue(gone.contains("127.0.0.1:" + port), gone.toString());
                assertTrue(gone.contains("127.0.0.1:" + fake.pilotAgentUrl().getPort()), gone.toString());
                assertEquals(List.of(), warnings(tool.events()));
                assertEquals("exit", TestSupport.kinds(tool.events()).get(tool.events().size() - 1));
            }
        }

        @Test
        void aSidecarThatAnswersTheQuitButStaysIsOneWarningAndTheCodeStaysTheApps() throws Exception {
            fake.stayAfterQuit();
            try (var tool = TestSupport.Tool.start(json("ENVOY_ADMIN_API", fake.url().toString(),
                    "ISTIO_QUIT_API", fake.pilotAgentUrl().toString(),
                    "ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "600ms"), "sh", "-c", "exit 4")) {
                assertEquals(4, tool.exitCode(), tool.stderr());
                List<JsonObject> still = tool.events("still-running");
                // addresses only: a pilot-agent process of another test may be visible here, and TERMed (issue 21)
                assertEquals(List.of("127.0.0.1:" + fake.url().getPort(), "127.0.0.1:" + fake.pilotAgentUrl().getPort())
                        .stream().sorted().toList(),
                                TestSupport.each(still, "target").stream().filter(t -> !t.startsWith("process "))
                                .sorted()
                                .toList());
                for (JsonObject o : still) {
                    assertEquals("warning", TestSupport.text(o, "level"));
                    assertFalse(TestSupport.array(o, "tried").isEmpty(), o.toString());
                    assertTrue(o.get("ms").getAsLong() >= 600, o.toString());
                }
            }
        }

        @Test
        void istioStillAnsweringAfterPilotAgentsQuitIsAskedThroughTheAdminApiBeforeGivingUp() throws Exception {
            fake.stayAfterQuit();
            try (var tool = TestSupport.Tool.start(json("ENVOY_ADMIN_API", fake.url().toString(),
                    "ISTIO_QUIT_API", fake.pilotAgentUrl().toString(),
                    "ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "600ms"), "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of("pilot-agent POST /quitquitquit", "admin POST /quitquitquit"), posts());
                JsonObject still = TestSupport.first(tool.events(), "still-running", o -> true);
                assertTrue(TestSupport.array(still, "tried").contains("POST " + fake.url() + "/quitquitquit"),
                        still.toString());
            }
        }

        @Test
        void zeroMeansDontWaitAndNeverKillConfirmsNothing() throws Exception {
            fake.stayAfterQuit();
            try (var tool = TestSupport.Tool.start(json("ENVOY_ADMIN_API", fake.url().toString(),
                    "ISTIO_QUIT_API", fake.pilotAgentUrl().toString(), "ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "0"),
                    "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of(), tool.events("still-running"));
                assertEquals(List.of(), tool.events("gone"));
            }
            try (var tool = TestSupport.Tool.start(json("ENVOY_ADMIN_API", fake.url().toString(),
                    "NEVER_KILL_ISTIO", "true"), "true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals(List.of(), tool.events("still-running"));
                assertEquals(List.of(), tool.events("gone"));
            }
        }

        @Test
        void eachTargetIsGoneOnceWhileAnotherStays() throws Exception {
            fake.stayAfterQuit();
            Path shipper = dir.resolve("shipper");
            Files.copy(Path.of("/bin/sleep"), shipper); // dies of TERM at once
            try (var ns = TestSupport.PidNamespace.create()) {
                Process p = ns.start(new ProcessBuilder(shipper.toString(), "60"));
                ProcessHandle inside = TestSupport.PidNamespace.inside(p);
                TestSupport.await("the shipper to run", () -> comm(inside.pid()).equals("shipper"));
                try (var tool = TestSupport.Tool.in(ns, json("GENERIC_QUIT_PROCESSES", "shipper",
                        "GENERIC_QUIT_ENDPOINTS", fake.url() + "/drain",
                        "ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "500ms"),
                        "true")) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                    // the shipper's address-less target left at once; the fake's address stayed for 500 ms
                    assertEquals(List.of("process shipper"), TestSupport.each(tool.events("gone"), "target"));
                    assertEquals(List.of("127.0.0.1:" + fake.url().getPort()),
                            TestSupport.each(tool.events("still-running"), "target"));
                }
            }
        }

        @Test
        void onlyTheSidecarsThePlanQuitsAreConfirmed() {
            // generic-quit-only quits no Envoy, and a database proxy waited on by TCP is never quit: neither is waited for
            var r = TestSupport.inProcess(TestSupport.env("ENVOY_ADMIN_API", "http://127.0.0.1:18083", "GENERIC_QUIT_ONLY",
                    "true", "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:18084/quit", "GENERIC_READY_ENDPOINTS",
                    "tcp://127.0.0.1:5432"), "--dry-run", "app");
            assertTrue(r.out().contains("after the quit: confirm gone within 5s: 127.0.0.1:18084\n"), r.out());
            // a plain Envoy's further means name no process: TERM to every 'envoy' would reach beyond the pod
            var plain = TestSupport.inProcess(TestSupport.env("ENVOY_ADMIN_API", "http://127.0.0.1:9901"), "--dry-run", "app");
            assertTrue(plain.out().contains("(still there halfway: POST http://127.0.0.1:9901/quitquitquit)"), plain.out());
            // Istio's: its ready port is the same sidecar as its quit port
            var istio = TestSupport.inProcess(TestSupport.env("ENVOY_PREFLIGHT_SIDECARS", "istio"), "--dry-run", "app");
            assertTrue(istio.out().contains("confirm gone within 5s: 127.0.0.1:15000, 127.0.0.1:15021, 127.0.0.1:15020"),
                    istio.out());
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void aTermDuringTheConfirmationEndsTheWait() throws Exception {
            fake.stayAfterQuit();
            try (var tool = TestSupport.Tool.start(json("ENVOY_ADMIN_API", fake.url().toString(),
                    "ISTIO_QUIT_API", fake.pilotAgentUrl().toString()), "sh", "-c", "exit 4")) {
                TestSupport.await("the quit", () -> TestSupport.any(tool.eventsSoFar(), "quit", o -> true));
                long start = System.nanoTime();
                tool.signal("TERM");
                assertEquals(4, tool.exitCode(), tool.stderr());
                long ms = (System.nanoTime() - start) / 1_000_000;
                // the confirmation would wait 5 s; a TERM ends it at its next round (at most 100 ms), 2 s is ample
                assertTrue(ms < 2000, ms + " ms after TERM");
                assertTrue(TestSupport.text(tool.events("still-running").get(0), "msg").contains("a stop signal"),
                        tool.stderr());
            }
        }

        @Test
        void dryRunShowsTheConfirmStep() {
            var r = TestSupport.inProcess(TestSupport.env("ENVOY_ADMIN_API", "http://127.0.0.1:15000"),
                    "--dry-run", "app");
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("confirm gone within 5s: 127.0.0.1:15000"), r.out());
            var never = TestSupport.inProcess(TestSupport.env("ENVOY_ADMIN_API", "http://127.0.0.1:15000",
                    "NEVER_KILL_ISTIO", "true"), "--dry-run", "app");
            assertFalse(never.out().lines().filter(l -> l.startsWith("at exit")).anyMatch(l -> l.contains("confirm")),
                    never.out());
        }
    }

    // --- 2. Nothing silent ------------------------------------------------------------------------------

    @Nested
    class NothingSilent {
        @Test
        void aMisspelledVariableIsAWarningThatNamesTheSettingMeant() {
            for (String[] c : new String[][]{{"ENVOY_ADMN_API", "ENVOY_ADMIN_API"},
                    {"ENVOY_PREFLIGHT_SIDECAR", "ENVOY_PREFLIGHT_SIDECARS"},
                    {"GENERIC_QUIT_ENDPOINT", "GENERIC_QUIT_ENDPOINTS"}, {"NEVER_KILL_ISITO", "NEVER_KILL_ISTIO"}}) {
                var r = TestSupport.inProcess(json(c[0], "x"), "sh", "-c", "exit 5");
                assertEquals(5, r.code(), r.err());
                JsonObject o = r.event("unknown-setting");
                assertEquals(c[0], TestSupport.text(o, "name"));
                assertEquals(c[1], TestSupport.text(o, "suggestion"));
                assertEquals("warning", TestSupport.text(o, "level"));
                assertTrue(TestSupport.text(o, "msg").contains("did you mean " + c[1] + "?"), o.toString());
            }
        }

        @Test
        void anUnknownVariableInOurNamespaceIsAWarningToo() {
            var r = TestSupport.inProcess(json("ENVOY_PREFLIGHT_NO_SUCH_THING", "1"), "true");
            assertEquals(0, r.code(), r.err());
            assertEquals("ENVOY_PREFLIGHT_NO_SUCH_THING", TestSupport.text(r.event("unknown-setting"), "name"));
        }

        @Test
        void theSidecarsOwnVariablesInTheAppsContainerAreNoNearMiss() {
            // Dapr gives the app APP_API_TOKEN, two edits from DAPR_API_TOKEN; kubexit's sidecars read their own
            var r = TestSupport.inProcess(json("APP_API_TOKEN", "x", "KUBEXIT_DEATH_DEPS", "app", "DAPR_GRPC_PORT", "1"),
                    "true");
            assertEquals(0, r.code(), r.err());
            assertEquals(List.of(), r.events().stream().filter(o -> TestSupport.is(o, "unknown-setting")).toList());
        }

        @Test
        void aRunWithNoSidecarSaysSo() {
            var r = TestSupport.inProcess(json(), "true");
            assertEquals(0, r.code(), r.err());
            assertEquals(0, r.event("config").get("sidecars").getAsInt(), r.err());
        }

        @Test
        void anUnknownSidecarAndAnUnknownFlagSuggestTheClosest() {
            var r = TestSupport.inProcess(TestSupport.env("ENVOY_PREFLIGHT_SIDECARS", "linkrd"), "true");
            assertEquals(2, r.code());
            assertTrue(r.err().contains("did you mean linkerd?"), r.err());
            var f = TestSupport.inProcess(TestSupport.env(), "--admin-apii", "x", "true");
            assertEquals(2, f.code());
            assertTrue(f.err().contains("did you mean --admin-api?"), f.err());
        }

        @Test
        void aUrlWithoutASchemeSaysToAddHttp() {
            var r = TestSupport.inProcess(TestSupport.env("ENVOY_ADMIN_API", "127.0.0.1:15000"), "true");
            assertEquals(2, r.code());
            assertTrue(r.err().contains("add http://"), r.err());
            assertFalse(r.err().contains("Illegal character"), r.err());
        }
    }

    // --- 3. The hostile findings ------------------------------------------------------------------------

    @Nested
    class TerminationLog {
        @Test
        void aFifoWithNoReaderNeverBlocksTheTool() throws Exception {
            Path fifo = dir.resolve("fifo");
            assertEquals(0, new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor());
            try (var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_PREFLIGHT_TERMINATION_LOG", fifo.toString()),
                    "no-such-command-here")) {
                assertTrue(tool.process.waitFor(20, TimeUnit.SECONDS), "blocked in the write");
                assertEquals(127, tool.process.exitValue(), tool.stderr());
                assertTrue(tool.stderr().contains("not a regular file"), tool.stderr());
            }
        }

        @Test
        void aSymlinkIsNotFollowed() throws Exception {
            Path target = dir.resolve("precious");
            Files.writeString(target, "keep me\n");
            Path link = dir.resolve("link");
            Files.createSymbolicLink(link, target);
            var r = TestSupport.inProcess(TestSupport.env("ENVOY_PREFLIGHT_TERMINATION_LOG", link.toString()),
                    "no-such-command-here");
            assertEquals(127, r.code());
            assertEquals("keep me\n", Files.readString(target));
        }

        @Test
        void offInAnyCaseAndWithBlanksIsOff() throws Exception {
            for (String off : List.of("OFF", "Off", "off ", " off")) {
                Path cwd = Path.of("").toAbsolutePath().resolve(off);
                Assumptions.assumeFalse(Files.exists(cwd), cwd + " is there already");
                var r = TestSupport.inProcess(TestSupport.env("ENVOY_PREFLIGHT_TERMINATION_LOG", off),
                        "no-such-command-here");
                assertEquals(127, r.code());
                assertFalse(Files.exists(cwd), "a file named '" + off + "' was made");
            }
        }

        @Test
        void theMessageIsCappedAt4096BytesWithTheReasonFirst() throws Exception {
            Path log = dir.resolve("termination-log");
            String longName = "x".repeat(6000);
            var r = TestSupport.inProcess(TestSupport.env("ENVOY_PREFLIGHT_TERMINATION_LOG", log.toString()),
                    "/nonexistent/" + longName);
            assertEquals(127, r.code());
            byte[] written = Files.readAllBytes(log);
            assertTrue(written.length <= 4096, written.length + " bytes");
            assertTrue(new String(written, StandardCharsets.UTF_8).startsWith("envoy-preflight: "), r.err());
        }
    }

    @Nested
    class QuitProcesses {
        @Test
        void theToolsOwnParentIsNeverSignalledEvenWithTheSameName() throws Exception {
            Path shell = dir.resolve("sidecarsh");
            Files.copy(Path.of("/bin/bash"), shell);
            String tool = String.join(" ", TestSupport.javaCommand().stream().map(TestSupport::quote).toList());
            ProcessBuilder pb = TestSupport.cleanEnvironment(new ProcessBuilder(shell.toString(), "-c",
                    tool + " --quit-process sidecarsh -- sh -c 'exit 7'; echo \"code $?\""))
                    .redirectErrorStream(true);
            Process p = pb.start();
            try {
                String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertTrue(p.waitFor(30, TimeUnit.SECONDS));
                assertEquals(0, p.exitValue(), out);
                assertTrue(out.contains("code 7"), out);
            } finally {
                p.destroyForcibly();
            }
        }

        @Test
        void aMultibyteNameIsCheckedInBytes() {
            // 8 characters, 16 bytes in UTF-8: the kernel's comm keeps 15 bytes, so it could never match
            var r = TestSupport.inProcess(TestSupport.env("GENERIC_QUIT_PROCESSES", "\u00e9".repeat(8)), "true");
            assertEquals(2, r.code(), r.err());
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void severalNamesShareOneTimeout() throws Exception {
            Path a = dir.resolve("stubborn-a");
            Path b = dir.resolve("stubborn-b");
            Files.copy(Path.of("/bin/bash"), a);
            Files.copy(Path.of("/bin/bash"), b);
            // in a PID namespace of the test's own: the tool signals every process of those names it sees
            try (var ns = TestSupport.PidNamespace.create()) {
                String stubborn = "trap '' TERM; while :; do sleep 0.05; done";
                Process pa = ns.start(new ProcessBuilder(a.toString(), "-c", stubborn));
                Process pb = ns.start(new ProcessBuilder(b.toString(), "-c", stubborn));
                ProcessHandle ia = TestSupport.PidNamespace.inside(pa);
                ProcessHandle ib = TestSupport.PidNamespace.inside(pb);
                TestSupport.await("both to run",
                        () -> comm(ia.pid()).equals("stubborn-a") && comm(ib.pid()).equals("stubborn-b"));
                try (var tool = TestSupport.Tool.in(ns, json("GENERIC_QUIT_PROCESSES", "stubborn-a,stubborn-b",
                        "QUIT_REQUEST_TIMEOUT", "1500ms", "ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "1s"), "true")) {
                    assertEquals(0, tool.exitCode(), tool.stderr());
                    List<JsonObject> quits = tool.events("quit");
                    long kills = quits.stream().filter(o -> "KILL".equals(TestSupport.text(o, "signal"))).count();
                    assertEquals(2, kills, tool.stderr());
                    // by the tool's own clock, from the first signal to the last KILL (its JVM's start-up is not in
                    // it): one shared 1.5 s timeout, not two in a row (3 s); 1.4 s to spare for the rounds' latency
                    long ms = TestSupport.millisBetween(quits.get(0), quits.get(quits.size() - 1));
                    assertTrue(ms < 2900, ms + " ms: " + tool.stderr());
                }
                TestSupport.await("both to be KILLed", () -> !running(ia.pid()) && !running(ib.pid()));
            }
        }
    }

    /** There and not a zombie (a KILLed process waits for its parent in the namespace to reap it). */
    static boolean running(long pid) {
        String stat = TestSupport.read(Path.of("/proc/" + pid + "/stat"));
        return !stat.isEmpty() && stat.charAt(stat.lastIndexOf(')') + 2) != 'Z';
    }

    static String comm(long pid) {
        return TestSupport.read(Path.of("/proc/" + pid + "/comm")).strip();
    }

    @Nested
    class NamedSidecars {
        @Test
        void aNamedSidecarsEntriesAreKeptWhenTheUserSetsTheList() throws Exception {
            var config = TestSupport.config(TestSupport.env("ENVOY_PREFLIGHT_SIDECARS", "linkerd",
                    "GENERIC_READY_ENDPOINTS", "file:///vault/ready",
                    "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:8200/agent/v1/quit"));
            assertEquals(List.of("http://127.0.0.1:4191/ready", "file:///vault/ready"),
                    config.urls(EnvoyPreflight.Setting.READY_ENDPOINTS).stream().map(Object::toString).toList());
            assertEquals(List.of("http://127.0.0.1:4191/shutdown", "http://127.0.0.1:8200/agent/v1/quit"),
                    config.urls(EnvoyPreflight.Setting.GENERIC_QUIT_ENDPOINTS).stream().map(Object::toString).toList());
        }

        @Test
        void everyRequestToTheDaprPortCarriesTheToken() throws Exception {
            var config = TestSupport.config(TestSupport.env("ENVOY_PREFLIGHT_SIDECARS", "dapr", "DAPR_API_TOKEN", "t0k",
                    "GENERIC_QUIT_ENDPOINTS", "http://127.0.0.1:3500/v1.0/shutdown?x=1"));
            assertEquals(Map.of("dapr-api-token", "t0k"),
                    config.headers(java.net.URI.create("http://127.0.0.1:3500/v1.0/shutdown?x=1")));
        }
    }

    @Nested
    class Redaction {
        @Test
        void userinfoIsHiddenWhereverItStands() {
            for (String s : List.of("jdbc:postgresql://dbuser:s3cr3tpw@db:5432/app", "DSN:mysql://u:s3cr3tpw@h",
                    "<http://u:s3cr3tpw@h>", "x(http://u:s3cr3tpw@h)")) {
                var r = TestSupport.inProcess(json(), "--start-without-envoy", "--", "sh", "-c", "exit 0", s);
                assertFalse(r.err().contains("s3cr3tpw"), r.err());
                var t = TestSupport.inProcess(TestSupport.WithFakeEnvoy.verbose(), "--start-without-envoy", "--",
                        "sh", "-c", "exit 0", s);
                assertFalse(t.err().contains("s3cr3tpw"), t.err());
            }
        }
    }

    @Nested
    class ExitFiles {
        @Test
        void exitTwoStillWritesTheExitFileAndTheTombstone() throws Exception {
            Path exit = dir.resolve("exit-code");
            var r = TestSupport.inProcess(TestSupport.env("ENVOY_PREFLIGHT_EXIT_FILE", exit.toString(),
                    "KUBEXIT_GRAVEYARD", dir.resolve("graveyard").toString(), "KUBEXIT_NAME", "app",
                    "WAIT_FOR_ENVOY_TIMEOUT", "soon"), "true");
            assertEquals(2, r.code(), r.err());
            assertEquals("2\n", Files.readString(exit));
            assertTrue(Files.readString(dir.resolve("graveyard/app")).contains("ExitCode: 2"));
        }

        @Test
        void aBadPathIsExitTwoWithAOneLineReason() throws Exception {
            Files.createSymbolicLink(dir.resolve("link"), Files.createDirectories(dir.resolve("real")));
            for (Map<String, String> env : List.of(
                    TestSupport.env("ENVOY_PREFLIGHT_EXIT_FILE", "/"),
                    TestSupport.env("ENVOY_PREFLIGHT_EXIT_FILE", dir.toString()),
                    TestSupport.env("KUBEXIT_GRAVEYARD", "/", "KUBEXIT_NAME", "app"),
                    TestSupport.env("ENVOY_PREFLIGHT_EXIT_FILE", dir.resolve("g/app").toString(),
                            "KUBEXIT_GRAVEYARD", dir.resolve("g").toString(), "KUBEXIT_NAME", "app"),
                    TestSupport.env("ENVOY_PREFLIGHT_EXIT_FILE", dir.resolve("y".repeat(256)).toString()),
                    TestSupport.env("ENVOY_PREFLIGHT_EXIT_FILE", dir.resolve("real/app").toString(), // through a link
                            "KUBEXIT_GRAVEYARD", dir.resolve("link").toString(), "KUBEXIT_NAME", "app"))) {
                var r = TestSupport.inProcess(env, "true");
                assertEquals(2, r.code(), env + ": " + r.err());
                assertEquals(1, r.err().lines().count(), r.err());
                assertFalse(r.err().contains("Exception"), r.err());
            }
        }
    }

    @Test
    void aLongExitFileNameFitsItsTemporaryName() throws Exception {
        Path exit = dir.resolve("y".repeat(250)); // the temporary name beside it was longer than 255 bytes
        var r = TestSupport.inProcess(TestSupport.env("ENVOY_PREFLIGHT_EXIT_FILE", exit.toString()),
                "sh", "-c", "exit 6");
        assertEquals(6, r.code(), r.err());
        assertEquals("6\n", Files.readString(exit));
        assertEquals("", r.err());
    }

    @Nested
    class Polls {
        @Test
        void checkCountsAnAcceptedConnectionAsReadyEvenIfThePeerResetsIt() throws Exception {
            try (var server = new java.net.ServerSocket(0, 8, java.net.InetAddress.getLoopbackAddress())) {
                Thread t = new Thread(() -> {
                    try {
                        while (true) {
                            var s = server.accept();
                            s.setSoLinger(true, 0); // an RST instead of a FIN
                            s.close();
                        }
                    } catch (java.io.IOException e) {
                        // closed by the test
                    }
                });
                t.setDaemon(true);
                t.start();
                var r = TestSupport.inProcess(TestSupport.env("GENERIC_READY_ENDPOINTS", "tcp://127.0.0.1:"
                        + server.getLocalPort()), "--check");
                assertEquals(0, r.code(), r.out() + r.err());
            }
        }

        @Test
        void aNonAsciiFilePathIsReadAsWritten() throws Exception {
            Path file = dir.resolve("caf\u00e9");
            Files.writeString(file, "");
            var r = TestSupport.inProcess(TestSupport.env("GENERIC_READY_ENDPOINTS", "file://" + file), "--check");
            assertEquals(0, r.code(), r.out() + r.err());
        }

        @Test
        void theJsonTimeAlwaysHasTheSameWidth() {
            // Instant.toString() drops trailing zeros: these three printed 20, 24 and 30 characters
            List<String> times = Stream.of("2026-12-07T10:00:00Z", "2026-12-07T10:00:00.500Z",
                            "2026-12-07T10:00:00.123456789Z")
                    .map(t -> EnvoyPreflight.Log.time(java.time.Instant.parse(t))).toList();
            assertEquals(List.of("2026-12-07T10:00:00.000000000Z", "2026-12-07T10:00:00.500000000Z",
                    "2026-12-07T10:00:00.123456789Z"), times);
            var r = TestSupport.inProcess(json(), "--start-without-envoy", "true");
            for (JsonObject o : r.events()) assertEquals(30, TestSupport.text(o, "time").length(), o.toString());
        }

        @Test
        void aServerInfoThatIsNotJsonIsOurOwnOneLineReason() throws Exception {
            fake.override("/server_info", fake.misbehave(FakeEnvoy.Fault.NOT_JSON));
            var r = TestSupport.inProcess(TestSupport.env("ENVOY_ADMIN_API", fake.url().toString()), "--check");
            assertEquals(1, r.code());
            assertEquals("HTTP 200 but not a JSON object\n", r.out());
        }

        @Test
        void noPollStartsWithLessThanTenMillisecondsLeft() throws Exception {
            int port = TestSupport.closedPort();
            try (var tool = TestSupport.Tool.start(json("GENERIC_READY_ENDPOINTS", "http://127.0.0.1:" + port + "/r",
                    "QUIT_WITHOUT_ENVOY_TIMEOUT", "250ms"), "true")) {
                assertEquals(69, tool.exitCode(), tool.stderr());
                assertFalse(tool.stderr().contains("within 1ns"), tool.stderr());
                for (JsonObject o : tool.events("poll")) {
                    String seen = TestSupport.text(o, "seen");
                    assertFalse(seen.matches(".*within \\d(ms|us|ns).*"), seen);
                }
            }
        }
    }

    @Nested
    class ProcessGroup {
        @Test
        void timeoutsTermReachesTheAppOnce() throws Exception {
            // timeout(1) sends TERM to its child, then to its whole process group: the app got both, and our relay
            var app = new TestSupport.SignalApp(dir);
            // 6 s: the app must have started by then (a TERM before its start means "don't start it"), even loaded
            List<String> command = new java.util.ArrayList<>(List.of("timeout", "-s", "TERM", "6"));
            command.addAll(TestSupport.javaCommand());
            command.add("--start-without-envoy");
            command.addAll(List.of(app.command(0)));
            Process p = TestSupport.cleanEnvironment(new ProcessBuilder(command))
                    .redirectOutput(dir.resolve("out").toFile()).redirectError(dir.resolve("err").toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            try {
                app.awaitSignal("TERM");
                Thread.sleep(500); // a second TERM comes within milliseconds of the first
                app.stop();
                assertTrue(p.waitFor(20, TimeUnit.SECONDS));
                assertEquals(List.of("TERM"), app.received(), TestSupport.read(dir.resolve("err")));
            } finally {
                app.stop();
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
            }
        }

        @Test
        void aSignalToTheWholeGroupReachesTheAppOnce() throws Exception {
            var app = new TestSupport.SignalApp(dir);
            String tool = String.join(" ", TestSupport.javaCommand().stream().map(TestSupport::quote).toList());
            String cmd = String.join(" ", java.util.Arrays.stream(app.command(0)).map(TestSupport::quote).toList());
            ProcessBuilder pb = TestSupport.cleanEnvironment(new ProcessBuilder("setsid", "bash", "-c",
                    "exec " + tool + " --start-without-envoy -- " + cmd))
                    .redirectOutput(dir.resolve("out").toFile()).redirectError(dir.resolve("err").toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
            Process p = pb.start();
            try {
                app.awaitReady();
                // the whole process group, as timeout(1) and `kill -TERM -PGID` send it
                assertEquals(0, new ProcessBuilder("kill", "-TERM", "--", "-" + p.pid()).start().waitFor());
                app.awaitSignal("TERM");
                Thread.sleep(500); // a second TERM (relayed after the sender's own) comes within milliseconds
                app.stop();
                assertTrue(p.waitFor(20, TimeUnit.SECONDS));
                assertEquals(List.of("TERM"), app.received(), TestSupport.read(dir.resolve("err")));
            } finally {
                app.stop();
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
            }
        }
    }

    // --- 4. The init tools' own scenarios (tini's and dumb-init's suites) --------------------------------

    @Nested
    class InitScenarios {
        @Test
        void everyExitCodeFrom0To255PassesThrough() {
            for (int code = 0; code <= 255; code++) {
                var r = TestSupport.inProcess(TestSupport.env(), "--start-without-envoy", "--",
                        "sh", "-c", "exit " + code);
                assertEquals(code, r.code(), r.err());
            }
        }

        @Test
        void deathBySignalIs128PlusNForEachSignalTheInitToolsTest() {
            Map<String, Integer> numbers = Map.of("HUP", 1, "INT", 2, "QUIT", 3, "USR1", 10, "USR2", 12, "TERM", 15,
                    "KILL", 9);
            numbers.forEach((signal, n) -> {
                var r = TestSupport.inProcess(TestSupport.env(), "--start-without-envoy", "--", "sh", "-c",
                        "kill -s " + signal + " $$");
                assertEquals(128 + n, r.code(), signal + ": " + r.err());
            });
        }

        @Test
        void aSignalIgnoredWhenTheToolStartedStaysIgnoredForTheApp() throws Exception {
            String tool = String.join(" ", TestSupport.javaCommand().stream().map(TestSupport::quote).toList());
            // as nohup leaves HUP: ignored before the tool's JVM starts
            Process p = TestSupport.cleanEnvironment(new ProcessBuilder("bash", "-c", "trap '' HUP; exec " + tool
                    + " --start-without-envoy -- grep -E '^Sig(Ign|Blk)' /proc/self/status")).start();
            try {
                String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                assertTrue(p.waitFor(30, TimeUnit.SECONDS));
                assertEquals(0, p.exitValue(), out);
                long ignored = Long.parseLong(out.lines().filter(l -> l.startsWith("SigIgn")).findFirst().orElseThrow()
                        .split("\\s+")[1], 16);
                assertEquals(1, ignored & 1, "HUP (bit 0) is no longer ignored: " + out);
                assertTrue(out.contains("SigBlk:\t0000000000000000"), out);
            } finally {
                p.destroyForcibly();
            }
        }

        @Test
        void aBadExecIs126Or127WithTheAppsName() throws Exception {
            Path notExecutable = Files.writeString(dir.resolve("my-job"), "#!/bin/sh\n");
            for (Object[] c : new Object[][]{{"no-such-job-here", 127}, {notExecutable.toString(), 126}}) {
                var r = TestSupport.inProcess(TestSupport.env(), "--start-without-envoy", "--", (String) c[0]);
                assertEquals(c[1], r.code(), r.err());
                assertTrue(r.err().contains((String) c[0]), r.err());
            }
        }

        @Test
        void ctrlZAndFgStopAndResumeTheAppInATerminal() throws Exception {
            Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/tmux")), "tmux is not installed");
            String session = "preflight-" + ProcessHandle.current().pid() + "-" + System.nanoTime();
            Path ticks = dir.resolve("ticks");
            String tool = String.join(" ", TestSupport.javaCommand().stream().map(TestSupport::quote).toList());
            String app = "for i in $(seq 1 40); do echo $i >> " + ticks + "; sleep 0.1; done; exit 9";
            try {
                tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "20", "bash --norc --noprofile");
                // in a bash -c of its own: the prompt's bash would run the echo as soon as the job stopped
                String job = tool + " --start-without-envoy -- sh -c " + TestSupport.quote(app) + "; echo code=$? > "
                        + dir.resolve("code");
                tmux("send-keys", "-t", session, "-l", "bash -c " + TestSupport.quote(job) + "\n");
                TestSupport.await("the app to tick", () -> TestSupport.read(ticks).lines().count() >= 2);
                tmux("send-keys", "-t", session, "C-z");
                TestSupport.await("bash to say the job stopped", () -> capture(session).contains("Stopped"));
                long stoppedAt = TestSupport.read(ticks).lines().count();
                Thread.sleep(500); // five ticks' time: a running app would have written more
                assertEquals(stoppedAt, TestSupport.read(ticks).lines().count(), "the app went on ticking");
                tmux("send-keys", "-t", session, "-l", "fg\n");
                TestSupport.await("the tool to exit", () -> Files.exists(dir.resolve("code")));
                assertEquals("code=9", TestSupport.read(dir.resolve("code")).strip());
                assertEquals(40, TestSupport.read(ticks).lines().count());
            } finally {
                new ProcessBuilder("tmux", "-S", socket().toString(), "kill-server").start().waitFor();
            }
        }

        private void tmux(String... args) throws Exception {
            List<String> command = new java.util.ArrayList<>(List.of("tmux", "-S", socket().toString()));
            command.addAll(List.of(args));
            Process tmux = TestSupport.cleanEnvironment(new ProcessBuilder(command)).start();
            assertEquals(0, tmux.waitFor(), command.toString());
        }

        /** A server of the test's own, its socket in the test's folder: none is left in /tmp/tmux-UID. */
        private Path socket() {
            return dir.resolve("tmux");
        }

        private String capture(String session) {
            try {
                Process p = new ProcessBuilder("tmux", "-S", socket().toString(), "capture-pane", "-p", "-t", session)
                        .start();
                return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            } catch (java.io.IOException e) {
                throw new AssertionError(e);
            }
        }
    }
}
