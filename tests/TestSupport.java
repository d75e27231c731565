import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

/** Runs the real envoy-preflight as a separate process, the way a container would. */
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
    }

    private TestSupport() {
    }

    /** Every variable the tool reads (from its own table): cleared so that the developer's shell can't leak in. */
    static final List<String> TOOL_VARIABLES = toolVariables();

    private static List<String> toolVariables() {
        List<String> names = new ArrayList<>();
        for (EnvoyPreflight.Setting s : EnvoyPreflight.Setting.values()) names.addAll(s.variables());
        // What a launcher in front of the suite moved aside: the tool would give it back to every app.
        names.add(EnvoyPreflight.App.MOVED);
        for (String moved : List.of("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS", "LC_ALL")) {
            names.add(EnvoyPreflight.App.MOVED_VALUE + moved);
        }
        names.addAll(List.of("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS"));
        return List.copyOf(names);
    }

    static final Duration PATIENCE = Duration.ofSeconds(30);

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

    static final class Tool implements AutoCloseable {
        final Process process;
        final Path stdout;
        final Path stderr;

        private Tool(Process process, Path stdout, Path stderr) {
            this.process = process;
            this.stdout = stdout;
            this.stderr = stderr;
        }

        static Tool start(Map<String, String> env, String... args) throws IOException {
            return start(env, null, args);
        }

        /** Starts the tool with env added to a clean copy of ours; stdin from a file or nothing. */
        static Tool start(Map<String, String> env, Path stdin, String... args) throws IOException {
            List<String> command = new ArrayList<>(javaCommand());
            command.addAll(List.of(args));
            Path dir = Files.createTempDirectory("preflight-run");
            Path out = dir.resolve("stdout");
            Path err = dir.resolve("stderr");
            ProcessBuilder pb = new ProcessBuilder(command)
                    .redirectOutput(out.toFile())
                    .redirectError(err.toFile())
                    .redirectInput(stdin == null ? ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile())
                            : ProcessBuilder.Redirect.from(stdin.toFile()));
            TOOL_VARIABLES.forEach(pb.environment()::remove);
            pb.environment().putAll(env);
            return new Tool(pb.start(), out, err);
        }

        /** Runs to the end and returns the exit code (fails the test if it hangs). */
        int exitCode() throws InterruptedException {
            if (!process.waitFor(PATIENCE.toMillis(), TimeUnit.MILLISECONDS)) {
                process.destroyForcibly();
                throw new AssertionError("the tool did not exit within " + PATIENCE + "; stderr:\n" + stderr());
            }
            return process.exitValue();
        }

        long pid() {
            return process.pid();
        }

        String stdout() {
            return read(stdout);
        }

        String stderr() {
            return read(stderr);
        }

        /** The log, read as JSON lines (ENVOY_PREFLIGHT_LOG_FORMAT=json): message to time. */
        List<com.google.gson.JsonObject> jsonLog() {
            return stderr().lines().map(l -> com.google.gson.JsonParser.parseString(l).getAsJsonObject()).toList();
        }

        /** Milliseconds the tool itself logged between the first lines starting with from and to. */
        long loggedMillis(String from, String to) {
            return java.time.Duration.between(loggedAt(from), loggedAt(to)).toMillis();
        }

        private java.time.Instant loggedAt(String prefix) {
            return jsonLog().stream().filter(o -> o.get("msg").getAsString().startsWith(prefix)).findFirst()
                    .map(o -> java.time.Instant.parse(o.get("time").getAsString()))
                    .orElseThrow(() -> new AssertionError("no log line '" + prefix + "' in:\n" + stderr()));
        }

        /** The messages of the JSON log, one a line, as the text format would show them. */
        String messages() {
            StringBuilder b = new StringBuilder();
            for (var o : jsonLog()) b.append(o.get("msg").getAsString()).append('\n');
            return b.toString();
        }

        void signal(String name) {
            TestSupport.kill(name, pid());
        }

        @Override
        public void close() {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly();
        }
    }

    /**
     * The tool under a pseudo-terminal, as at a prompt: util-linux `script` makes the tool its
     * terminal's foreground process group; what the test types goes through the terminal.
     */
    static final class Terminal implements AutoCloseable {
        final Process script;
        final Path output;

        private Terminal(Process script, Path output) {
            this.script = script;
            this.output = output;
        }

        static Terminal start(Map<String, String> env, String... args) throws IOException {
            List<String> command = new ArrayList<>(javaCommand());
            command.addAll(List.of(args));
            String line = String.join(" ", command.stream().map(a -> "'" + a.replace("'", "'\\''") + "'").toList());
            Path output = Files.createTempFile("preflight-terminal", ".out");
            // exec: the tool leads the terminal's session itself, with no shell to catch Ctrl-C too
            ProcessBuilder pb = new ProcessBuilder("script", "-qfec", "exec " + line, "/dev/null")
                    .redirectErrorStream(true).redirectOutput(output.toFile());
            TOOL_VARIABLES.forEach(pb.environment()::remove);
            pb.environment().put("SHELL", "/bin/sh");
            pb.environment().putAll(env);
            return new Terminal(pb.start(), output);
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
            return read(output);
        }

        @Override
        public void close() {
            script.descendants().forEach(ProcessHandle::destroyForcibly);
            script.destroyForcibly();
        }
    }

    static String read(Path p) {
        try {
            return Files.exists(p) ? Files.readString(p, StandardCharsets.UTF_8) : "";
        } catch (IOException e) {
            throw new AssertionError(e);
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
