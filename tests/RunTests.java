///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//DEPS org.junit.jupiter:junit-jupiter:5.14.1
//DEPS org.junit.platform:junit-platform-launcher:1.14.1
//DEPS org.yaml:snakeyaml:2.5
//SOURCES ../EnvoyPreflight.java
//SOURCES ../examples/local/FakeEnvoy.java
//SOURCES TestSupport.java
//SOURCES UnitTests.java
//SOURCES IntegrationTests.java
//SOURCES ReliabilityTests.java
//SOURCES PollLeakTests.java
//SOURCES SidecarsTests.java
//SOURCES LauncherTests.java
//SOURCES ContainerTests.java
//SOURCES BadInputTests.java
//SOURCES EverySidecarTests.java
//SOURCES ExamplesTests.java
//SOURCES LogEventsTests.java
//SOURCES DocsTests.java
//SOURCES JobFinishesTests.java
//SOURCES RecipesTests.java
//SOURCES RealSidecarsTests.java
//RUNTIME_OPTIONS -Xmx512m
//DESCRIPTION Runs envoy-preflight's JUnit tests and prints "N passed, N failed, N skipped".

import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.TestTag;
import org.junit.platform.engine.discovery.DiscoverySelectors;
import org.junit.platform.engine.FilterResult;
import org.junit.platform.engine.discovery.ClassNameFilter;
import org.junit.platform.launcher.PostDiscoveryFilter;
import org.junit.platform.launcher.TagFilter;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

/**
 * Usage: {@code ./jbang test [fast | --tag TAG] [NAME-SUBSTRING]}: every test, or the fast ones (in-process
 * and unit tests: the inner loop), or those with the tag, or those whose name contains the substring.
 * Ends with the time spent per tag and per class, then the suite's own check that it left nothing
 * behind, then "N passed, N failed, N skipped" as the last line. Exits 1 if any test failed or none ran.
 */
public class RunTests {
    public static void main(String[] args) throws Exception {
        if (System.getProperty("preflight.suite") == null) System.exit(inAFolderOfItsOwn(args));
        Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
        Canary canary = Canary.start(tmp);

        Path jar = Path.of(RunTests.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        LauncherDiscoveryRequestBuilder request = LauncherDiscoveryRequestBuilder.request()
                .selectors(DiscoverySelectors.selectClasspathRoots(Set.of(jar)))
                // JUnit's own discovery would also pick up classes of the sourced scripts: only ours.
                .filters(ClassNameFilter.includeClassNamePatterns(".*Tests"))
                // Classes side by side, each one's tests one at a time (but for those marked
                // @Execution(CONCURRENT)): most tests wait, idle, for a JVM, a timeout or a fake. What needs
                // the CPU or takes it holds TestSupport.CPU, so a timing window never shares it with a compile.
                .configurationParameter("junit.jupiter.execution.parallel.enabled", "true")
                .configurationParameter("junit.jupiter.execution.parallel.mode.default", "same_thread")
                .configurationParameter("junit.jupiter.execution.parallel.mode.classes.default", "concurrent")
                .configurationParameter("junit.jupiter.execution.parallel.config.strategy", "fixed")
                .configurationParameter("junit.jupiter.execution.parallel.config.fixed.parallelism", "4")
                .configurationParameter("junit.jupiter.testclass.order.default", HeaviestFirst.class.getName());
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--tag" -> request.filters(TagFilter.includeTags(args[++i]));
                case "fast" -> request.filters(TagFilter.includeTags("fast"));
                default -> {
                    String only = args[i];
                    // classes stay in; each test method or parameterized template is kept by name
                    request.filters((PostDiscoveryFilter) d -> FilterResult.includedIf(
                            Set.of("engine", "class", "nested-class").contains(d.getUniqueId().getLastSegment().getType())
                                    || d.getUniqueId().toString().contains(only)));
                }
            }
        }

        AtomicInteger passed = new AtomicInteger();
        AtomicInteger failed = new AtomicInteger();
        AtomicInteger skipped = new AtomicInteger();
        Map<String, long[]> perClass = new ConcurrentHashMap<>(); // {ms, tests}
        Map<String, long[]> perTag = new ConcurrentHashMap<>();
        TestExecutionListener report = new TestExecutionListener() {
            private final Map<String, Long> started = new ConcurrentHashMap<>();

            @Override
            public void executionStarted(TestIdentifier id) {
                started.put(id.getUniqueId(), System.nanoTime());
            }

            @Override
            public void executionSkipped(TestIdentifier id, String reason) {
                if (!id.isTest()) return;
                skipped.incrementAndGet();
                System.out.println("SKIP " + name(id) + ": " + reason);
            }

            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                long ms = (System.nanoTime() - started.getOrDefault(id.getUniqueId(), System.nanoTime())) / 1_000_000;
                if (!id.isTest()) {
                    // a top-level class's time holds its tests' and its own set-up
                    if (id.getParentId().map(p -> p.contains("[engine:") && !p.contains("[class:")).orElse(false)
                            && id.getUniqueId().contains("[class:")) {
                        add(perClass, owner(id), ms);
                    }
                    if (result.getStatus() == TestExecutionResult.Status.FAILED) {
                        failed.incrementAndGet();
                        System.out.println("FAIL " + id.getDisplayName() + " (container)");
                        result.getThrowable().ifPresent(t -> t.printStackTrace(System.out));
                    }
                    return;
                }
                Set<String> tags = new java.util.TreeSet<>();
                id.getTags().stream().map(TestTag::getName).forEach(tags::add);
                if (tags.isEmpty()) tags.add("(untagged)");
                for (String tag : tags) add(perTag, tag, ms);
                if (result.getStatus() == TestExecutionResult.Status.SUCCESSFUL) {
                    passed.incrementAndGet();
                    System.out.println("PASS " + name(id) + " (" + ms + " ms)");
                } else if (result.getStatus() == TestExecutionResult.Status.ABORTED) {
                    // an assumption that does not hold here (no second JDK, no namespaces): skipped, with why
                    skipped.incrementAndGet();
                    System.out.println("SKIP " + name(id) + ": " + result.getThrowable().map(Throwable::getMessage).orElse("aborted"));
                } else {
                    failed.incrementAndGet();
                    System.out.println("FAIL " + name(id) + " (" + ms + " ms)");
                    result.getThrowable().ifPresent(t -> t.printStackTrace(System.out));
                }
            }

            private String owner(TestIdentifier id) {
                String uid = id.getUniqueId();
                int cls = uid.indexOf("[class:");
                return cls < 0 ? "" : uid.substring(cls + 7, uid.indexOf(']', cls));
            }

            private String name(TestIdentifier id) {
                String owner = owner(id);
                return (owner.isEmpty() ? "" : owner + ".") + id.getDisplayName();
            }
        };
        long t0 = System.nanoTime();
        // JBang's compile of the script, before any test: it takes the CPU, and the classes start side by side
        if (!List.of(args).contains("fast")) TestSupport.buildTheScript();
        LauncherFactory.create().execute(request.build(), report);
        long wall = (System.nanoTime() - t0) / 1_000_000;

        System.out.println();
        System.out.println("Time per tag (a test with two tags counts in both), then per class; " + wall / 1000
                + " s in all:");
        new TreeMap<>(perTag).forEach((tag, t) -> System.out.printf("  %-22s %4d tests %7.1f s%n", "@" + tag, t[1],
                t[0] / 1000.0));
        new TreeMap<>(perClass).forEach((cls, t) -> System.out.printf("  %-22s %12.1f s%n", cls, t[0] / 1000.0));

        String signalled = canary.end();
        if (!signalled.isEmpty()) {
            failed.incrementAndGet();
            System.out.println();
            System.out.println("FAIL the suite signalled a process it did not start (a tool run that signals by name"
                    + " must see only the test's own processes: TestSupport.PidNamespace): " + signalled);
        }
        List<String> left = leftBehind(tmp);
        if (!left.isEmpty()) {
            failed.incrementAndGet();
            System.out.println();
            System.out.println("FAIL the suite left these behind (each test must end what it starts and delete what it"
                    + " makes; ended and deleted now):");
            left.forEach(l -> System.out.println("  " + l));
        }
        deleteTree(tmp);

        System.out.println();
        System.out.println(passed + " passed, " + failed + " failed, " + skipped + " skipped");
        System.exit(failed.get() > 0 || passed.get() == 0 ? 1 : 0);
    }

    /**
     * Runs the suite in a JVM of its own whose temporary folder (java.io.tmpdir, read once at a JVM's
     * start) is a new one of this run's: every temporary file the tests make goes there, and it must
     * be empty at the end. Its name is the run's mark too (TestSupport.MARK). Returns the exit code.
     */
    static int inAFolderOfItsOwn(String[] args) throws Exception {
        Path tmp = Files.createTempDirectory("preflight-suite-");
        // others may pass through, as through /tmp: a test runs the launcher as another user from a folder in it
        Files.setPosixFilePermissions(tmp, java.nio.file.attribute.PosixFilePermissions.fromString("rwxr-xr-x"));
        List<String> command = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java")));
        command.addAll(java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments());
        command.addAll(List.of("-Djava.io.tmpdir=" + tmp, "-Dpreflight.suite=" + tmp.getFileName(),
                "-cp", System.getProperty("java.class.path"), RunTests.class.getName()));
        command.addAll(List.of(args));
        Process suite = new ProcessBuilder(command).inheritIO().start();
        // a TERM to this JVM alone (a CI's timeout) ends the suite too, and its folder
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            suite.descendants().forEach(ProcessHandle::destroyForcibly);
            suite.destroyForcibly();
            deleteTree(tmp);
        }));
        try {
            return suite.waitFor();
        } finally {
            suite.destroyForcibly();
            deleteTree(tmp); // the suite's own last step deleted it, unless it died first
        }
    }

    /**
     * What the run left: processes it started (this JVM's descendants; those that left its tree but
     * carry a mark of this run; those whose command line names this run's folder), and what is
     * still in its temporary folder. Each process is ended once listed.
     */
    static List<String> leftBehind(Path tmp) throws IOException, InterruptedException {
        String suite = tmp.getFileName().toString();
        // a process ended just now (a test's close) may take a moment to go: it is not left behind
        long until = System.nanoTime() + 2_000_000_000L;
        List<ProcessHandle> processes = running(tmp, suite);
        while (!processes.isEmpty() && System.nanoTime() < until) {
            Thread.sleep(50);
            processes = running(tmp, suite);
        }
        List<String> left = new ArrayList<>();
        for (ProcessHandle p : processes) {
            left.add("process " + p.pid() + ": " + p.info().commandLine().orElse(TestSupport.comm(p.pid())));
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
        }
        try (Stream<Path> files = Files.list(tmp)) {
            files.sorted().forEach(f -> left.add("file " + f));
        }
        return left;
    }

    private static List<ProcessHandle> running(Path tmp, String suite) {
        Set<ProcessHandle> found = new java.util.LinkedHashSet<>();
        ProcessHandle.current().descendants().filter(TestSupport::alive).forEach(found::add);
        found.addAll(TestSupport.marked(suite + "-", true));
        String folder = tmp.toString();
        ProcessHandle.allProcesses().filter(p -> p.pid() != ProcessHandle.current().pid()
                && commandLine(p).contains(folder) && TestSupport.alive(p)).forEach(found::add);
        return List.copyOf(found);
    }

    private static String commandLine(ProcessHandle p) {
        try {
            Path cmdline = Path.of("/proc/" + p.pid() + "/cmdline");
            return Files.readString(cmdline, java.nio.charset.StandardCharsets.ISO_8859_1);
        } catch (IOException e) {
            return ""; // gone
        }
    }

    static void deleteTree(Path path) {
        try {
            TestSupport.deleteTree(path);
        } catch (AssertionError e) {
            System.out.println(e.getMessage());
        }
    }

    /**
     * A process named pilot-agent that the suite starts and no test knows of, as a developer's local
     * mesh would have: a tool run of this suite that SIGINTs every pilot-agent it sees (or any process
     * by a name) outside a namespace of the test's own reaches it, and the suite fails saying so. It
     * tells a signal of this run's (its sender carries the run's mark) from one of another suite on
     * the same machine. Python, for the sender's pid (sigwaitinfo); without python3 there is none.
     */
    record Canary(Process process, Path log, String suite) {
        static final String SCRIPT = String.join("\n",
                "import os, signal, sys",
                "open('/proc/self/comm', 'w').write('pilot-agent')",
                "sigs = {signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM}",
                "signal.pthread_sigmask(signal.SIG_BLOCK, sigs)",
                "print('ready', flush=True)",
                "while True:",
                "    info = signal.sigwaitinfo(sigs)",
                "    try:",
                "        env = open('/proc/%d/environ' % info.si_pid, 'rb').read().split(b'\\0')",
                "    except OSError:",
                "        env = []",
                "    ours = any(e.startswith(sys.argv[1].encode()) for e in env)",
                "    print('%s %s from pid %d' % ('ours' if ours else 'other', signal.Signals(info.si_signo).name,",
                "          info.si_pid), flush=True)",
                "");

        static Canary start(Path tmp) throws Exception {
            Path log = tmp.resolve("canary.log");
            Process p;
            try {
                p = new ProcessBuilder("python3", "-c", SCRIPT, TestSupport.MARK + "=" + tmp.getFileName() + "-")
                        .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            } catch (IOException e) {
                System.out.println("(no python3: no canary pilot-agent checks that no signal leaves the tests)");
                Files.deleteIfExists(log);
                return new Canary(null, log, "");
            }
            TestSupport.await("the canary pilot-agent", () -> TestSupport.read(log).startsWith("ready")
                    || !p.isAlive());
            if (!p.isAlive()) {
                throw new AssertionError("the canary pilot-agent did not start: " + TestSupport.read(log));
            }
            return new Canary(p, log, tmp.getFileName().toString());
        }

        /** Ends it; the signals of this run that reached it, or "" if none. */
        String end() throws Exception {
            if (process == null) return "";
            process.destroyForcibly().waitFor();
            List<String> lines = TestSupport.read(log).lines().toList();
            Files.deleteIfExists(log);
            List<String> ours = lines.stream().filter(l -> l.startsWith("ours ")).map(l -> l.substring(5)).toList();
            long others = lines.stream().filter(l -> l.startsWith("other ")).count();
            if (others > 0) {
                System.out.println("(the canary pilot-agent got " + others + " signals from outside this run: another"
                        + " suite on this machine signals processes by name)");
            }
            return ours.isEmpty() ? "" : "pilot-agent (pid " + process.pid() + ") got " + String.join(", ", ours);
        }
    }

    /**
     * A class that runs alone (@Isolated) first, while it is short; then the classes with the most
     * tests that take the CPU (TestSupport.CPU, held alone): those tests run one after another, the
     * longest chain of the run, beside the rest.
     */
    public static final class HeaviestFirst implements org.junit.jupiter.api.ClassOrderer {
        @Override
        public void orderClasses(org.junit.jupiter.api.ClassOrdererContext context) {
            context.getClassDescriptors().sort(java.util.Comparator.comparingInt(
                    (org.junit.jupiter.api.ClassDescriptor d) -> d.isAnnotated(
                            org.junit.jupiter.api.parallel.Isolated.class) ? Integer.MIN_VALUE
                            : -TestSupport.takesTheCpu(d.getTestClass())));
        }
    }

    private static void add(Map<String, long[]> totals, String key, long ms) {
        totals.compute(key, (k, t) -> t == null ? new long[]{ms, 1} : new long[]{t[0] + ms, t[1] + 1});
    }
}
