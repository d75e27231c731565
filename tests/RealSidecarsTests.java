import com.google.gson.JsonObject;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.parallel.ResourceLock;
import org.junit.jupiter.api.parallel.ResourceAccessMode;

import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The real tool in front of an app, with real multi-process sidecars nobody here wrote: nginx
 * (master and two workers) and HAProxy in master-worker mode, from Debian. Both name every process
 * of theirs alike, and the tool signals processes by name, so each run happens in a fresh PID
 * namespace (TestSupport.PidNamespace; the test is skipped where none can be made): the tool sees
 * only the sidecar the test started, and nothing outside is touched.
 */
class RealSidecarsTests {
    @TempDir
    Path dir;

    /** What a test needs to know of one real sidecar. */
    record Sidecar(String name, String binary, int members) {}

    // --- The cases --------------------------------------------------------------------------------

    @ParameterizedTest(name = "{0} ready by {1}, quit with {2}")
    @CsvSource({"nginx, http, QUIT", "nginx, tcp, TERM", "haproxy, http, USR1", "haproxy, tcp, TERM"})
    void aCleanQuitLeavesNoProcessAndNoWarning(String name, String readiness, String signal) throws Exception {
        Sidecar sidecar = sidecar(name);
        int port = TestSupport.closedPort();
        writeConfig(sidecar, port, 0);
        String ready = readiness.equals("http") ? "http://127.0.0.1:" + port + "/ready" : "tcp://127.0.0.1:" + port;
        // TERM as the default (no :SIGNAL), the graceful one by name
        String quit = signal.equals("TERM") ? name : name + ":" + signal;
        try (Namespace run = Namespace.start(dir, sidecar, false, "--ready-endpoint", ready, "--quit-process", quit,
                "--quit-timeout", "5s")) {
            assertEquals(3, run.exitCode(), "the app's code: " + run.report());
            List<JsonObject> events = run.events();
            assertFamily(sidecar, run);
            assertEquals(List.of(), run.left(), "none of the family may outlive the tool: " + run.report());
            assertEquals("0", run.sidecarCode(), name + " itself exits 0 after " + signal + ": " + run.report());
            assertEquals(List.of(), sidecarAlerts(run.sidecarLog()), name + "'s own log: " + run.report());
            assertEquals(List.of(), problems(events), "a clean quit logs no warning: " + run.report());
            assertGone(events, "127.0.0.1:" + port, run);
            assertGone(events, "process " + name, run);
        }
    }

    /**
     * nginx's QUIT waits for the requests in flight: a request proxied to a backend that never
     * answers keeps its worker (and so the master) running past the quit timeout, and both are KILLed.
     */
    @Test
    @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
    void nginxHeldOpenPastTheQuitTimeoutIsKilledWithOneWarningPerProcess() throws Exception {
        Sidecar nginx = sidecar("nginx");
        int port = TestSupport.closedPort();
        try (ServerSocket backend = new ServerSocket(0, 10, InetAddress.getLoopbackAddress());
             Held held = new Held(backend)) {
            writeConfig(nginx, port, backend.getLocalPort());
            try (Namespace run = Namespace.start(dir, nginx, true, "--ready-endpoint",
                    "http://127.0.0.1:" + port + "/ready", "--quit-process", "nginx:QUIT", "--quit-timeout", "1s")) {
                TestSupport.await("the app to start", () -> Files.exists(dir.resolve("app-started")));
                held.request(port);
                Files.writeString(dir.resolve("go"), "");
                assertEquals(3, run.exitCode(), "the app's code: " + run.report());
                List<JsonObject> events = run.events();
                List<String[]> family = assertFamily(nginx, run);
                assertEquals(List.of(), run.left(), "the KILL leaves nothing: " + run.report());
                List<JsonObject> problems = problems(events);
                List<JsonObject> kills = problems.stream().filter(o -> TestSupport.is(o, "quit")
                        && "KILL".equals(TestSupport.text(o, "signal"))
                        && "still running".equals(TestSupport.text(o, "error"))).toList();
                assertEquals(kills, problems, "no warning but the KILLs: " + run.report());
                // one warning for the sidecar, naming the master and the worker busy with the request (the idle
                // worker left on QUIT)
                assertEquals(1, kills.size(), "one warning for the KILL: " + run.report());
                Set<String> killed = new TreeSet<>(TestSupport.array(kills.get(0), "pids"));
                assertEquals(2, killed.size(), "each KILLed once: " + run.report());
                assertTrue(killed.contains(family.get(0)[0]), "the master is among the KILLed: " + run.report());
                assertTrue(family.stream().map(m -> m[0]).toList().containsAll(killed), run.report());
                for (JsonObject kill : kills) {
                    long ms = kill.get("ms").getAsLong();
                    // KILL once the 1s quit timeout is over; a second more is plenty for a 20 ms poll on 2 busy cores
                    assertTrue(ms >= 1000 && ms < 2000, "KILL after the 1s quit timeout, at " + ms + " ms");
                }
                assertEquals("137", run.sidecarCode(), "the master died of the KILL: " + run.report());
                assertGone(events, "127.0.0.1:" + port, run);
                assertGone(events, "process nginx", run);
            }
        }
    }

    // --- Assertions ---------------------------------------------------------------------------------

    /** The family as the app saw it: one head, the rest its children; returned head first. */
    private static List<String[]> assertFamily(Sidecar sidecar, Namespace run) {
        List<String[]> members = run.family();
        assertEquals(sidecar.members(), members.size(),
                sidecar.name() + "'s family while the app ran: " + run.report());
        Set<String> pids = new TreeSet<>(members.stream().map(m -> m[0]).toList());
        List<String[]> heads = members.stream().filter(m -> !pids.contains(m[1])).toList();
        assertEquals(1, heads.size(), "one head: " + run.report());
        String head = heads.get(0)[0];
        List<String[]> children = members.stream().filter(m -> !m[0].equals(head)).toList();
        assertTrue(children.stream().allMatch(m -> m[1].equals(head)), "children of the head: " + run.report());
        List<String[]> family = new ArrayList<>(heads);
        family.addAll(children);
        return family;
    }

    private static void assertGone(List<JsonObject> events, String target, Namespace run) {
        // exactly one: a process target that left was once reported again each round while an address remained
        long gone = events.stream().filter(o -> TestSupport.is(o, "gone")
                && target.equals(TestSupport.text(o, "target"))
                && "info".equals(TestSupport.text(o, "level"))).count();
        assertEquals(1, gone, "one 'gone' event for " + target + ": " + run.report());
    }

    /** Every warning or error of the tool's log. */
    private static List<JsonObject> problems(List<JsonObject> events) {
        return events.stream().filter(o -> !"info".equals(TestSupport.text(o, "level"))).toList();
    }

    /**
     * The sidecar's own alarms. HAProxy reports the worker it ended on TERM as "[ALERT] ... exited
     * with code 143 (Terminated)" whoever sent the TERM: its way, not a failure.
     */
    private static List<String> sidecarAlerts(String log) {
        return log.lines().filter(l -> {
            String lower = l.toLowerCase(Locale.ROOT);
            return (lower.contains("[alert]") || lower.contains("[emerg]") || lower.contains("exit-on-failure"))
                    && !l.contains("exited with code 143 (Terminated)");
        }).toList();
    }

    // --- The sidecars -------------------------------------------------------------------------------

    private static Sidecar sidecar(String name) {
        String binary = binary(name);
        // nginx: a master and worker_processes 2; HAProxy -W: a master and one worker
        return new Sidecar(name, binary, name.equals("nginx") ? 3 : 2);
    }

    /**
     * The sidecar's program where Debian puts it (/usr/sbin is not on every user's PATH). Missing:
     * skipped, saying how to get it; under CI a failure, since .ci/run installs both.
     */
    private static String binary(String name) {
        List<String> dirs = new ArrayList<>(List.of(System.getenv().getOrDefault("PATH", "").split(":")));
        dirs.addAll(List.of("/usr/sbin", "/usr/local/sbin", "/sbin"));
        for (String d : dirs) {
            Path p = Path.of(d.isEmpty() ? "." : d, name);
            if (Files.isExecutable(p)) return p.toAbsolutePath().toString();
        }
        String why = "no " + name + " on PATH or in /usr/sbin (apt-get install "
                + (name.equals("nginx") ? "nginx-light" : name) + ")";
        if ("true".equals(System.getenv("CI"))) fail(why + ": CI must run the real sidecars (.ci/run installs them)");
        Assumptions.assumeTrue(false, why);
        return null;
    }

    /**
     * The sidecar's configuration and the command that runs it in the foreground (as a container
     * would), on 127.0.0.1:port with GET /ready answering 200; backend: where nginx's /slow goes.
     */
    private void writeConfig(Sidecar sidecar, int port, int backend) throws IOException {
        String command;
        if (sidecar.name().equals("nginx")) {
            Path prefix = dir.resolve("nginx");
            Files.createDirectories(prefix);
            // every path inside the folder: nothing of the machine's own nginx is read or written
            StringBuilder conf = new StringBuilder("events { worker_connections 64; }\nhttp {\n  access_log off;\n");
            for (String temp : List.of("client_body", "proxy", "fastcgi", "uwsgi", "scgi")) {
                conf.append("  ").append(temp).append("_temp_path ").append(prefix.resolve(temp)).append(";\n");
            }
            conf.append("  server {\n    listen 127.0.0.1:").append(port).append(";\n")
                    .append("    location /ready { return 200; }\n");
            if (backend > 0) {
                conf.append("    location /slow { proxy_pass http://127.0.0.1:").append(backend).append("; }\n");
            }
            conf.append("  }\n}\n");
            Files.writeString(prefix.resolve("nginx.conf"), conf);
            String globals = "daemon off; master_process on; worker_processes 2; pid " + prefix.resolve("nginx.pid")
                    + "; error_log stderr;";
            command = String.join(" ", TestSupport.quote(sidecar.binary()), "-e", "stderr", "-p",
                    TestSupport.quote(prefix + "/"), "-c", TestSupport.quote(prefix.resolve("nginx.conf").toString()),
                    "-g", TestSupport.quote(globals));
        } else {
            Path cfg = dir.resolve("haproxy.cfg");
            Files.writeString(cfg, String.join("\n", "defaults", "  mode http", "  timeout connect 1s",
                    "  timeout client 30s", "  timeout server 30s", "frontend ready",
                    "  bind 127.0.0.1:" + port, "  monitor-uri /ready", ""));
            // -W: master and worker, as in a container; -db: in the foreground
            command = String.join(" ", TestSupport.quote(sidecar.binary()), "-W", "-db", "-f",
                    TestSupport.quote(cfg.toString()));
        }
        Files.writeString(dir.resolve("sidecar.sh"), "exec " + command + "\n");
    }

    // --- One run in its own PID namespace ------------------------------------------------------------

    /** "PID PPID" of each running (not zombie) process named $1, as this namespace's /proc shows it. */
    private static final String NAMED = String.join("\n",
            "named() {",
            "  for p in /proc/[0-9]*; do",
            "    [ \"$(cat \"$p/comm\" 2>/dev/null)\" = \"$1\" ] || continue",
            "    rest=$(cat \"$p/stat\" 2>/dev/null) || continue",
            "    rest=${rest##*) }",
            "    state=${rest%% *}; rest=${rest#* }",
            "    [ \"$state\" = Z ] || echo \"${p#/proc/} ${rest%% *}\"",
            "  done",
            "}", "");

    /**
     * The tool in the namespace, its JSON log to tool.log; right after it exits, which of the
     * family is left ("left"). Exits with the tool's code.
     */
    private static final String RUN = String.join("\n",
            "dir=$1 name=$2; shift 2",
            ". \"$dir/named.sh\"",
            "\"$@\" > \"$dir/tool.out\" 2> \"$dir/tool.log\" < /dev/null",
            "code=$?",
            "named \"$name\" > \"$dir/left\"",
            "exit \"$code\"", "");

    /** The app: says it started, waits for the test where asked, records the family, exits 3. */
    private static final String APP = String.join("\n",
            "dir=$1 name=$2 hold=$3",
            ". \"$dir/named.sh\"",
            ": > \"$dir/app-started\"",
            "if [ \"$hold\" = true ]; then until [ -e \"$dir/go\" ]; do sleep 0.05; done; fi",
            "named \"$name\" > \"$dir/family\"",
            "exit 3", "");

    /**
     * One run in a PID namespace of its own (TestSupport.PidNamespace): the sidecar in the
     * background, as a container runs it, then the tool in front of the app. Closing it ends the
     * namespace, and the kernel KILLs whatever is left inside: the sidecar never outlives the test.
     */
    static final class Namespace implements AutoCloseable {
        final TestSupport.PidNamespace ns;
        final Process sidecar;
        final Process run;
        final Path dir;

        private Namespace(TestSupport.PidNamespace ns, Process sidecar, Process run, Path dir) {
            this.ns = ns;
            this.sidecar = sidecar;
            this.run = run;
            this.dir = dir;
        }

        static Namespace start(Path dir, Sidecar sidecar, boolean hold, String... toolArgs) throws IOException {
            Files.writeString(dir.resolve("named.sh"), NAMED);
            Files.writeString(dir.resolve("run.sh"), RUN);
            Files.writeString(dir.resolve("app.sh"), APP);
            TestSupport.PidNamespace ns = TestSupport.PidNamespace.create();
            try {
                Process started = ns.start(TestSupport.cleanEnvironment(new ProcessBuilder("sh",
                        dir.resolve("sidecar.sh").toString())).redirectErrorStream(true)
                        .redirectOutput(dir.resolve("sidecar.log").toFile())
                        .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))));
                List<String> command = new ArrayList<>(List.of("sh", dir.resolve("run.sh").toString(),
                        dir.toString(), sidecar.name()));
                command.addAll(TestSupport.javaCommand());
                command.addAll(List.of(toolArgs));
                command.addAll(List.of("--", "sh", dir.resolve("app.sh").toString(), dir.toString(), sidecar.name(),
                        Boolean.toString(hold)));
                ProcessBuilder pb = TestSupport.cleanEnvironment(new ProcessBuilder(command))
                        .redirectOutput(dir.resolve("run.out").toFile()).redirectErrorStream(true)
                        .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
                pb.environment().putAll(TestSupport.json());
                return new Namespace(ns, started, ns.start(pb), dir);
            } catch (IOException | RuntimeException e) {
                ns.close();
                throw e;
            }
        }

        int exitCode() throws InterruptedException {
            if (!run.waitFor(TestSupport.PATIENCE.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new AssertionError("the run did not end within " + TestSupport.PATIENCE + ": " + report());
            }
            return run.exitValue();
        }

        List<JsonObject> events() {
            return TestSupport.events(read("tool.log"));
        }

        /** "PID PPID" of the family, as the app saw it before it exited. */
        List<String[]> family() {
            return read("family").lines().map(l -> l.split(" ")).toList();
        }

        /** Of the family, those running right after the tool exited. */
        List<String> left() {
            return read("left").lines().toList();
        }

        /** The sidecar's own exit code, once none of its family is left; "" while one is. */
        String sidecarCode() throws InterruptedException {
            if (!left().isEmpty() || !sidecar.waitFor(TestSupport.PATIENCE.toMillis(), TimeUnit.MILLISECONDS)) {
                return "";
            }
            return Integer.toString(sidecar.exitValue()); // nsenter's: the sidecar's, 128+N if killed by signal N
        }

        String sidecarLog() {
            return read("sidecar.log");
        }

        String read(String name) {
            return TestSupport.read(dir.resolve(name));
        }

        String report() {
            StringBuilder b = new StringBuilder();
            for (String name : List.of("tool.log", "family", "left", "sidecar.log", "run.out")) {
                b.append("\n--- ").append(name).append(":\n").append(read(name));
            }
            return b.toString();
        }

        @Override
        public void close() {
            ns.close(); // the kernel ends everything inside; nsenter follows its child
            for (Process p : List.of(run, sidecar)) {
                try {
                    if (!p.waitFor(TestSupport.PATIENCE.toMillis(), TimeUnit.MILLISECONDS)) p.destroyForcibly();
                } catch (InterruptedException e) {
                    p.destroyForcibly();
                    Thread.currentThread().interrupt();
                }
            }
        }
    }

    /** A backend that accepts and never answers, and the client request nginx passes to it. */
    static final class Held implements AutoCloseable {
        final ServerSocket backend;
        final List<Socket> accepted = new CopyOnWriteArrayList<>();
        Socket client;

        Held(ServerSocket backend) {
            this.backend = backend;
            Thread accept = new Thread(() -> {
                try {
                    while (true) accepted.add(backend.accept());
                } catch (IOException e) {
                    // closed: the test is over
                }
            }, "held-backend");
            accept.setDaemon(true);
            accept.start();
        }

        /** GET /slow through nginx, returning once nginx has passed it on: its worker now has a request in flight. */
        void request(int port) throws Exception {
            client = new Socket(InetAddress.getLoopbackAddress(), port);
            OutputStream out = client.getOutputStream();
            out.write("GET /slow HTTP/1.0\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
            out.flush();
            TestSupport.await("nginx to pass the request to the backend", () -> !accepted.isEmpty());
        }

        @Override
        public void close() throws IOException {
            backend.close();
            if (client != null) client.close();
            for (Socket s : accepted) s.close();
        }
    }
}
