import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import com.sun.net.httpserver.Headers;
import com.sun.net.httpserver.HttpServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import java.util.function.Predicate;
import java.util.stream.Stream;

/**
 * What the test classes share: the real envoy-preflight as a separate process (the way a container
 * runs it) or in-process, its JSON log read as events, the fakes around it, and the launcher's runs.
 */
final class TestSupport {
    /** A fresh FakeEnvoy (LIVE at once, with a pilot-agent port) and a temporary folder per test. */
    abstract static class WithFakeEnvoy {
        FakeEnvoy fake;
        @TempDir
        Path dir;

        @BeforeEach
        void startFake() throws IOException {
            fake = FakeEnvoy.start(0, Duration.ZERO).withPilotAgent(0);
        }

        @AfterEach
        void stopFake() {
            fake.close();
        }

        /** The tool's environment: verbose, plus the given NAME, VALUE pairs. */
        static Map<String, String> verbose(String... more) {
            Map<String, String> env = env(more);
            env.put("ENVOY_PREFLIGHT_LOGGING", "true");
            return env;
        }

        /** sh -c that touches a marker, so a test can tell whether the app ran. */
        String[] markerApp(int exitCode) {
            return new String[]{"sh", "-c", "touch '" + dir.resolve("started") + "'; exit " + exitCode};
        }

        boolean appStarted() {
            return Files.exists(dir.resolve("started"));
        }

        /** The quit requests the fake got, in order, as "server POST /path". */
        List<String> posts() {
            return TestSupport.posts(fake);
        }

        /** The paths one of the fake's servers ("admin", "pilot-agent", "generic") was asked with GET. */
        List<String> gets(String server) {
            return fake.requests().stream().filter(r -> r.method().equals("GET") && r.server().equals(server))
                    .map(FakeEnvoy.Request::path).toList();
        }
    }

    /** The quit requests a fake got, in order, as "server POST /path". */
    static List<String> posts(FakeEnvoy fake) {
        return fake.requests().stream().filter(r -> r.method().equals("POST")).map(Object::toString).toList();
    }

    private TestSupport() {
    }

    /** Every variable the tool reads (from its own table): cleared so that the developer's shell can't leak in. */
    static final List<String> TOOL_VARIABLES = toolVariables();

    private static List<String> toolVariables() {
        List<String> names = new ArrayList<>();
        for (EnvoyPreflight.Setting s : EnvoyPreflight.Setting.values()) s.readings.forEach(r -> names.add(r.variable()));
        // What a launcher in front of the suite moved aside: the tool would give it back to every app.
        names.add(EnvoyPreflight.App.MOVED);
        for (String moved : List.of("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS", "LC_ALL")) {
            names.add(EnvoyPreflight.App.MOVED_VALUE + moved);
        }
        names.addAll(List.of("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS"));
        return List.copyOf(names);
    }

    static final Duration PATIENCE = Duration.ofSeconds(30);

    /**
     * The CPU, as a resource of the suite (RunTests runs classes side by side). A test that takes it
     * (a compile, JBangs at once, many processes at once) holds it alone: {@code @ResourceLock(TestSupport.CPU)}.
     * A test with a timing window, or one that keeps a core busy (warm JBang runs one after another),
     * holds it shared ({@code mode = READ}): beside idle tests and other such, never beside a compile.
     * The rest need no lock: they wait, idle, most of the time.
     */
    static final String CPU = "cpu";

    /** Istio's own ports (15000, 15020, 15021): a test that listens there holds them, as classes run side by side. */
    static final String ISTIO_PORTS = "istio-ports";

    /** How many tests of a class (and its nested classes) take the CPU: RunTests starts those classes first. */
    static int takesTheCpu(Class<?> testClass) {
        int n = 0;
        for (Class<?> c = testClass; c != null && c != Object.class; c = c.getSuperclass()) {
            n += takesTheCpu(c.getAnnotationsByType(org.junit.jupiter.api.parallel.ResourceLock.class));
            for (java.lang.reflect.Method m : c.getDeclaredMethods()) {
                n += takesTheCpu(m.getAnnotationsByType(org.junit.jupiter.api.parallel.ResourceLock.class));
            }
            for (Class<?> nested : c.getDeclaredClasses()) n += takesTheCpu(nested);
        }
        return n;
    }

    private static int takesTheCpu(org.junit.jupiter.api.parallel.ResourceLock[] locks) {
        return (int) java.util.Arrays.stream(locks).filter(l -> l.value().equals(CPU)
                && l.mode() == org.junit.jupiter.api.parallel.ResourceAccessMode.READ_WRITE).count();
    }

    /** The tool's JVM: this test JVM's java and class path, with the script's //RUNTIME_OPTIONS. */
    static List<String> javaCommand() {
        List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java")));
        command.addAll(RUNTIME_OPTIONS);
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), "EnvoyPreflight"));
        return command;
    }

    static final List<String> RUNTIME_OPTIONS = runtimeOptions();

    private static List<String> runtimeOptions() {
        try {
            return Files.readAllLines(repositoryRoot().resolve("EnvoyPreflight.java")).stream()
                    .filter(l -> l.startsWith("//RUNTIME_OPTIONS "))
                    .flatMap(l -> java.util.Arrays.stream(l.substring(18).trim().split("\\s+"))).toList();
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The clone's root: the tests run from it or from below it. */
    static Path repositoryRoot() {
        Path root = Path.of("").toAbsolutePath();
        while (!Files.exists(root.resolve("jbang-catalog.json"))) root = root.getParent();
        return root;
    }

    /**
     * The real program as a separate process, its stdout and stderr in files of a folder of its own
     * (deleted by close, which keeps what they held). A run whose quit plan signals processes by name
     * (pkill's pilot-agent, --quit-process) runs in a PID namespace of its own, where it sees only its
     * own processes: pids that it or its app logs are then the namespace's (see PidNamespace).
     */
    static final class Tool implements AutoCloseable {
        /** The tool's JVM; or, in a namespace, nsenter in front of it (same exit code, same streams). */
        final Process process;
        final Path stdout;
        final Path stderr;
        private final Path folder;
        private final String mark;
        private final PidNamespace namespace;
        private final boolean ownsNamespace;
        private String out;
        private String err;

        private Tool(Process process, Path folder, String mark, PidNamespace namespace, boolean ownsNamespace) {
            this.process = process;
            this.folder = folder;
            this.stdout = folder.resolve("stdout");
            this.stderr = folder.resolve("stderr");
            this.mark = mark;
            this.namespace = namespace;
            this.ownsNamespace = ownsNamespace;
        }

        static Tool start(Map<String, String> env, String... args) throws IOException {
            return start(env, null, args);
        }

        /** Starts the tool with env added to a clean copy of ours; stdin from a file or nothing. */
        static Tool start(Map<String, String> env, Path stdin, String... args) throws IOException {
            PidNamespace ns = signalsByName(env, args) ? PidNamespace.create() : null;
            try {
                return start(ns, true, env, stdin, args);
            } catch (IOException | RuntimeException | Error e) {
                if (ns != null) ns.close();
                throw e;
            }
        }

        /** Starts the tool in ns (a test's own, for processes it starts there too); ns stays the test's to close. */
        static Tool in(PidNamespace ns, Map<String, String> env, String... args) throws IOException {
            return start(ns, false, env, null, args);
        }

        private static Tool start(PidNamespace ns, boolean owned, Map<String, String> env, Path stdin, String... args)
                throws IOException {
            List<String> command = new ArrayList<>(javaCommand());
            command.addAll(List.of(args));
            Path folder = Files.createTempDirectory("preflight-run");
            ProcessBuilder pb = cleanEnvironment(new ProcessBuilder(command))
                    .redirectOutput(folder.resolve("stdout").toFile())
                    .redirectError(folder.resolve("stderr").toFile())
                    .redirectInput(stdin == null ? ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile())
                            : ProcessBuilder.Redirect.from(stdin.toFile()));
            pb.environment().putAll(env);
            String mark = pb.environment().get(MARK);
            try {
                return new Tool(ns == null ? pb.start() : ns.start(pb), folder, mark, ns, owned);
            } catch (IOException | RuntimeException e) {
                deleteTree(folder);
                throw e;
            }
        }

        /** Runs to the end and returns the exit code (fails the test if it hangs). */
        int exitCode() throws InterruptedException {
            if (!process.waitFor(PATIENCE.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                throw new AssertionError("the tool did not exit within " + PATIENCE + "; stderr:\n" + stderr());
            }
            return process.exitValue();
        }

        /** The tool JVM's pid, as this test sees it (in a namespace: not the pid the tool sees for itself). */
        long pid() {
            if (namespace == null) return process.pid();
            long[] jvm = {0};
            try {
                await("the tool's JVM under nsenter", () -> {
                    jvm[0] = process.children().mapToLong(ProcessHandle::pid).findFirst().orElse(0);
                    return jvm[0] != 0;
                });
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new AssertionError(e);
            }
            return jvm[0];
        }

        String stdout() {
            return out != null ? out : read(stdout);
        }

        String stderr() {
            return err != null ? err : read(stderr);
        }

        /** The log's events (run with {@link #json}): each line one JSON object, or the test fails. */
        List<JsonObject> events() {
            return TestSupport.events(stderr());
        }

        /** The events of one kind, in order. */
        List<JsonObject> events(String event) {
            return TestSupport.events(stderr(), event);
        }

        /** The one event of this kind: fails if there is none, or more than one. */
        JsonObject event(String event) {
            return TestSupport.event(stderr(), event);
        }

        /** While the tool runs: the events whose lines are whole (the last may be half written). */
        List<JsonObject> eventsSoFar() {
            String err = stderr();
            return TestSupport.events(err.substring(0, err.lastIndexOf('\n') + 1));
        }

        void signal(String name) {
            TestSupport.kill(name, pid());
        }

        /**
         * Ends the tool, what it started (also what left its process tree: an app the kernel TERMs
         * when the tool dies is reparented out of reach, but carries the run's mark), and its folder.
         */
        @Override
        public void close() {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
            if (ownsNamespace && namespace != null) namespace.close();
            endMarked(mark);
            if (out == null) {
                out = read(stdout);
                err = read(stderr);
                deleteTree(folder);
            }
        }
    }

    /**
     * Whether the tool would signal processes by name at exit (pkill's pilot-agent, --quit-process),
     * which would reach every such process on the machine: its --dry-run says so, in-process. A run
     * whose dry run fails is taken as one that might.
     */
    static boolean signalsByName(Map<String, String> env, String... args) {
        List<String> dry = new ArrayList<>(List.of("--dry-run"));
        dry.addAll(List.of(args));
        Ran plan = inProcess(env, dry.toArray(String[]::new));
        return plan.code() != 0 || plan.out().lines()
                .anyMatch(l -> (l.startsWith("at exit") || l.startsWith("after the quit")) && l.contains("SIG"));
    }

    /**
     * A PID namespace of the test's own, with /proc of its own: a process started in it sees only
     * the others started in it, so a tool that signals processes by name reaches only the test's.
     * Its init ends when this JVM closes its stdin (close, or this JVM's death), and with it the
     * kernel ends every process left inside. Skips the test, saying why, where none can be made.
     */
    static final class PidNamespace implements AutoCloseable {
        final Process unshare;
        final long init;

        private PidNamespace(Process unshare, long init) {
            this.unshare = unshare;
            this.init = init;
        }

        static PidNamespace create() throws IOException {
            Process unshare = new ProcessBuilder("unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
                    "sh", "-c", "read -r x").redirectErrorStream(true).start();
            long[] init = {0};
            try {
                // once the child runs sh, its /proc is mounted: nsenter may enter
                long until = System.nanoTime() + PATIENCE.toNanos();
                while (init[0] == 0 && unshare.isAlive() && System.nanoTime() < until) {
                    unshare.children().filter(c -> "sh".equals(comm(c.pid()))).findFirst()
                            .ifPresent(c -> init[0] = c.pid());
                    if (init[0] == 0) Thread.sleep(5);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            if (init[0] == 0) {
                unshare.destroyForcibly();
                String why = unshare.isAlive() ? "" : new String(unshare.getInputStream().readAllBytes(),
                        StandardCharsets.UTF_8).strip();
                Assumptions.abort("no PID namespace can be made here (unshare --pid --fork --mount-proc: " + why
                        + "); this run would signal processes by name outside the test's own");
            }
            return new PidNamespace(unshare, init[0]);
        }

        /** Starts pb inside, in pb's working directory (nsenter forks it there; its exit code is pb's). */
        Process start(ProcessBuilder pb) throws IOException {
            Path wd = (pb.directory() != null ? pb.directory().toPath() : Path.of("")).toAbsolutePath();
            List<String> command = new ArrayList<>(List.of("nsenter", "-t", Long.toString(init), "-p", "-m",
                    "--wd=" + wd));
            command.addAll(pb.command());
            return pb.command(command).start();
        }

        /** The pid of a process started inside (as this test sees it) as the namespace shows it: NSpid's last. */
        static long pidInside(long pid) {
            String status = read(Path.of("/proc/" + pid + "/status"));
            String nspid = status.lines().filter(l -> l.startsWith("NSpid:")).findFirst()
                    .orElseThrow(() -> new AssertionError("no NSpid for " + pid));
            String[] pids = nspid.substring(6).trim().split("\\s+");
            return Long.parseLong(pids[pids.length - 1]);
        }

        /** The process started inside by start(): nsenter's child, which runs pb's command. */
        static ProcessHandle inside(Process started) throws InterruptedException {
            ProcessHandle[] child = {null};
            await("the process under nsenter", () -> {
                child[0] = started.children().findFirst().orElse(null);
                return child[0] != null;
            });
            return child[0];
        }

        @Override
        public void close() {
            try {
                unshare.getOutputStream().close(); // the init's read ends: the kernel ends the rest
            } catch (IOException e) {
                // already closed
            }
            try {
                if (!unshare.waitFor(PATIENCE.toMillis(), TimeUnit.MILLISECONDS)) unshare.destroyForcibly();
            } catch (InterruptedException e) {
                unshare.destroyForcibly();
                Thread.currentThread().interrupt();
            }
        }
    }

    /**
     * The tool under a pseudo-terminal, as at a prompt: util-linux `script` makes the tool its
     * terminal's foreground process group; what the test types goes through the terminal.
     */
    static final class Terminal implements AutoCloseable {
        final Process script;
        final Path output;
        private final String mark;
        private String kept;

        private Terminal(Process script, Path output, String mark) {
            this.script = script;
            this.output = output;
            this.mark = mark;
        }

        static Terminal start(Map<String, String> env, String... args) throws IOException {
            List<String> command = new ArrayList<>(javaCommand());
            command.addAll(List.of(args));
            String line = String.join(" ", command.stream().map(TestSupport::quote).toList());
            Path output = Files.createTempFile("preflight-terminal", ".out");
            // exec: the tool leads the terminal's session itself, with no shell to catch Ctrl-C too
            ProcessBuilder pb = cleanEnvironment(new ProcessBuilder("script", "-qfec", "exec " + line, "/dev/null"))
                    .redirectErrorStream(true).redirectOutput(output.toFile());
            pb.environment().put("SHELL", "/bin/sh");
            pb.environment().putAll(env);
            try {
                return new Terminal(pb.start(), output, pb.environment().get(MARK));
            } catch (IOException e) {
                Files.deleteIfExists(output);
                throw e;
            }
        }

        /** Types text at the terminal (e.g. Ctrl-C as "\u0003"). */
        void type(String text) throws IOException {
            script.getOutputStream().write(text.getBytes(StandardCharsets.UTF_8));
            script.getOutputStream().flush();
        }

        /** The pid of the tool's JVM, below `script`. */
        long toolPid() throws InterruptedException {
            long[] pid = {0};
            await("the tool under the terminal", () -> {
                pid[0] = script.descendants().filter(p -> p.info().command().orElse("").endsWith("/java"))
                        .mapToLong(ProcessHandle::pid).findFirst().orElse(0);
                return pid[0] != 0;
            });
            return pid[0];
        }

        /** The terminal's device, as the tool has it on stdin. */
        Path device() throws Exception {
            return Files.readSymbolicLink(Path.of("/proc/" + toolPid() + "/fd/0"));
        }

        int exitCode() throws InterruptedException {
            if (!script.waitFor(PATIENCE.toMillis(), TimeUnit.MILLISECONDS)) {
                throw new AssertionError("the tool did not exit within " + PATIENCE + "; output:\n" + output());
            }
            return script.exitValue();
        }

        String output() {
            return kept != null ? kept : read(output);
        }

        /** The tool's events (run with {@link #json}): its JSON lines, less what the terminal echoed (^C). */
        List<JsonObject> events() {
            StringBuilder json = new StringBuilder();
            for (String line : output().replace("\r", "").lines().toList()) {
                int start = line.indexOf("{\"time\"");
                if (start >= 0) json.append(line.substring(start)).append('\n');
            }
            return TestSupport.events(json.toString());
        }

        @Override
        public void close() {
            script.descendants().forEach(ProcessHandle::destroyForcibly);
            script.destroyForcibly();
            endMarked(mark);
            if (kept == null) {
                kept = read(output);
                deleteTree(output);
            }
        }
    }

    static String read(Path p) {
        try {
            return Files.exists(p) ? Files.readString(p, StandardCharsets.UTF_8) : "";
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    /**
     * Without the tool's variables: the developer's shell must not leak into a test's run. With a
     * mark of its own ({@link #MARK}), which every process it starts inherits.
     */
    static ProcessBuilder cleanEnvironment(ProcessBuilder pb) {
        TOOL_VARIABLES.forEach(pb.environment()::remove);
        pb.environment().put(MARK, SUITE + "-" + RUNS.incrementAndGet());
        return pb;
    }

    // --- What a test leaves behind ------------------------------------------------------------------

    /**
     * A variable each run the tests start carries, "SUITE-N": a process that left the run's tree
     * (reparented when its parent died) is still found by it, for close() and for the suite's last check.
     * Not ENVOY_PREFLIGHT_*: the tool would take it for a misspelt setting of its own.
     */
    static final String MARK = "PREFLIGHT_TEST_MARK";

    /** This suite run's name (RunTests sets it), the prefix of every mark. */
    static final String SUITE = System.getProperty("preflight.suite",
            "preflight-suite-" + ProcessHandle.current().pid());

    private static final java.util.concurrent.atomic.AtomicLong RUNS = new java.util.concurrent.atomic.AtomicLong();

    /** Live processes (not zombies) whose environment has MARK=value, or MARK=value... if prefix. */
    static List<ProcessHandle> marked(String value, boolean prefix) {
        byte[] wanted = (MARK + "=" + value).getBytes(StandardCharsets.UTF_8);
        return ProcessHandle.allProcesses().filter(p -> {
            byte[] environ;
            try {
                environ = Files.readAllBytes(Path.of("/proc/" + p.pid() + "/environ"));
            } catch (IOException | RuntimeException e) {
                return false; // gone, or not ours to read
            }
            for (int start = 0; start < environ.length; ) {
                int end = start;
                while (end < environ.length && environ[end] != 0) end++;
                if (end - start >= wanted.length && java.util.Arrays.equals(environ, start, start + wanted.length,
                        wanted, 0, wanted.length) && (prefix || end - start == wanted.length)) {
                    return alive(p);
                }
                start = end + 1;
            }
            return false;
        }).toList();
    }

    /** Running, not a zombie that waits for its parent. */
    static boolean alive(ProcessHandle p) {
        String status;
        try {
            status = Files.readString(Path.of("/proc/" + p.pid() + "/status"), StandardCharsets.ISO_8859_1);
        } catch (IOException e) {
            return false; // gone
        }
        return p.isAlive() && !status.contains("\nState:\tZ");
    }

    /** Ends every process of one run (by its mark), and waits until they are gone. */
    static void endMarked(String mark) {
        if (mark == null) return;
        List<ProcessHandle> left = marked(mark, false);
        left.forEach(ProcessHandle::destroyForcibly);
        long until = System.nanoTime() + PATIENCE.toNanos();
        while (left.stream().anyMatch(TestSupport::alive) && System.nanoTime() < until) sleep(5);
    }

    /** A process's name as /proc/PID/comm holds it, or null once it is gone. */
    static String comm(long pid) {
        try {
            return Files.readString(Path.of("/proc/" + pid + "/comm")).strip();
        } catch (IOException e) {
            return null;
        }
    }

    /** Deletes a file or a folder with everything in it; what is gone already is fine. */
    static void deleteTree(Path path) {
        if (!Files.exists(path, java.nio.file.LinkOption.NOFOLLOW_LINKS)) return;
        try (Stream<Path> all = Files.walk(path)) {
            for (Path p : all.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        } catch (IOException e) {
            throw new AssertionError("could not delete " + path + ": " + e, e);
        }
    }

    /** One word for bash, whatever it holds. */
    static String quote(String word) {
        return "'" + word.replace("'", "'\\''") + "'";
    }

    // --- The log as events ----------------------------------------------------------------------

    /**
     * The tool's environment for a test that reads its decisions from the log: verbose (info lines
     * such as app-start and ready are -v's), one JSON object a line, plus the NAME, VALUE pairs.
     */
    static Map<String, String> json(String... more) {
        Map<String, String> env = env(more);
        env.put("ENVOY_PREFLIGHT_LOGGING", "true");
        env.put("ENVOY_PREFLIGHT_LOG_FORMAT", "json");
        return env;
    }

    /** Each line of a JSON log as an object; a line that is not one fails the test. */
    static List<JsonObject> events(String stderr) {
        List<JsonObject> events = new ArrayList<>();
        for (String line : stderr.lines().toList()) {
            try {
                events.add(JsonParser.parseString(line).getAsJsonObject());
            } catch (RuntimeException e) {
                throw new AssertionError("not a JSON object: " + line + "\nin:\n" + stderr, e);
            }
        }
        return events;
    }

    /** The events of one kind (e.g. "quit"), in order. */
    static List<JsonObject> events(String stderr, String event) {
        return events(stderr).stream().filter(o -> is(o, event)).toList();
    }

    /** The one event of this kind: fails if there is none, or more than one. */
    static JsonObject event(String stderr, String event) {
        List<JsonObject> found = events(stderr, event);
        if (found.size() != 1) throw new AssertionError(found.size() + " '" + event + "' events in:\n" + stderr);
        return found.get(0);
    }

    /** The first event of this kind that matches: fails if there is none. */
    static JsonObject first(List<JsonObject> events, String event, Predicate<JsonObject> matching) {
        return events.stream().filter(o -> is(o, event) && matching.test(o)).findFirst()
                .orElseThrow(() -> new AssertionError("no matching '" + event + "' event in:\n" + lines(events)));
    }

    /** Whether any event of this kind matches. */
    static boolean any(List<JsonObject> events, String event, Predicate<JsonObject> matching) {
        return events.stream().anyMatch(o -> is(o, event) && matching.test(o));
    }

    static boolean is(JsonObject o, String event) {
        return o.has("event") && o.get("event").getAsString().equals(event);
    }

    /** The event's field as text, or null where the event has none. */
    static String text(JsonObject o, String field) {
        return o.has(field) && !o.get(field).isJsonNull() ? o.get(field).getAsString() : null;
    }

    /** One field of each event (null where one has none), in order: e.g. what each poll saw. */
    static List<String> each(List<JsonObject> events, String field) {
        return events.stream().map(o -> text(o, field)).toList();
    }

    /** An array field's items as text, e.g. the config event's set_by. */
    static List<String> array(JsonObject o, String field) {
        List<String> items = new ArrayList<>();
        o.getAsJsonArray(field).forEach(e -> items.add(e.getAsString()));
        return items;
    }

    /** The events' kinds, in order: the story of a run in one list. */
    static List<String> kinds(List<JsonObject> events) {
        return events.stream().map(o -> o.get("event").getAsString()).toList();
    }

    /** When the tool logged an event, in epoch milliseconds. */
    static long epochMillis(JsonObject event) {
        return java.time.Instant.parse(event.get("time").getAsString()).toEpochMilli();
    }

    /** Milliseconds between two events, by the times the tool itself logged. */
    static long millisBetween(JsonObject from, JsonObject to) {
        return Duration.between(java.time.Instant.parse(from.get("time").getAsString()),
                java.time.Instant.parse(to.get("time").getAsString())).toMillis();
    }

    /**
     * How long a verbose run waited until its end event, by the tool's own clock: from the config
     * line, the last one logged before the wait's clock starts, so that a limit is never shown
     * short (the wait line comes just after the clock starts, and more so on a busy machine).
     */
    static long waitedMillis(List<JsonObject> events, JsonObject end) {
        return millisBetween(first(events, "config", o -> true), end);
    }

    private static String lines(List<JsonObject> events) {
        StringBuilder b = new StringBuilder();
        for (JsonObject o : events) b.append(o).append('\n');
        return b.toString();
    }

    /** A Log of the tool's own, into memory: for the parts tested in-process. */
    static final class Captured {
        final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        final EnvoyPreflight.Log log;

        Captured(boolean verbose, EnvoyPreflight.Log.Format format) {
            log = new EnvoyPreflight.Log(verbose, format, new PrintStream(bytes, true, StandardCharsets.UTF_8));
        }

        String text() {
            return bytes.toString(StandardCharsets.UTF_8);
        }

        List<JsonObject> events() {
            return TestSupport.events(text());
        }
    }

    // --- In-process: the tool's own call(), with its streams captured -----------------------------

    /** What one in-process run gave: {exit code, stdout, stderr}. */
    record Ran(int code, String out, String err) {
        List<JsonObject> events() {
            return TestSupport.events(err);
        }

        JsonObject event(String event) {
            return TestSupport.event(err, event);
        }
    }

    /**
     * The tool in-process, started as main() starts it (picocli only where the arguments hold an
     * option), with env as its whole environment. Nothing writes /dev/termination-log unless env
     * names one. For modes that start nothing, or for a failure before anything starts.
     */
    static Ran inProcess(Map<String, String> env, String... args) {
        Map<String, String> all = new HashMap<>(env);
        all.putIfAbsent("ENVOY_PREFLIGHT_TERMINATION_LOG", "off");
        EnvoyPreflight tool = tool(all);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        tool.out = new PrintStream(out, true, StandardCharsets.UTF_8);
        tool.err = new PrintStream(err, true, StandardCharsets.UTF_8);
        boolean endOfOptions = args.length > 0 && args[0].equals("--");
        int code;
        if (endOfOptions || args.length > 0 && !args[0].startsWith("-")) {
            tool.command = List.of(args).subList(endOfOptions ? 1 : 0, args.length);
            code = tool.call();
        } else {
            code = EnvoyPreflight.commandLine(tool).execute(args);
        }
        return new Ran(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    // --- Fakes --------------------------------------------------------------------------------------

    /** An HTTP server that answers every request with one status (and body), and records each. */
    static final class Recorder implements AutoCloseable {
        /** One request: "METHOD /path" as a string, its headers kept. */
        record Request(String method, String path, Headers headers) {
            @Override
            public String toString() {
                return method + " " + path;
            }
        }

        final HttpServer server;
        final List<Request> requests = new CopyOnWriteArrayList<>();
        private volatile Runnable onQuit;

        /** On loopback's port (0: any free one), answering status without a body. */
        Recorder(int port, int status) throws IOException {
            this(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), status, null);
        }

        Recorder(InetSocketAddress at, int status, String body) throws IOException {
            server = HttpServer.create(at, 16);
            server.createContext("/", exchange -> {
                requests.add(new Request(exchange.getRequestMethod(), exchange.getRequestURI().getPath(),
                        exchange.getRequestHeaders()));
                if (body == null) {
                    exchange.sendResponseHeaders(status, -1);
                    exchange.close();
                } else {
                    FakeEnvoy.reply(exchange, status, "text/plain", body);
                }
                Runnable quit = onQuit;
                if (quit != null && exchange.getRequestMethod().equals("POST")) {
                    onQuit = null;
                    new Thread(quit, "recorder-quit").start(); // not on the server's own thread: it stops it
                }
            });
            server.start();
        }

        /**
         * As a sidecar told to quit: once it has answered a POST, it stops listening, and so do the
         * others given (the rest of the same sidecar), so that the tool's confirmation sees it gone.
         */
        Recorder leavesOnPost(AutoCloseable... alsoGone) {
            onQuit = () -> {
                server.stop(0);
                for (AutoCloseable other : alsoGone) {
                    try {
                        other.close();
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                }
            };
            return this;
        }

        /** On a fixed port (a sidecar's default), or the test is skipped where it is taken. */
        static Recorder onDefaultPort(int port) throws IOException {
            try {
                return new Recorder(port, 200);
            } catch (java.net.BindException e) {
                Assumptions.abort("port " + port + " is taken here");
                throw e;
            }
        }

        /** Every request as "METHOD /path", in order. */
        List<String> seen() {
            return requests.stream().map(Request::toString).toList();
        }

        /** The values of one header, in the order of the requests that carried it. */
        List<String> header(String name) {
            return requests.stream().map(r -> r.headers().getFirst(name)).filter(java.util.Objects::nonNull).toList();
        }

        int port() {
            return server.getAddress().getPort();
        }

        String url() {
            return "http://127.0.0.1:" + port();
        }

        @Override
        public void close() {
            server.stop(0);
        }
    }

    // --- The committed ./jbang launcher -------------------------------------------------------------

    /** A finished process: {exit code, stdout, stderr}. */
    record Run(int code, String out, String err) {}

    /** Waits for p (at most 3 minutes: a launcher may compile or fetch), reading both its streams. */
    static Run finish(Process p) throws Exception {
        var out = new CompletableFuture<String>();
        new Thread(() -> {
            try {
                out.complete(new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
            } catch (IOException e) {
                out.completeExceptionally(e);
            }
        }).start();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(180, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("did not finish in 180 s: " + p.info().commandLine().orElse("?"));
        }
        return new Run(p.exitValue(), out.get(), err);
    }

    /** The tool through this launcher, running the app command given, with env added to a clean copy of ours. */
    static Process launch(Path launcher, Map<String, String> env, String... app) throws IOException {
        List<String> command = new ArrayList<>(List.of(launcher.toString(),
                repositoryRoot().resolve("EnvoyPreflight.java").toString()));
        command.addAll(List.of(app));
        ProcessBuilder pb = cleanEnvironment(new ProcessBuilder(command)).directory(launcher.getParent().toFile())
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        pb.environment().remove("JAVA_HOME");
        pb.environment().put("JBANG_NO_VERSION_CHECK", "true");
        pb.environment().putAll(env);
        return pb.start();
    }

    /**
     * The script compiled into JBang's cache first, with the suite's own launcher: JBang says
     * "Building jar" on a first compile, and two JBangs compiling one script at once collide.
     */
    static synchronized void buildTheScript() throws Exception {
        if (scriptBuilt) return; // once a suite: classes that need it may start side by side
        Path root = repositoryRoot();
        ProcessBuilder pb = new ProcessBuilder(root.resolve("jbang").toString(), "build",
                root.resolve("EnvoyPreflight.java").toString()).redirectErrorStream(true);
        pb.environment().put("JBANG_NO_VERSION_CHECK", "true");
        pb.environment().remove("JAVA_HOME");
        Run built = finish(pb.start());
        if (built.code() != 0) throw new AssertionError("jbang build: " + built.out());
        scriptBuilt = true;
    }

    private static boolean scriptBuilt;

    /** JBang's cache for the caller: JBANG_CACHE_DIR, else its folder's cache (JBANG_DIR, else user.home's). */
    static Path callersJbangCache() {
        String cache = System.getenv("JBANG_CACHE_DIR");
        if (cache != null && !cache.isEmpty()) return Path.of(cache);
        String folder = System.getenv("JBANG_DIR");
        Path jbangFolder = folder != null && !folder.isEmpty() ? Path.of(folder)
                : Path.of(System.getProperty("user.home"), ".jbang");
        return jbangFolder.resolve("cache");
    }

    static Path callersMavenRepository() {
        String repo = System.getenv("JBANG_REPO");
        return repo != null && !repo.isEmpty() ? Path.of(repo)
                : Path.of(System.getProperty("user.home"), ".m2", "repository");
    }

    /** The JBang the suite's own launcher bootstrapped under root/.jbang (it runs this very suite). */
    static Path jbangLib(Path root) throws IOException {
        try (Stream<Path> dirs = Files.list(root.resolve(".jbang"))) {
            return dirs.filter(p -> p.getFileName().toString().startsWith("jbang-cli-")).findFirst()
                    .orElseThrow(() -> new AssertionError("no bootstrapped JBang under .jbang/"));
        }
    }

    // --- A second JDK, for the launcher's per-JDK archives --------------------------------------------

    /** A JDK: its home (as JAVA_HOME) and its feature version, as its release file says. */
    record Jdk(Path home, int feature) {}

    /** Names a second JDK's home for the launcher tests, where the search would find none or another. */
    static final String TEST_JDK = "ENVOY_PREFLIGHT_TEST_JDK";

    /** Where {@link #jdkFolders} looks, as a user would write it. */
    static final String JDK_FOLDERS = "/usr/lib/jvm/*, /opt/java/*, /opt/jdk*, ~/.sdkman/candidates/java/*,"
            + " ~/.jbang/cache/jdks/*";

    /** Where JDKs are installed: Debian's packages, Docker images, SDKMAN!, JBang's own downloads. */
    static List<Path> jdkFolders() {
        Path home = Path.of(System.getProperty("user.home"));
        List<Path> folders = new ArrayList<>();
        for (Path parent : List.of(Path.of("/usr/lib/jvm"), Path.of("/opt/java"),
                home.resolve(".sdkman/candidates/java"), home.resolve(".jbang/cache/jdks"))) {
            folders.addAll(children(parent, name -> true));
        }
        folders.addAll(children(Path.of("/opt"), name -> name.startsWith("jdk")));
        return folders;
    }

    /**
     * A JDK the launcher would not pick by itself: one whose feature version differs from this
     * JVM's and from the java on PATH (which the launcher runs without JAVA_HOME), and that the
     * script can run on (its //JAVA line). ENVOY_PREFLIGHT_TEST_JDK if set (a wrong one fails the
     * test), else the newest in {@link #jdkFolders}; the test is skipped, saying why, where there
     * is none.
     */
    static Jdk otherJdk() {
        int running = Runtime.version().feature();
        int onPath = defaultJdk().map(Jdk::feature).orElse(running);
        int needed = scriptsJavaFeature();
        Predicate<Jdk> other = jdk -> jdk.feature() != running && jdk.feature() != onPath && jdk.feature() >= needed;
        String given = System.getenv(TEST_JDK);
        if (given != null && !given.isEmpty()) {
            Jdk jdk = jdk(Path.of(given)).orElseThrow(() -> new AssertionError(TEST_JDK + "=" + given
                    + ": no bin/java with a release file there"));
            if (!other.test(jdk)) {
                throw new AssertionError(TEST_JDK + "=" + given + " is JDK " + jdk.feature() + "; a second JDK must"
                        + " differ from " + running + " (this JVM) and " + onPath + " (java on PATH), and be "
                        + needed + " or newer");
            }
            return jdk;
        }
        Map<Path, Jdk> found = new java.util.TreeMap<>(); // by real path: the same JDK under several names once
        for (Path folder : jdkFolders()) {
            jdk(folder).filter(other).ifPresent(jdk -> found.putIfAbsent(realJava(folder), jdk));
        }
        Jdk newest = found.values().stream().max(java.util.Comparator.comparingInt(Jdk::feature)).orElse(null);
        Assumptions.assumeTrue(newest != null, "no second JDK (" + needed + " or newer, other than "
                + (running == onPath ? running : running + " and " + onPath) + ") in " + JDK_FOLDERS + "; set "
                + TEST_JDK + " to one's home");
        return newest;
    }

    /** The JDK of the java on PATH, as the launcher finds it without JAVA_HOME. */
    static Optional<Jdk> defaultJdk() {
        for (String entry : System.getenv().getOrDefault("PATH", "").split(":")) {
            Path command = Path.of(entry.isEmpty() ? "." : entry, "java");
            if (!Files.isExecutable(command)) continue;
            try {
                return jdk(command.toRealPath().getParent().getParent());
            } catch (IOException e) {
                return Optional.empty();
            }
        }
        return Optional.empty();
    }

    /** The JDK at home, read as the launcher reads it: bin/java and the release file's JAVA_VERSION. */
    static Optional<Jdk> jdk(Path home) {
        Path release = home.resolve("release");
        if (!Files.isExecutable(home.resolve("bin/java")) || !Files.isReadable(release)) return Optional.empty();
        try {
            for (String line : Files.readAllLines(release)) {
                var m = java.util.regex.Pattern.compile("^JAVA_VERSION=\"(?:1\\.)?(\\d+)").matcher(line);
                if (m.find()) return Optional.of(new Jdk(home, Integer.parseInt(m.group(1))));
            }
        } catch (IOException e) {
            // unreadable: not one to run
        }
        return Optional.empty();
    }

    /** The oldest Java the script runs on: its //JAVA line, e.g. 17 for "//JAVA 17+". */
    static int scriptsJavaFeature() {
        try {
            return Files.readAllLines(repositoryRoot().resolve("EnvoyPreflight.java")).stream()
                    .filter(l -> l.startsWith("//JAVA ")).map(l -> l.substring(7).replaceAll("\\D.*", ""))
                    .mapToInt(Integer::parseInt).findFirst().orElse(17);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Path realJava(Path home) {
        try {
            return home.resolve("bin/java").toRealPath();
        } catch (IOException e) {
            return home.resolve("bin/java");
        }
    }

    private static List<Path> children(Path parent, Predicate<String> named) {
        if (!Files.isDirectory(parent)) return List.of();
        try (Stream<Path> all = Files.list(parent)) {
            return all.filter(p -> named.test(p.getFileName().toString())).sorted().toList();
        } catch (IOException e) {
            return List.of();
        }
    }

    /** Sends SIGname to pid with the kill command: the test's own means, not the tool's code. */
    static void kill(String name, long pid) {
        try {
            Process kill = new ProcessBuilder("kill", "-s", name, Long.toString(pid)).redirectErrorStream(true).start();
            String out = new String(kill.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (kill.waitFor() != 0) throw new AssertionError("kill -s " + name + " " + pid + ": " + out);
        } catch (IOException e) {
            throw new AssertionError(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** Waits until condition holds; fails with what after PATIENCE. */
    static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long until = System.nanoTime() + PATIENCE.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > until) throw new AssertionError("timed out waiting for " + what);
            Thread.sleep(10);
        }
    }

    /** The tool's command object as the command line would leave it: this environment and command. */
    static EnvoyPreflight tool(Map<String, String> env, String... command) {
        EnvoyPreflight tool = new EnvoyPreflight();
        tool.env = env;
        tool.command = List.of(command);
        return tool;
    }

    /** What the tool makes of this environment, with a command to run. */
    static EnvoyPreflight.Config config(Map<String, String> env) throws EnvoyPreflight.Config.Invalid {
        return EnvoyPreflight.Config.resolve(tool(env, "true"));
    }

    static Map<String, String> env(String... keyValues) {
        Map<String, String> env = new HashMap<>();
        for (int i = 0; i < keyValues.length; i += 2) env.put(keyValues[i], keyValues[i + 1]);
        return env;
    }

    /**
     * From when (epoch ms) a tool could have seen a sidecar that is ready from readyAtMillis: then,
     * or at its first poll if that came later (its JVM slow to start on a busy machine), so that a
     * start-up budget counts the tool's reaction, not its JVM's start.
     */
    static long readySeenFrom(long readyAtMillis, List<FakeEnvoy.Request> polls) {
        long first = polls.stream().mapToLong(FakeEnvoy.Request::nanos).min()
                .orElseThrow(() -> new AssertionError("no poll"));
        return Math.max(readyAtMillis, System.currentTimeMillis() - (System.nanoTime() - first) / 1_000_000);
    }

    /** Thread.sleep for handlers that may not throw InterruptedException. */
    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** A port nothing listens on: bound, then released. */
    static int closedPort() throws IOException {
        try (var s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            return s.getLocalPort();
        }
    }

    /** A bash app that records each signal it gets (one name a line) and exits when told to. */
    static final class SignalApp {
        final Path dir;
        final Path script;

        SignalApp(Path dir) throws IOException {
            this.dir = dir;
            this.script = dir.resolve("signal-app.sh");
            Files.writeString(script, String.join("\n",
                    "#!/bin/bash", // by its path: it must run where PATH has no shell
                    "dir=$1",
                    // read -t on a fifo waits without child processes, so after mkfifo CHLD is only ours
                    "/usr/bin/mkfifo \"$dir/fifo\"; exec 9<>\"$dir/fifo\"",
                    "for s in HUP INT TERM USR1 USR2 ALRM WINCH URG CHLD PIPE; do",
                    "  trap \"echo $s >> '$dir/signals'\" $s",
                    "done",
                    "echo ready > \"$dir/ready\"",
                    "until [ -e \"$dir/stop\" ]; do read -t 0.05 -u 9 || true; done",
                    "exit \"${2:-0}\"", ""));
            Files.setPosixFilePermissions(script, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
        }

        /** The command line that runs it, exiting with exitCode when stopped. */
        String[] command(int exitCode) {
            return new String[]{script.toString(), dir.toString(), Integer.toString(exitCode)};
        }

        void awaitReady() throws InterruptedException {
            await("the app to set its traps", () -> Files.exists(dir.resolve("ready")));
        }

        void awaitSignal(String name) throws InterruptedException {
            await("SIG" + name + " at the app", () -> received().contains(name));
        }

        List<String> received() {
            String s = read(dir.resolve("signals"));
            return s.isEmpty() ? List.of() : List.of(s.strip().split("\n"));
        }

        void stop() throws IOException {
            Files.writeString(dir.resolve("stop"), "");
        }
    }
}
