import com.google.gson.JsonObject;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.parallel.ResourceAccessMode;
import org.junit.jupiter.api.parallel.ResourceLock;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.JarFile;
import java.util.jar.Manifest;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * "At home in any container": the app's JVM options, any locale, a read-only /tmp, IPv6 loopback,
 * closed streams, limits, PID 1's orphans, cold caches and @ arguments. One nested class per
 * point of the issue, against the real program (through the committed launcher where the point
 * is the launcher's). A test that compiles (JBang, javac, the jar's export) or starts many processes
 * at once takes the CPU alone (TestSupport.CPU); warm runs one after another share it. Each test has a
 * folder of its own, and a cache of its own where it builds: they run side by side.
 */
@org.junit.jupiter.api.parallel.Execution(org.junit.jupiter.api.parallel.ExecutionMode.CONCURRENT)
class ContainerTests {
    static final Path ROOT = TestSupport.repositoryRoot();
    static final Path LAUNCHER = ROOT.resolve("jbang");

    @TempDir
    Path dir;

    /** The tool through the committed launcher (warm), running app; env added to a clean copy of ours. */
    static TestSupport.Run launched(Map<String, String> env, String... app) throws Exception {
        return TestSupport.finish(TestSupport.launch(LAUNCHER, env, app));
    }

    /** A shell line run by bash, its output and code: for what needs a shell around the tool. */
    static TestSupport.Run bash(Map<String, String> env, String line) throws Exception {
        ProcessBuilder pb = TestSupport.cleanEnvironment(new ProcessBuilder("bash", "-c", line)).directory(ROOT.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        pb.environment().put("JBANG_NO_VERSION_CHECK", "true");
        pb.environment().putAll(env);
        return TestSupport.finish(pb.start());
    }

    /** The tool's JVM command line, quoted for bash. */
    static String toolCommand(List<String> jvmOptions) {
        List<String> command = new ArrayList<>(TestSupport.javaCommand());
        command.addAll(1, jvmOptions);
        return String.join(" ", command.stream().map(TestSupport::quote).toList());
    }

    /** Whether this machine lets us run command (a namespace, a mount): skip with the reason if not. */
    static void assumeWorks(String why, String... command) throws Exception {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        Assumptions.assumeTrue(p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0, why + ": " + out);
    }

    @BeforeAll
    static void theScriptIsBuilt() throws Exception {
        TestSupport.buildTheScript();
    }

    static final Path JAR_IMAGE = ROOT.resolve("examples/docker/Dockerfile.jar");

    /** Where the jar image's jar is built, once for the class; gone after it. */
    @TempDir
    static Path built;
    static Path imageJar;

    /**
     * The jar as examples/docker/Dockerfile.jar builds it, from the Dockerfile's own text: its RUN
     * step that exports the jar, run from the repository's root (which holds what the build stage
     * COPYs into its WORKDIR), with /out a folder of ours; the jar is the file the final stage COPYs.
     */
    static synchronized Path imageJar() throws Exception {
        if (imageJar != null && Files.exists(imageJar)) return imageJar;
        String dockerfile = Files.readString(JAR_IMAGE).replace("\\\n", " ");
        assertTrue(dockerfile.contains("COPY jbang jbang-catalog.json EnvoyPreflight.java ./"), dockerfile);
        String out = built.resolve("out").toString();
        var result = bash(Map.of(), buildStep().replace("/out/", out + "/"));
        assertEquals(0, result.code(), result.out() + result.err());
        Matcher copy = Pattern.compile("(?m)^COPY --from=build (\\S+) /opt/envoy-preflight/envoy-preflight\\.jar$")
                .matcher(dockerfile);
        assertTrue(copy.find(), "the final stage takes the jar from the build stage");
        imageJar = Path.of(copy.group(1).replace("/out/", out + "/"));
        return imageJar;
    }

    /** The jar image's build step that exports the jar: one RUN, its continuation lines joined. */
    static String buildStep() throws IOException {
        Matcher run = Pattern.compile("(?m)^RUN (\\./jbang export fatjar .*)$")
                .matcher(Files.readString(JAR_IMAGE).replace("\\\n", " "));
        assertTrue(run.find(), "a RUN step with jbang export fatjar in " + JAR_IMAGE);
        return run.group(1);
    }

    /** The jar image's entrypoint beside its jar, in a folder that stands for /opt/envoy-preflight. */
    Path entrypoint() throws Exception {
        Path image = Files.createDirectories(dir.resolve("image"));
        Files.copy(imageJar(), image.resolve("envoy-preflight.jar"));
        return Files.copy(ROOT.resolve("examples/docker/entrypoint.sh"), image.resolve("entrypoint.sh"));
    }

    /** The java of the installed JDK of that feature version; the test is skipped, saying why, where there is none. */
    static Path javaOf(int feature) {
        for (Path home : TestSupport.jdkFolders()) {
            var jdk = TestSupport.jdk(home);
            if (jdk.isPresent() && jdk.get().feature() == feature) return home.resolve("bin/java");
        }
        Assumptions.assumeTrue(false, "no JDK " + feature + " in " + TestSupport.JDK_FOLDERS);
        return null;
    }

    // --- 1. The app's JVM options stay the app's ---------------------------------------------------

    @Nested
    class JavaOptions {
        /** A Java agent that appends the main command of each JVM that loads it to the file it is given. */
        Path agent() throws Exception {
            Path src = Files.createDirectories(dir.resolve("agent-src"));
            Files.writeString(src.resolve("CountingAgent.java"), String.join("\n",
                    "public class CountingAgent {",
                    "  public static void premain(String file) throws Exception {",
                    "    java.nio.file.Files.writeString(java.nio.file.Path.of(file),",
                    "        System.getProperty(\"sun.java.command\") + \"\\n\",",
                    "        java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);",
                    "  }",
                    "}", ""));
            Files.writeString(src.resolve("Hello.java"),
                    "public class Hello { public static void main(String[] a) { System.out.println(\"hello from java\"); } }\n");
            var javac = javax.tools.ToolProvider.getSystemJavaCompiler();
            assertEquals(0, javac.run(null, null, null, "-d", src.toString(), src.resolve("CountingAgent.java").toString(),
                    src.resolve("Hello.java").toString()));
            Manifest manifest = new Manifest();
            manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
            manifest.getMainAttributes().putValue("Premain-Class", "CountingAgent");
            Path jar = dir.resolve("counting-agent.jar");
            try (var out = new JarOutputStream(Files.newOutputStream(jar), manifest)) {
                out.putNextEntry(new JarEntry("CountingAgent.class"));
                out.write(Files.readAllBytes(src.resolve("CountingAgent.class")));
                out.closeEntry();
            }
            return jar;
        }

        /** The JVMs that loaded the agent, one main command a line. */
        List<String> loads() throws IOException {
            Path loads = dir.resolve("loads");
            return Files.exists(loads) ? Files.readAllLines(loads) : List.of();
        }

        String javaApp() {
            return ProcessHandle.current().info().command().orElse("java") + " -cp " + dir.resolve("agent-src") + " Hello";
        }

        static final String SHOW = "printf '%s|' \"${JAVA_TOOL_OPTIONS-unset}\" \"${JDK_JAVA_OPTIONS-unset}\""
                + " \"${_JAVA_OPTIONS-unset}\" \"${ENVOY_PREFLIGHT_MOVED-unset}\"";

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void aGcChoiceForTheAppNeitherBreaksTheToolNorChangesOnTheWay() throws Exception {
            // Before: "Multiple garbage collectors selected", exit 1, nothing run.
            var r = launched(Map.of("JAVA_TOOL_OPTIONS", "-XX:+UseParallelGC", "_JAVA_OPTIONS", "-Xmx300m  -Dx='a b'"),
                    "sh", "-c", SHOW);
            assertEquals(0, r.code(), r.err());
            assertEquals("-XX:+UseParallelGC|unset|-Xmx300m  -Dx='a b'|unset|", r.out());
            assertEquals("", r.err());
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void emptyStaysEmptyAndUnsetStaysUnset() throws Exception {
            var r = launched(Map.of("JDK_JAVA_OPTIONS", ""), "sh", "-c", SHOW);
            assertEquals(0, r.code(), r.err());
            assertEquals("unset||unset|unset|", r.out());
        }

        @Test
        @ResourceLock(TestSupport.CPU)
        void anAgentMeantForTheAppLoadsInTheAppAloneOnTheLauncherPath() throws Exception {
            Path agent = agent();
            String option = "-javaagent:" + agent + "=" + dir.resolve("loads");
            for (String variable : List.of("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS", "_JAVA_OPTIONS")) {
                Files.deleteIfExists(dir.resolve("loads"));
                var r = launched(Map.of(variable, option), "sh", "-c", javaApp());
                assertEquals(0, r.code(), variable + ": " + r.err());
                assertEquals("hello from java\n", r.out(), variable);
                assertEquals(List.of("Hello"), loads(), variable + ": once, in the app; none in JBang's JVM or the tool's");
            }
        }

        @Test
        void theToolGivesBackWhatTheLauncherMovedAside() throws Exception {
            // The tool's side alone, started as the launcher starts it.
            try (var tool = TestSupport.Tool.start(TestSupport.env("ENVOY_PREFLIGHT_MOVED", "JAVA_TOOL_OPTIONS JDK_JAVA_OPTIONS",
                    "ENVOY_PREFLIGHT_APP_JAVA_TOOL_OPTIONS", "-Da=\u00e9 -Db", "JDK_JAVA_OPTIONS", "-Dstale=1"), "sh", "-c",
                    SHOW + "; env | grep -c ENVOY_PREFLIGHT_APP_ || true")) {
                assertEquals(0, tool.exitCode(), tool.stderr());
                assertEquals("-Da=\u00e9 -Db|unset|unset|unset|0\n", tool.stdout());
            }
        }

        @Test
        @Tag("launcher")
        @ResourceLock(TestSupport.CPU)
        void theJarImagesEntrypointKeepsTheAgentForTheApp() throws Exception {
            // No Docker here: the jar the image builds, beside its entrypoint, run as the image runs it.
            String dockerfile = Files.readString(JAR_IMAGE);
            assertTrue(dockerfile.contains("COPY examples/docker/entrypoint.sh /opt/envoy-preflight/entrypoint.sh"), dockerfile);
            assertTrue(dockerfile.contains("ENTRYPOINT [\"/opt/envoy-preflight/entrypoint.sh\"]"), dockerfile);
            var options = java.util.regex.Pattern.compile("PREFLIGHT_JAVA_OPTIONS=\"([^\"]*)\"").matcher(dockerfile);
            assertTrue(options.find());
            Path entrypoint = entrypoint();
            Path agent = agent();
            ProcessBuilder pb = TestSupport.cleanEnvironment(new ProcessBuilder(entrypoint.toString(), "sh", "-c",
                    javaApp() + "; " + SHOW)).redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
            pb.environment().put("PREFLIGHT_JAVA_OPTIONS", options.group(1));
            pb.environment().put("JAVA_TOOL_OPTIONS", "-javaagent:" + agent + "=" + dir.resolve("loads"));
            var r = TestSupport.finish(pb.start());
            assertEquals(0, r.code(), r.err());
            assertEquals("hello from java\n-javaagent:" + agent + "=" + dir.resolve("loads") + "|unset|unset|unset|", r.out());
            assertEquals(List.of("Hello"), loads(), "the tool's JVM did not load it");
            assertEquals(1, r.err().split("Picked up JAVA_TOOL_OPTIONS", -1).length - 1, "said by the app's JVM alone: " + r.err());
        }
    }

    /** The JVM options variables reach the app as the bytes they were, UTF-8 or not (docs/containers.md). */
    @Nested
    class JavaOptionsBytes {
        /** For bash: bytes that are not UTF-8 (ff fe), after a newline; and what od shows of them. */
        static final String NOT_UTF8 = "$'-Dx=a\\n\\xff\\xfe end'";
        static final String NOT_UTF8_HEX = " 2d 44 78 3d 61 0a ff fe 20 65 6e 64 \n";
        /** The app: each of the three variables in hex, one a line. */
        static final String SHOW_BYTES = "for v in \"$JAVA_TOOL_OPTIONS\" \"$JDK_JAVA_OPTIONS\" \"$_JAVA_OPTIONS\"; do"
                + " printf %s \"$v\" | od -An -v -tx1 | tr -s ' \\n' ' '; echo; done";
        static final String WHICH = "JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS, _JAVA_OPTIONS (ef bf bd is U+FFFD)";

        /** What the app shows with all three set to NOT_UTF8, started by the shell words start. */
        String shownBy(String start) throws Exception {
            var r = bash(Map.of(), "JAVA_TOOL_OPTIONS=" + NOT_UTF8 + " JDK_JAVA_OPTIONS=" + NOT_UTF8
                    + " _JAVA_OPTIONS=" + NOT_UTF8 + " " + start + " sh -c " + TestSupport.quote(SHOW_BYTES));
            assertEquals(0, r.code(), r.err());
            return r.out();
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void optionsThatAreNotUtf8ReachTheAppByteForByteThroughTheLauncher() throws Exception {
            assertEquals(NOT_UTF8_HEX.repeat(3), shownBy("./jbang EnvoyPreflight.java --"), WHICH);
        }

        @Test
        @Tag("launcher")
        @ResourceLock(TestSupport.CPU)
        void optionsThatAreNotUtf8ReachTheAppByteForByteThroughTheJarImagesEntrypoint() throws Exception {
            // plain `java -jar`, no PREFLIGHT_JAVA_OPTIONS: what the jar's manifest opens is enough
            assertEquals(NOT_UTF8_HEX.repeat(3), shownBy(TestSupport.quote(entrypoint().toString())), WHICH);
        }

        @Test
        void withoutJavaLangOpenedValidUtf8StaysExactAndOtherBytesBecomeReplacementCharacters() throws Exception {
            // As docs/containers.md says: the tool's JVM started by hand without --add-opens.
            List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java")));
            command.addAll(TestSupport.RUNTIME_OPTIONS);
            assertTrue(command.removeIf(o -> o.startsWith("--add-opens")), "the script opens java.lang");
            command.addAll(List.of("-cp", System.getProperty("java.class.path"), "EnvoyPreflight", "--"));
            String tool = String.join(" ", command.stream().map(TestSupport::quote).toList());
            var r = bash(Map.of(), "ENVOY_PREFLIGHT_MOVED='JAVA_TOOL_OPTIONS JDK_JAVA_OPTIONS'"
                    + " ENVOY_PREFLIGHT_APP_JAVA_TOOL_OPTIONS=" + NOT_UTF8
                    + " ENVOY_PREFLIGHT_APP_JDK_JAVA_OPTIONS='-Da=\u00e9 \u65e5\u672c' "
                    + tool + " sh -c " + TestSupport.quote(SHOW_BYTES));
            assertEquals(0, r.code(), r.err());
            assertEquals(" 2d 44 78 3d 61 0a ef bf bd ef bf bd 20 65 6e 64 \n"
                    + " 2d 44 61 3d c3 a9 20 e6 97 a5 e6 9c ac \n"
                    + "\n", r.out(), "JAVA_TOOL_OPTIONS, JDK_JAVA_OPTIONS (valid UTF-8), _JAVA_OPTIONS (unset)");
        }
    }

    // --- 2. Any locale -----------------------------------------------------------------------------

    @Nested
    class Locale {
        @Test
        void theSourcesAreAsciiSoThatTheyCompileInTheCLocale() throws IOException {
            for (Path source : List.of(ROOT.resolve("EnvoyPreflight.java"), ROOT.resolve("examples/local/FakeEnvoy.java"))) {
                byte[] bytes = Files.readAllBytes(source);
                for (int i = 0; i < bytes.length; i++) assertTrue(bytes[i] >= 0, source + ": a non-ASCII byte at " + i);
            }
        }

        @Test
        @ResourceLock(TestSupport.CPU)
        void aColdCompileAndRunInTheCLocalePassesNonAsciiArgumentsUnchanged() throws Exception {
            Map<String, String> c = new HashMap<>(Map.of("LC_ALL", "C", "JBANG_CACHE_DIR", dir.resolve("cache").toString()));
            var r = bash(c, "unset LANG LC_CTYPE; ./jbang EnvoyPreflight.java -- printf '[%s]' 'Z\u00fcrich \u65e5\u672c' x");
            assertEquals(0, r.code(), r.err());
            assertEquals("[Z\u00fcrich \u65e5\u672c][x]", r.out());
            assertFalse(r.err().contains("error"), r.err());
            r = bash(c, "unset LANG LC_CTYPE LC_ALL; ./jbang EnvoyPreflight.java -- sh -c 'printf \"[%s]\" \"$1\" \"${LC_ALL-unset}\"' sh \u00e9");
            assertEquals("[\u00e9][unset]", r.out(), "the app gets its own locale back: " + r.err());
        }
    }

    // --- 3. A read-only root filesystem ---------------------------------------------------------------

    @Nested
    class ReadOnlyTmp {
        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void aWarmRunNeedsNoWritableTmpThroughTheLauncherOrDirectly() throws Exception {
            assumeWorks("no private mount namespace with a read-only bind mount here", "unshare", "-m", "sh", "-c",
                    "mount --bind -o ro /tmp /tmp || { mount --bind /tmp /tmp && mount -o remount,ro,bind /tmp; }");
            assertEquals(0, launched(Map.of(), "true").code(), "warm");
            String readOnly = "{ mount --bind -o ro /tmp /tmp || { mount --bind /tmp /tmp && mount -o remount,ro,bind /tmp; }; }"
                    + " 2>/dev/null; touch /tmp/x 2>/dev/null && echo tmp is writable;";
            var r = bash(Map.of(), "exec unshare -m bash -c " + TestSupport.quote(readOnly + " ./jbang EnvoyPreflight.java -- echo hi"
                    + " && ./jbang --offline " + ROOT.resolve("EnvoyPreflight.java") + " -- echo offline"
                    + " && " + toolCommand(List.of()) + " -- echo direct"));
            assertEquals(0, r.code(), r.err());
            assertEquals("hi\noffline\ndirect\n", r.out());
        }
    }

    // --- 4. IPv6 loopback, and bounded name lookups ----------------------------------------------------

    @Nested
    class Addresses {
        @Test
        void aSidecarOnIpv6LoopbackAloneIsFoundByNameForPollsAndQuits() throws Exception {
            Path hosts = Files.writeString(dir.resolve("hosts"), "127.0.0.1 localhost\n::1 localhost\n");
            try (var server = new TestSupport.Recorder(new InetSocketAddress(InetAddress.getByName("::1"), 0), 200, null)
                    .leavesOnPost()) {
                String base = "http://localhost:" + server.port();
                var r = bash(Map.of("GENERIC_READY_ENDPOINTS", base + "/ready", "GENERIC_QUIT_ENDPOINTS", base + "/quit",
                        "ENVOY_PREFLIGHT_LOGGING", "true"),
                        toolCommand(List.of("-Djdk.net.hosts.file=" + hosts)) + " echo app");
                assertEquals(0, r.code(), r.err());
                assertEquals("app\n", r.out());
                String host = "localhost:" + server.port();
                assertEquals(List.of("GET /ready Host: " + host, "POST /quit Host: " + host), server.requests.stream()
                        .map(q -> q + " Host: " + q.headers().getFirst("Host")).toList(), r.err());
            }
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void aResolverThatNeverAnswersCostsNoMoreThanTheQuitTimeout() throws Exception {
            assumeWorks("no private mount namespace here", "unshare", "-m", "true");
            // A name server that takes every question and answers none.
            try (DatagramSocket silent = new DatagramSocket(new InetSocketAddress(InetAddress.getByName("127.0.0.77"), 53))) {
                Thread swallow = new Thread(() -> {
                    byte[] buffer = new byte[512];
                    while (!silent.isClosed()) {
                        try {
                            silent.receive(new DatagramPacket(buffer, buffer.length));
                        } catch (IOException e) {
                            return;
                        }
                    }
                });
                swallow.setDaemon(true);
                swallow.start();
                Path resolv = Files.writeString(dir.resolve("resolv.conf"), "nameserver 127.0.0.77\n");
                var r = bash(Map.of("GENERIC_QUIT_ENDPOINTS", "http://quit-sidecar.example:15020/quitquitquit",
                        "QUIT_REQUEST_TIMEOUT", "1s", "ENVOY_PREFLIGHT_LOGGING", "true", "ENVOY_PREFLIGHT_LOG_FORMAT", "json"),
                        "exec unshare -m bash -c " + TestSupport.quote("mount --bind " + resolv + " /etc/resolv.conf && exec "
                                + toolCommand(List.of()) + " true"));
                assertEquals(0, r.code(), r.err());
                JsonObject quit = TestSupport.event(r.err(), "quit");
                assertEquals("http://quit-sidecar.example:15020/quitquitquit", quit.get("url").getAsString());
                assertFalse(quit.get("ok").getAsBoolean(), quit.toString());
                assertTrue(quit.get("error").getAsString().contains("resolver"), "the name, not the request: " + quit);
                long ms = TestSupport.millisBetween(TestSupport.event(r.err(), "app-exit"), TestSupport.event(r.err(), "exit"));
                assertTrue(ms < 2000, "the quit took " + ms + " ms with a 1s timeout");
            }
        }
    }

    // --- 5. Closed standard streams ------------------------------------------------------------------

    @Nested
    class ClosedStreams {
        /** What the app's descriptors 0-2 are, read from outside while it runs: each a link target or "closed". */
        List<String> appStreams(String redirect, boolean launcher) throws Exception {
            String tool = launcher ? "./jbang EnvoyPreflight.java --" : toolCommand(List.of()) + " --";
            ProcessBuilder pb = TestSupport.cleanEnvironment(new ProcessBuilder("bash", "-c",
                    "exec " + tool + " sleep 3 " + redirect)).directory(ROOT.toFile()).redirectErrorStream(true)
                    .redirectOutput(dir.resolve("out").toFile());
            pb.environment().put("JBANG_NO_VERSION_CHECK", "true");
            Process p = pb.start();
            try {
                long[] app = {0};
                TestSupport.await("the app", () -> {
                    app[0] = p.descendants().filter(h -> h.info().command().orElse("").endsWith("/sleep"))
                            .mapToLong(ProcessHandle::pid).findFirst().orElse(0);
                    return app[0] != 0;
                });
                List<String> streams = new ArrayList<>();
                for (int fd = 0; fd < 3; fd++) {
                    Path link = Path.of("/proc/" + app[0] + "/fd/" + fd);
                    streams.add(Files.exists(link, java.nio.file.LinkOption.NOFOLLOW_LINKS)
                            ? Files.readSymbolicLink(link).toString() : "closed");
                }
                return streams;
            } finally {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
            }
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void aClosedStreamReachesTheAppClosedOrAsDevNullNeverAsAFileOfOurs() throws Exception {
            for (boolean launcher : List.of(true, false)) {
                for (int fd = 0; fd < 3; fd++) {
                    String redirect = fd + (fd == 0 ? "<&-" : ">&-");
                    String stream = appStreams(redirect, launcher).get(fd);
                    assertTrue(stream.equals("closed") || stream.equals("/dev/null"),
                            (launcher ? "launcher" : "direct") + ", " + redirect + ": the app got " + stream);
                }
            }
        }
    }

    // --- 6. Limits are the app's ----------------------------------------------------------------------

    @Nested
    class Limits {
        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void theAppGetsTheOpenFilesLimitTheToolWasStartedWith() throws Exception {
            var r = bash(Map.of(), "ulimit -Sn 1024; ./jbang EnvoyPreflight.java -- sh -c 'ulimit -Sn'; "
                    + toolCommand(List.of()) + " sh -c 'ulimit -Sn'");
            assertEquals(0, r.code(), r.err());
            assertEquals("1024\n1024\n", r.out());
        }
    }

    // --- 7. PID 1's orphans --------------------------------------------------------------------------

    @Nested
    class Pid1 {
        @org.junit.jupiter.api.BeforeEach
        void aPidNamespaceCanBeMade() throws Exception {
            assumeWorks("no PID namespace can be made here", "unshare", "--pid", "--fork", "--mount-proc", "true");
        }

        /** The tool as PID 1 of a fresh PID namespace, as a container's entrypoint. */
        String asPid1(String app) {
            return "unshare --pid --fork --mount-proc " + toolCommand(List.of()) + " sh -c " + TestSupport.quote(app);
        }

        static final String ZOMBIES = "grep -l '^State:.Z' /proc/[0-9]*/status 2>/dev/null | wc -l";

        @Test
        @ResourceLock(TestSupport.CPU)
        void twoHundredOrphansLeaveNoZombieASecondAfterTheyDie() throws Exception {
            String app = "for i in $(seq 200); do (sleep 0.2 &); done; "
                    // until every sleep has died (a zombie is dead), then the reaper's second
                    + "while grep -l '^Name:.sleep' /proc/[0-9]*/status 2>/dev/null | xargs -r grep -L '^State:.Z' 2>/dev/null | grep -q .;"
                    + " do sleep 0.05; done; echo \"dead: $(" + ZOMBIES + ")\"; sleep 1; echo \"left: $(" + ZOMBIES + ")\"";
            var r = bash(Map.of(), asPid1(app));
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().contains("\nleft: 0\n"), r.out() + r.err());
            assertEquals("", r.err());
        }

        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void runsWhoseAppExitsAsOrphansDieAtTheReapersRoundEachKeepTheAppsExitCode() throws Exception {
            // The reaper acts only at its rounds (at the app's start, then every PERIOD_MS), so a run
            // puts the app's code at stake only where the app exits as a round reaps its orphans.
            // A hundred runs of a 20 ms app all met the first round alone; ten aimed ones are enough:
            // their apps exit, with orphans dying around them, from 450 to 540 ms, 10 ms apart, so
            // that one of them exits within 5 ms of the second round wherever the JVM's start puts it.
            assertEquals(500, EnvoyPreflight.App.Orphans.PERIOD_MS, "the sweep is centred on the second round");
            // $2 ms: when the app exits, its orphans 10 ms before, with it, and 10 ms after
            String app = "for d in $(($2 - 10)) $2 $(($2 + 10)); do (sleep 0.$d &); done; sleep 0.$2; exit $1";
            var r = bash(Map.of(), "for i in $(seq 0 9); do " + asPid1(app) + " sh $((i + 3)) $((450 + 10 * i));"
                    + " echo $?; done");
            assertEquals(0, r.code(), r.err());
            List<String> expected = new ArrayList<>();
            for (int i = 0; i <= 9; i++) expected.add(String.valueOf(i + 3));
            assertEquals(expected, r.out().lines().toList(), r.err());
        }

        @Test
        void signalsAreRelayedAsPid1() throws Exception {
            var app = new TestSupport.SignalApp(dir);
            ProcessBuilder pb = TestSupport.cleanEnvironment(new ProcessBuilder("bash", "-c", "exec " + asPid1("exec "
                    + String.join(" ", java.util.Arrays.stream(app.command(7)).map(TestSupport::quote).toList()))))
                    .redirectErrorStream(true).redirectOutput(dir.resolve("out").toFile());
            Process unshare = pb.start();
            try {
                app.awaitReady();
                long tool = unshare.descendants().filter(h -> h.info().command().orElse("").endsWith("/java"))
                        .mapToLong(ProcessHandle::pid).findFirst().orElseThrow();
                TestSupport.kill("USR1", tool);
                app.awaitSignal("USR1");
                TestSupport.kill("TERM", tool);
                app.awaitSignal("TERM");
                app.stop();
                assertTrue(unshare.waitFor(30, TimeUnit.SECONDS));
                assertEquals(7, unshare.exitValue(), TestSupport.read(dir.resolve("out")));
                assertEquals(List.of("USR1", "TERM"), app.received());
            } finally {
                unshare.descendants().forEach(ProcessHandle::destroyForcibly);
                unshare.destroyForcibly();
            }
        }
    }

    // --- 8. The jar image's jar, built as the Dockerfile and the docs build it -----------------------

    @Nested
    @Tag("launcher")
    @ResourceLock(TestSupport.CPU)
    class ExportedJar {
        @ParameterizedTest(name = "{displayName}, JDK {0}")
        @ValueSource(ints = {17, 25})
        void asPid1UnderPlainJavaJarAHundredOrphansLeaveNoZombieAndTheAppsExitCodeStays(int feature) throws Exception {
            assumeWorks("no PID namespace can be made here", "unshare", "--pid", "--fork", "--mount-proc", "true");
            Path java = javaOf(feature);
            String app = "for i in $(seq 100); do (sleep 0.2 &); done; "
                    // until every sleep has died (a zombie is dead), then two of the reaper's rounds
                    + "while grep -l '^Name:.sleep' /proc/[0-9]*/status 2>/dev/null | xargs -r grep -L '^State:.Z'"
                    + " 2>/dev/null | grep -q .; do sleep 0.05; done; sleep 1;"
                    + " echo \"left: $(" + Pid1.ZOMBIES + ")\"; exit 7";
            var r = bash(Map.of(), "unshare --pid --fork --mount-proc " + TestSupport.quote(java.toString())
                    + " -jar " + TestSupport.quote(imageJar().toString()) + " --start-without-envoy -- sh -c "
                    + TestSupport.quote(app));
            assertEquals("left: 0\n", r.out(), r.err());
            assertEquals(7, r.code(), r.err());
            assertEquals("", r.err(), "no warning that orphans cannot be reaped");
        }

        @Test
        void theJarsManifestHasEveryEntryOfTheScriptsManifestLines() throws Exception {
            Map<String, String> expected = new java.util.LinkedHashMap<>();
            for (String line : Files.readAllLines(ROOT.resolve("EnvoyPreflight.java"))) {
                if (!line.startsWith("//MANIFEST ")) continue;
                for (String entry : line.substring(11).trim().split("\\s+")) {
                    expected.put(entry.substring(0, entry.indexOf('=')), entry.substring(entry.indexOf('=') + 1));
                }
            }
            assertFalse(expected.isEmpty(), "the script's //MANIFEST lines");
            try (JarFile jar = new JarFile(imageJar().toFile())) {
                Attributes main = jar.getManifest().getMainAttributes();
                expected.forEach((name, value) -> assertEquals(value, main.getValue(name), name));
                assertEquals("EnvoyPreflight", main.getValue(Attributes.Name.MAIN_CLASS));
            }
        }

        @Test
        void theDocsBuildTheJarWithTheDockerfilesOwnStep() throws Exception {
            String docs = Files.readString(ROOT.resolve("docs/containers.md"));
            String step = buildStep().replaceAll("\\s+", " ");
            boolean shown = Pattern.compile("(?s)```bash\n(.*?)```").matcher(docs).results().map(b -> b.group(1))
                    .anyMatch(block -> block.replace("\\\n", " ").replaceAll("\\s+", " ").strip().equals(step));
            assertTrue(shown, "docs/containers.md shows the build step of Dockerfile.jar as it is: " + step);
        }
    }

    /** The start-up figures the container docs and the images' comments give are the bench's. */
    @Nested
    class Figures {
        @Test
        void everyTimeInTheContainerDocsAndImagesIsTheBenchsAndNamesItsMachine() throws IOException {
            String performance = Files.readString(ROOT.resolve("docs/performance.md"));
            Matcher run = Pattern.compile("(?m)^(\\d{4}-\\d{2}-\\d{2}), (\\d+ cores \\([^)]*\\))").matcher(performance);
            assertTrue(run.find(), "docs/performance.md names the date and machine of its bench run");
            String table = String.join("\n", performance.lines().filter(l -> l.startsWith("|")).toList());
            Pattern time = Pattern.compile("(\\d+(?:\\.\\d+)?)(\\s*[-\u2013]\\s*\\d+(?:\\.\\d+)?)? (s|ms)\\b");
            for (String file : List.of("docs/containers.md", "examples/docker/Dockerfile.jar",
                    "examples/docker/Dockerfile")) {
                String text = Files.readString(ROOT.resolve(file));
                Matcher m = time.matcher(text);
                boolean any = false;
                while (m.find()) {
                    any = true;
                    String figure = "(?<![\\d.])" + Pattern.quote(m.group(1)) + "(?![\\d.])";
                    assertTrue(m.group(2) == null, file + ": '" + m.group() + "' is a range, not a bench figure");
                    assertTrue(Pattern.compile(figure).matcher(table).find(),
                            file + ": '" + m.group() + "' is not a figure of the bench's table in docs/performance.md");
                }
                if (any) {
                    assertTrue(text.contains(run.group(1)) && text.contains(run.group(2)), file + " gives times:"
                            + " it names the bench run's date and machine, " + run.group(1) + ", " + run.group(2));
                }
            }
        }
    }

    // --- 9. Cold caches --------------------------------------------------------------------------------

    @Nested
    @ResourceLock(TestSupport.CPU)
    class ColdCache {
        /**
         * One run builds under the launcher's lock; the others find it held, wait, then take it in turn,
         * each against the other waiters: four show both (eight, as before, cost 18 s of a 2-core machine).
         */
        @Test
        void fourFirstRunsAtOnceOnAnEmptyCacheAllRunTheirApp() throws Exception {
            Map<String, String> env = Map.of("JBANG_CACHE_DIR", dir.resolve("cache").toString());
            List<Process> runs = new ArrayList<>();
            for (int i = 0; i < 4; i++) runs.add(TestSupport.launch(LAUNCHER, env, "echo", "run " + i));
            for (int i = 0; i < 4; i++) {
                var r = TestSupport.finish(runs.get(i));
                assertEquals(0, r.code(), "run " + i + ": " + r.err());
                assertEquals("run " + i + "\n", r.out());
            }
            var later = launched(env, "echo", "later");
            assertEquals(0, later.code(), later.err());
            assertEquals("later\n", later.out());
            assertEquals("", later.err());
        }
    }

    // --- 10. @ arguments are the app's -----------------------------------------------------------------

    @Nested
    class AtArguments {
        @Test
        @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
        void atFilesAndEmptyArgumentsReachTheAppVerbatimOnTheLauncherPath() throws Exception {
            Path body = Files.writeString(dir.resolve("body.json"), "{\"a\": 1}\n");
            var r = launched(Map.of(), "printf", "[%s]", "@" + body, "@@x", "@", "", "@@", "x@y", "a b", "");
            assertEquals(0, r.code(), r.err());
            assertEquals("[@" + body + "][@@x][@][][@@][x@y][a b][]", r.out());
        }
    }
}
