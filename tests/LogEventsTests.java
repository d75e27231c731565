import com.google.gson.JsonObject;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import java.net.ServerSocket;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The JSON log's events, run for real: every Log.Event is produced by one of a few runs of the
 * tool, each line carries the common fields and its event's typed data, and docs/logging.md shows
 * one sample line per event that matches a line a run printed (times, pids, ports, durations and
 * poll counts normalised). UPDATE_DOCS=true rewrites the samples from the runs.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class LogEventsTests {
    static final Path DOC = TestSupport.repositoryRoot().resolve("docs/logging.md");

    /** Every line the runs printed, by event, in order. */
    final Map<String, List<JsonObject>> seen = new LinkedHashMap<>();
    /** The same lines as printed, by event: the samples are compared with these. */
    final Map<String, List<String>> printed = new LinkedHashMap<>();
    FakeEnvoy fake;

    @BeforeAll
    void runTheScenarios(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        fake = FakeEnvoy.start(0, Duration.ZERO).withPilotAgent(0);
        String admin = fake.url().toString();
        // A cycle: config, wait, poll, ready, app-start, signal (relayed), app-exit (by USR1), exit-file, quit, exit.
        try (var tool = TestSupport.Tool.start(json("ENVOY_ADMIN_API", admin,
                "ENVOY_PREFLIGHT_EXIT_FILE", dir.resolve("exit-code").toString()), "sh", "-c", "sleep 20")) {
            TestSupport.await("the app to start", () -> tool.stderr().contains("\"app-start\""));
            tool.signal("USR1");
            tool.exitCode();
            record(tool);
        }
        // Not ready: gave-up (exit 69); a shadowed alias (setting); a tombstone that cannot be written.
        try (var tool = TestSupport.Tool.start(json("GENERIC_READY_ENDPOINTS", "http://127.0.0.1:" + TestSupport.closedPort(),
                "QUIT_WITHOUT_ENVOY_TIMEOUT", "300ms", "NEVER_KILL_ISTIO", "false", "NEVER_KILL_ENVOY", "true",
                "KUBEXIT_NAME", "app", "KUBEXIT_GRAVEYARD", "/proc/no-graveyard"), "true")) {
            tool.exitCode();
            record(tool);
        }
        // The wait timeout: the app starts anyway; then it is not found (app-start with code 127).
        try (var tool = TestSupport.Tool.start(json("ENVOY_ADMIN_API", "http://127.0.0.1:" + TestSupport.closedPort(),
                "WAIT_FOR_ENVOY_TIMEOUT", "300ms", "PATH", "/nonexistent"), "no-such-app")) {
            tool.exitCode();
            record(tool);
        }
        // A stop signal while waiting.
        try (var tool = TestSupport.Tool.start(json("ENVOY_ADMIN_API", "http://127.0.0.1:" + TestSupport.closedPort()), "true")) {
            TestSupport.await("the first poll", () -> tool.stderr().contains("\"poll\""));
            tool.signal("TERM");
            tool.exitCode();
            record(tool);
        }
        // No sidecar (absent), then one answers at exit (late): the app opens the port itself.
        int port = TestSupport.closedPort();
        try (var tool = TestSupport.Tool.start(json("GENERIC_READY_ENDPOINTS", "tcp://127.0.0.1:" + port,
                "SIDECAR_ABSENT_AFTER", "300ms", "PATH", "/nonexistent:" + System.getenv("PATH")), "sleep", "3");
             var late = new LateListener(port, tool)) {
            tool.exitCode();
            record(tool);
        }
        // Bad input (exit 2), and a termination log that cannot be written.
        try (var tool = TestSupport.Tool.start(json("QUIT_REQUEST_TIMEOUT", "soon",
                "ENVOY_PREFLIGHT_TERMINATION_LOG", "/nonexistent/termination-log"), "true")) {
            tool.exitCode();
            record(tool);
        }
        // No setpriv on PATH (setup); a bug of ours in a quit step (internal-error), in-process.
        try (var tool = TestSupport.Tool.start(json("START_WITHOUT_ENVOY", "true", "PATH", "/nonexistent"), "/bin/true")) {
            tool.exitCode();
            record(tool);
        }
        // A sidecar that answers its quit but stays (still-running); a misspelled variable (unknown-setting).
        try (var staying = FakeEnvoy.start(0, Duration.ZERO).stayAfterQuit();
             var tool = TestSupport.Tool.start(json("ENVOY_ADMIN_API", staying.url().toString(), "ENVOY_ADMN_API", "x",
                     "ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", "200ms"), "true")) {
            tool.exitCode();
            record(tool);
        }
        var captured = new TestSupport.Captured(true, EnvoyPreflight.Log.Format.JSON);
        new EnvoyPreflight.Quit(Duration.ofSeconds(1), captured.log, 0, () -> false).run(new EnvoyPreflight.Plan(List.of(new EnvoyPreflight.Plan.Step() {
            public String describe() { return "POST http://127.0.0.1:15020/quitquitquit"; }
            public boolean run(EnvoyPreflight.Quit quit) { throw new IllegalStateException("a bug"); }
        }), null), Duration.ZERO);
        record(captured.text());
    }

    @AfterAll
    void stopTheFake() {
        fake.close();
    }

    /** Opens the port once the tool judged the sidecar absent, so that it answers at exit. */
    record LateListener(ServerSocket socket) implements AutoCloseable {
        LateListener(int port, TestSupport.Tool tool) throws Exception {
            this(awaitAbsentThenListen(port, tool));
        }

        static ServerSocket awaitAbsentThenListen(int port, TestSupport.Tool tool) throws Exception {
            TestSupport.await("the absent judgement", () -> tool.stderr().contains("\"absent\""));
            return new ServerSocket(port, 50, java.net.InetAddress.getLoopbackAddress());
        }

        public void close() throws java.io.IOException {
            socket.close();
        }
    }

    /** A verbose JSON run, with no termination message unless the scenario asks for one. */
    static Map<String, String> json(String... pairs) {
        Map<String, String> env = TestSupport.json(pairs);
        env.putIfAbsent("ENVOY_PREFLIGHT_TERMINATION_LOG", "off");
        return env;
    }

    void record(TestSupport.Tool tool) {
        record(tool.stderr());
    }

    void record(String stderr) {
        List<String> lines = stderr.lines().toList();
        List<JsonObject> events = TestSupport.events(stderr); // one a line, in the same order
        for (int i = 0; i < lines.size(); i++) {
            String event = events.get(i).get("event").getAsString();
            seen.computeIfAbsent(event, e -> new ArrayList<>()).add(events.get(i));
            printed.computeIfAbsent(event, e -> new ArrayList<>()).add(lines.get(i));
        }
    }

    @Test
    void everyEventIsPrintedByARealRun() {
        for (EnvoyPreflight.Log.Event e : EnvoyPreflight.Log.Event.values()) {
            assertTrue(seen.containsKey(e.id()), e.id() + " was not printed by any run; printed: " + seen.keySet());
        }
        for (String event : seen.keySet()) {
            assertTrue(List.of(EnvoyPreflight.Log.Event.values()).stream().anyMatch(e -> e.id().equals(event)), event);
        }
    }

    @Test
    void everyLineKeepsTheCommonFieldsAndTypesItsData() {
        for (List<JsonObject> lines : seen.values()) {
            for (JsonObject o : lines) {
                for (String field : List.of("time", "level", "logger", "msg", "event")) {
                    assertTrue(o.has(field) && o.get(field).getAsJsonPrimitive().isString(), field + " in " + o);
                }
                for (String number : List.of("pid", "ms", "polls", "code", "status")) {
                    if (o.has(number)) assertTrue(o.get(number).getAsJsonPrimitive().isNumber(), number + " in " + o);
                }
                for (String bool : List.of("relayed", "ok", "sent_already")) {
                    if (o.has(bool)) assertTrue(o.get(bool).getAsJsonPrimitive().isBoolean(), bool + " in " + o);
                }
            }
        }
        JsonObject start = seen.get("app-start").get(0);
        assertTrue(start.get("command").isJsonArray(), start.toString());
        JsonObject died = seen.get("app-exit").stream().filter(o -> o.has("signal")).findFirst().orElseThrow();
        assertEquals("USR1", died.get("signal").getAsString());
        assertEquals(128 + 10, died.get("code").getAsInt());
        assertTrue(seen.get("signal").stream().anyMatch(o -> o.get("relayed").getAsBoolean()), seen.get("signal").toString());
        assertTrue(seen.get("quit").stream().anyMatch(o -> o.has("url") && o.get("status").getAsInt() == 200), "a POST answered 200");
        assertTrue(seen.get("quit").stream().anyMatch(o -> o.has("process")), "the pilot-agent step");
        assertEquals(69, seen.get("exit").stream().mapToInt(o -> o.get("code").getAsInt()).filter(c -> c == 69).findFirst().orElse(-1));
        assertEquals("TERM", seen.get("stopped").get(0).get("signal").getAsString());
        assertTrue(seen.get("config").get(0).get("settings").getAsJsonObject().get("verbose").getAsBoolean());
    }

    /** Fields whose values differ from run to run, and what they become; applied to both sides. */
    static String normalise(String line) {
        String s = line.replaceAll("\"time\":\"[^\"]*\"", "\"time\":\"TIME\"");
        s = s.replaceAll("(\"(?:pid|ms|polls)\":)\\d+", "$1N");
        s = s.replaceAll("(pid |poll |after |in )\\d+", "$1N");
        s = s.replaceAll("(127\\.0\\.0\\.1|localhost):\\d+", "$1:PORT");
        // a test's folder, however deep in the suite's own temporary folder
        s = s.replaceAll("/tmp/[A-Za-z0-9._/-]*/", "/tmp/DIR/");
        s = s.replaceAll("/tmp/[A-Za-z0-9._-]+", "/tmp/DIR");
        return s;
    }

    /** The sample of each event in the doc: a ```json block under a heading "### `event`". */
    static final Pattern SAMPLE = Pattern.compile("### `([a-z-]+)`\\n\\n([^\\n]*)\\n\\n```json\\n([^\\n]*)\\n```");

    @Test
    void theDocShowsOneSampleLineForEachEventThatARunPrinted() throws Exception {
        String doc = Files.readString(DOC);
        if ("true".equals(System.getenv("UPDATE_DOCS"))) doc = rewriteSamples(doc);
        Map<String, String> samples = new LinkedHashMap<>();
        Matcher m = SAMPLE.matcher(doc);
        while (m.find()) {
            samples.put(m.group(1), m.group(3));
            EnvoyPreflight.Log.Event event = event(m.group(1));
            assertEquals(event.about.substring(0, 1).toUpperCase() + event.about.substring(1) + ".", m.group(2),
                    "the doc's words for " + m.group(1) + " are the enum's");
        }
        for (EnvoyPreflight.Log.Event e : EnvoyPreflight.Log.Event.values()) {
            String sample = samples.get(e.id());
            if (sample == null) fail("docs/logging.md has no sample for " + e.id());
            List<String> lines = printed.get(e.id()).stream().map(LogEventsTests::normalise).toList();
            assertTrue(lines.contains(normalise(sample)), e.id() + ": the sample\n" + normalise(sample)
                    + "\nmatches none of the lines printed:\n" + String.join("\n", lines));
        }
    }

    static EnvoyPreflight.Log.Event event(String id) {
        for (EnvoyPreflight.Log.Event e : EnvoyPreflight.Log.Event.values()) if (e.id().equals(id)) return e;
        throw new AssertionError("docs/logging.md names an event the tool does not have: " + id);
    }

    /** The samples section rebuilt from the runs: the first line of each event, in the enum's order. */
    String rewriteSamples(String doc) throws Exception {
        StringBuilder b = new StringBuilder();
        for (EnvoyPreflight.Log.Event e : EnvoyPreflight.Log.Event.values()) {
            if (!seen.containsKey(e.id())) continue;
            String about = e.about.substring(0, 1).toUpperCase() + e.about.substring(1) + ".";
            b.append("### `").append(e.id()).append("`\n\n").append(about).append("\n\n```json\n")
                    .append(printed.get(e.id()).get(0)).append("\n```\n\n");
        }
        String start = "<!-- events:start -->\n";
        String end = "<!-- events:end -->";
        int from = doc.indexOf(start);
        int to = doc.indexOf(end);
        assertTrue(from >= 0 && to > from, "docs/logging.md: the markers " + start.strip() + " and " + end);
        String updated = doc.substring(0, from + start.length()) + "\n" + b + doc.substring(to);
        Files.writeString(DOC, updated);
        return updated;
    }
}
