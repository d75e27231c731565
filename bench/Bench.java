///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//SOURCES ../examples/local/FakeEnvoy.java
//RUNTIME_OPTIONS -Xmx256m
//DESCRIPTION envoy-preflight's benchmark: start-up, footprint, detection lag, exit and relay
//DESCRIPTION latency, soak. Loopback only; prints one markdown table. Not a test: CI never runs it.

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * Usage, from the repository's root: {@code ./jbang bench/Bench.java [--runs N] [--only LETTERS]}.
 * Every scenario runs several times after a warm-up; the table gives median and max of each figure,
 * the reference it is compared with, the ratio, and the target. Timings are wall-clock on a shared
 * machine: read them as medians and ratios from one run, side by side, never as absolutes.
 */
public class Bench {
    static Path root;
    static Path out;
    static Path jar;
    static Path classes;
    static String java = ProcessHandle.current().info().command().orElse("java");
    static List<String> toolOptions;
    static int runs = 10;
    static final List<String> table = new ArrayList<>();

    public static void main(String[] args) throws Exception {
        String only = "abcdefghij";
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--runs" -> runs = Integer.parseInt(args[++i]);
                case "--only" -> only = args[++i];
                default -> throw new IllegalArgumentException("usage: Bench [--runs N] [--only LETTERS]");
            }
        }
        root = Path.of("").toAbsolutePath();
        while (!Files.exists(root.resolve("jbang-catalog.json"))) root = root.getParent();
        out = Files.createDirectories(root.resolve("bench/out"));
        prepare();

        table.add("| # | figure | median | max | compared with | its median | ratio | target | |");
        table.add("|---|---|---|---|---|---|---|---|---|");
        if (only.contains("a")) startThroughJBang();
        if (only.contains("b")) startExportedJar();
        if (only.contains("c")) residentMemory();
        if (only.contains("d")) detectionLag();
        if (only.contains("e")) exitLatency();
        if (only.contains("f")) relayLatency();
        if (only.contains("g")) soak();
        if (only.contains("h")) httpClients();
        if (only.contains("i")) idleCpuAsPid1();
        if (only.contains("j")) warmRunWithTheLock();

        String header = "envoy-preflight benchmark, " + LocalDate.now() + ", " + machine() + ", " + runs
                + " runs per figure after a warm-up; tool JVM options: " + String.join(" ", toolOptions);
        System.out.println();
        System.out.println(header);
        System.out.println();
        table.forEach(System.out::println);
        try (PrintWriter w = new PrintWriter(Files.newBufferedWriter(out.resolve("latest.md")))) {
            w.println(header);
            w.println();
            table.forEach(w::println);
        }
    }

    // --- preparation -----------------------------------------------------------------------------

    /** The exported fat jar, the reference class compiled, and the tool's own JVM options. */
    static void prepare() throws Exception {
        String header = Files.readString(root.resolve("EnvoyPreflight.java"));
        Matcher m = Pattern.compile("(?m)^//RUNTIME_OPTIONS (.*)$").matcher(header);
        toolOptions = new ArrayList<>();
        while (m.find()) toolOptions.addAll(List.of(m.group(1).trim().split("\\s+")));
        jar = out.resolve("envoy-preflight.jar");
        say("exporting the fat jar (jbang export fatjar)");
        mustRun(List.of(root.resolve("jbang").toString(), "export", "fatjar", "--force", "-O", jar.toString(),
                "EnvoyPreflight.java"));
        classes = Files.createDirectories(out.resolve("classes"));
        String javac = Path.of(java).resolveSibling("javac").toString();
        mustRun(List.of(javac, "-d", classes.toString(), "-cp", jar.toString(),
                root.resolve("bench/EmptyTrue.java").toString(), root.resolve("bench/HttpClients.java").toString()));
        say("warming JBang's cache for both scripts");
        mustRun(jbang("EnvoyPreflight.java", "/bin/true"));
        mustRun(jbang("bench/EmptyTrue.java", "/bin/true"));
    }

    static List<String> jbang(String script, String... args) {
        List<String> cmd = new ArrayList<>(List.of(root.resolve("jbang").toString(), script));
        cmd.addAll(List.of(args));
        return cmd;
    }

    static List<String> toolJar(String... args) {
        List<String> cmd = new ArrayList<>(List.of(java));
        cmd.addAll(toolOptions);
        cmd.addAll(List.of("-jar", jar.toString()));
        cmd.addAll(List.of(args));
        return cmd;
    }

    static List<String> bare(String... args) {
        List<String> cmd = new ArrayList<>(List.of(java));
        cmd.addAll(toolOptions);
        cmd.addAll(List.of("-cp", classes.toString(), "EmptyTrue"));
        cmd.addAll(List.of(args));
        return cmd;
    }

    // --- a, b: start-up ------------------------------------------------------------------------------

    static void startThroughJBang() throws Exception {
        // a1 against a2: the path users take (the catalog alias, the launcher as shipped) against stock
        // JBang (its jar with its default JVM options and no archive, through the same exit-255
        // protocol: the launcher with JBANG_LAUNCHER_TUNE=false) on the empty no-deps script.
        say("a1/a2: ./jbang envoy-preflight /bin/true vs stock JBang on the empty no-deps script");
        mustRun(jbang("envoy-preflight", "/bin/true")); // the first run on the alias path makes the archive
        List<String> stock = new ArrayList<>(List.of("env", "JBANG_LAUNCHER_TUNE=false"));
        stock.addAll(jbang("bench/EmptyTrue.java", "/bin/true"));
        List<Double>[] u = timeInterleaved(jbang("envoy-preflight", "/bin/true"), stock);
        ratioRow("a1", "start to exit, `./jbang envoy-preflight /bin/true` (catalog alias, launcher as shipped)", u[0],
                "a2: stock JBang (default JVM options, no archive) on the empty no-deps script", u[1], 0.65);
        List<String> stockAlias = new ArrayList<>(List.of("env", "JBANG_LAUNCHER_TUNE=false"));
        stockAlias.addAll(jbang("envoy-preflight", "/bin/true"));
        List<Double>[] v = timeInterleaved(jbang("envoy-preflight", "/bin/true"), stockAlias);
        table.add(String.format(Locale.ROOT, "| a1 | the same alias run by stock JBang: %s s median; the launcher's JVM options"
                + " and archive save %.0f%% | | | | | | information | |", fmt(median(v[1])),
                100 * (1 - median(v[0]) / median(v[1]))));
        // An installed jbang (which the launcher execs) gets only what JBANG_JAVA_OPTIONS says; it reaches
        // both JVMs, so only options safe for both: C1 and SerialGC, which the script's JVM has anyway.
        List<String> installed = new ArrayList<>(List.of("env", "JBANG_LAUNCHER_TUNE=false",
                "JBANG_JAVA_OPTIONS=-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"));
        installed.addAll(jbang("envoy-preflight", "/bin/true"));
        List<Double>[] w = timeInterleaved(installed, stockAlias);
        table.add(String.format(Locale.ROOT, "| a1 | an installed jbang with JBANG_JAVA_OPTIONS=\"-XX:TieredStopAtLevel=1"
                + " -XX:+UseSerialGC\" on the alias: %s s median, %.0f%% less than without | | | | | | information | |",
                fmt(median(w[0])), 100 * (1 - median(w[0]) / median(w[1]))));
        firstRunOnAFreshClone();
        say("a: ./jbang EnvoyPreflight.java /bin/true vs ./jbang bench/EmptyTrue.java /bin/true");
        List<Double>[] t = timeInterleaved(jbang("EnvoyPreflight.java", "/bin/true"),
                jbang("bench/EmptyTrue.java", "/bin/true"));
        ratioRow("a", "start to exit, `./jbang EnvoyPreflight.java /bin/true`, no admin API", t[0],
                "`./jbang` on an empty script running /bin/true", t[1], 1.05);
        // The same empty script with the tool's //DEPS lines: what JBang's dependency handling costs.
        Path withDeps = out.resolve("EmptyTrueWithDeps.java");
        String deps = String.join("\n", Files.readAllLines(root.resolve("EnvoyPreflight.java")).stream()
                .filter(l -> l.startsWith("//DEPS ")).toList());
        Files.writeString(withDeps, Files.readString(root.resolve("bench/EmptyTrue.java"))
                .replace("//JAVA 17+", "//JAVA 17+\n" + deps).replace("class EmptyTrue", "class EmptyTrueWithDeps"));
        List<Double>[] d = timeInterleaved(jbang("EnvoyPreflight.java", "/bin/true"),
                jbang(withDeps.toString(), "/bin/true"));
        ratioRow("a", "the same, against the empty script with the tool's `//DEPS` lines", d[0],
                "`./jbang` on that script running /bin/true", d[1], 1.05);
    }

    /** a3: a fresh clone with empty caches: JBang bootstrapped with Maven, picocli and Gson resolved, compiled. */
    static void firstRunOnAFreshClone() throws Exception {
        say("a3: the first run on a fresh clone with empty caches (this fetches from Maven Central)");
        Path fresh = Files.createTempDirectory("bench-fresh-clone");
        mustRun(List.of("git", "clone", "-q", root.toString(), fresh.resolve("clone").toString()));
        Map<String, String> empty = Map.of("JBANG_DIR", fresh.resolve("jbang-home").toString(),
                "JBANG_REPO", fresh.resolve("jbang-repo").toString(),
                "MAVEN_OPTS", "-Dmaven.repo.local=" + fresh.resolve("m2"));
        List<String> alias = List.of(fresh.resolve("clone/jbang").toString(), "envoy-preflight", "/bin/true");
        List<Double> first = new ArrayList<>();
        List<Double> second = new ArrayList<>();
        for (List<Double> which : List.of(first, second)) {
            long t0 = System.nanoTime();
            ProcessBuilder pb = new ProcessBuilder(alias).directory(fresh.resolve("clone").toFile())
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).redirectError(out.resolve("a3-stderr.txt").toFile());
            pb.environment().put("JBANG_NO_VERSION_CHECK", "true");
            pb.environment().putAll(empty);
            if (pb.start().waitFor() != 0) throw new IllegalStateException("a3 failed: see bench/out/a3-stderr.txt");
            which.add((System.nanoTime() - t0) / 1e9);
        }
        table.add(row("a3", "first run on a fresh clone, empty caches: JBang bootstrapped with Maven, picocli"
                + " and Gson resolved, compiled, archives made (one run)", first, "the second run", second,
                "reported", true));
    }

    static void startExportedJar() throws Exception {
        say("b: java -jar envoy-preflight.jar /bin/true vs a bare class, same JVM and options");
        List<Double>[] t = timeInterleaved(toolJar("/bin/true"), bare("/bin/true"));
        ratioRow("b", "start to exit, exported fat jar with `java`, /bin/true", t[0],
                "bare Java class running /bin/true, same JVM and flags", t[1], 1.5);
        // As docs/containers.md suggests for images: an AppCDS archive made once at build time.
        Path archive = out.resolve("envoy-preflight.jsa");
        Files.deleteIfExists(archive);
        List<String> dump = toolJar("/bin/true");
        dump.add(1, "-XX:ArchiveClassesAtExit=" + archive);
        mustRun(dump);
        List<String> withArchive = toolJar("/bin/true");
        withArchive.add(1, "-XX:SharedArchiveFile=" + archive);
        List<Double>[] c = timeInterleaved(withArchive, bare("/bin/true"));
        ratioRow("b", "the same jar with an AppCDS archive made at image build", c[0],
                "the bare class, no archive", c[1], 1.5);
    }

    /** Runs a and b alternately (so that drift hits both alike); wall seconds of each. */
    @SuppressWarnings("unchecked")
    static List<Double>[] timeInterleaved(List<String> tool, List<String> reference) throws Exception {
        for (int i = 0; i < 2; i++) {
            timeRun(tool);
            timeRun(reference);
        }
        List<Double> a = new ArrayList<>();
        List<Double> b = new ArrayList<>();
        for (int i = 0; i < runs; i++) {
            a.add(timeRun(tool));
            b.add(timeRun(reference));
        }
        return new List[]{a, b};
    }

    static double timeRun(List<String> cmd) throws Exception {
        long t0 = System.nanoTime();
        mustRun(cmd);
        return (System.nanoTime() - t0) / 1e9;
    }

    // --- c: memory ---------------------------------------------------------------------------------

    static void residentMemory() throws Exception {
        say("c: VmRSS while the app (sleep) runs, after waiting for the fake admin");
        List<Double> tool = new ArrayList<>();
        List<Double> ref = new ArrayList<>();
        for (int i = 0; i < Math.max(3, runs / 2) + 1; i++) {
            try (FakeEnvoy fake = FakeEnvoy.start(0, Duration.ofMillis(300))) {
                double t = rssWhileSleeping(toolJar("sleep", "30"), Map.of("ENVOY_ADMIN_API", fake.url().toString(),
                        "NEVER_KILL_ISTIO", "true"));
                double r = rssWhileSleeping(bare("sleep", "30"), Map.of());
                if (i > 0) { // the first pair is the warm-up
                    tool.add(t);
                    ref.add(r);
                }
            }
        }
        ratioRow("c", "VmRSS (MB) of the tool's JVM while the app runs, after a full wait-and-start", tool,
                "the bare Java class waiting on `sleep`", ref, 1.15);
    }

    static double rssWhileSleeping(List<String> cmd, Map<String, String> env) throws Exception {
        Process p = start(cmd, env);
        try {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (p.descendants().noneMatch(h -> h.info().command().orElse("").endsWith("sleep"))) {
                if (System.nanoTime() > until) throw new IllegalStateException("the app never started");
                Thread.sleep(10);
            }
            Thread.sleep(500); // let start-up garbage settle as it would while a Job runs
            return rssKb(p.pid()) / 1024.0;
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            p.waitFor();
        }
    }

    // --- d: detection lag --------------------------------------------------------------------------

    static void detectionLag() throws Exception {
        // The last case is a ready endpoint alone (a Linkerd-like sidecar, no admin API).
        for (long[] c : new long[][]{{500, 0}, {5_000, 0}, {30_000, 0}, {5_000, 1}}) {
            long liveAfterMs = c[0];
            boolean readyEndpoint = c[1] == 1;
            say("d: detection lag, " + (readyEndpoint ? "ready endpoint 2xx" : "LIVE") + " after " + liveAfterMs + " ms");
            // Short waits one at a time, so that JVM start-up is over before LIVE; long ones side by side.
            boolean parallel = liveAfterMs >= 5_000;
            int trials = Math.max(3, runs / 2);
            List<double[]> results = Collections.synchronizedList(new ArrayList<>());
            List<Thread> threads = new ArrayList<>();
            for (int i = 0; i < trials; i++) {
                Thread t = new Thread(() -> {
                    try {
                        results.add(lagOnce(liveAfterMs, readyEndpoint));
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                });
                t.start();
                if (!parallel) t.join();
                threads.add(t);
            }
            for (Thread t : threads) t.join();
            List<Double> lags = results.stream().map(r -> r[0]).toList();
            List<Double> polls = results.stream().map(r -> r[1]).toList();
            table.add(String.format(Locale.ROOT, "| d | detection lag (ms), %s after %s s; polls: median %.0f, max %.0f |"
                            + " %.0f | %.0f | \u2014 | | | max \u2264 300 ms | %s |",
                    readyEndpoint ? "a ready endpoint (`GENERIC_READY_ENDPOINTS` alone) answers 2xx" : "LIVE",
                    liveAfterMs / 1000.0 + "",
                    median(polls), max(polls), median(lags), max(lags), max(lags) <= 300 ? "met" : "**not met**"));
        }
    }

    /** {lag in ms from the fake turning ready to the app's start, number of polls}. */
    static double[] lagOnce(long liveAfterMs, boolean readyEndpoint) throws Exception {
        Path stamp = Files.createTempFile(out, "lag", ".txt");
        try (FakeEnvoy fake = FakeEnvoy.start(0, Duration.ofMillis(liveAfterMs)).withGenericSidecar(0)) {
            Process p = start(toolJar("bash", "-c", "echo $EPOCHREALTIME > '" + stamp + "'"), readyEndpoint
                    ? Map.of("GENERIC_READY_ENDPOINTS", fake.genericUrl() + "/ready", "NEVER_KILL_ISTIO", "true")
                    : Map.of("ENVOY_ADMIN_API", fake.url().toString(), "NEVER_KILL_ISTIO", "true"));
            if (p.waitFor() != 0) throw new IllegalStateException("tool exited " + p.exitValue());
            double lagMs = (epochMicros(Files.readString(stamp)) - micros(fake.liveAt())) / 1000.0;
            String path = readyEndpoint ? "/ready" : "/server_info";
            long polls = fake.requests().stream().filter(r -> r.path().equals(path)).count();
            return new double[]{lagMs, polls};
        } finally {
            Files.deleteIfExists(stamp);
        }
    }

    // --- e: exit latency ---------------------------------------------------------------------------

    static void exitLatency() throws Exception {
        say("e: exit latency with two generic endpoints and an Istio quit API");
        List<Double> ms = new ArrayList<>();
        for (int i = 0; i < runs + 2; i++) {
            Path stamp = Files.createTempFile(out, "exit", ".txt");
            try (FakeEnvoy fake = FakeEnvoy.start(0, Duration.ZERO).withPilotAgent(0)) {
                fake.override("/drain/a", x -> FakeEnvoy.reply(x, 200, "text/plain", "ok\n"));
                fake.override("/drain/b", x -> FakeEnvoy.reply(x, 200, "text/plain", "ok\n"));
                Process p = start(toolJar("bash", "-c", "echo $EPOCHREALTIME > '" + stamp + "'"), Map.of(
                        "ENVOY_ADMIN_API", fake.url().toString(), "ISTIO_QUIT_API", fake.pilotAgentUrl().toString(),
                        "GENERIC_QUIT_ENDPOINTS", fake.url() + "/drain/a," + fake.url() + "/drain/b"));
                p.waitFor();
                long exited = micros(Instant.now());
                if (p.exitValue() != 0 || fake.requests().stream().filter(r -> r.method().equals("POST")).count() != 3) {
                    throw new IllegalStateException("exit " + p.exitValue() + ", requests " + fake.requests());
                }
                if (i >= 2) ms.add((exited - epochMicros(Files.readString(stamp))) / 1000.0);
            } finally {
                Files.deleteIfExists(stamp);
            }
        }
        table.add(row("e", "exit latency (ms): app exit to the tool's exit, 3 quit requests", ms, null, null,
                "median \u2264 50 ms", median(ms) <= 50));
    }

    // --- f: relay latency --------------------------------------------------------------------------

    static void relayLatency() throws Exception {
        say("f: relay latency of TERM and USR1");
        Path dir = Files.createTempDirectory(out, "relay");
        Path app = dir.resolve("app.sh");
        Files.writeString(app, String.join("\n", "#!/usr/bin/env bash",
                "d=$1; mkfifo \"$d/fifo\"; exec 9<>\"$d/fifo\"",
                "trap 'echo USR1 $EPOCHREALTIME >> \"$d/got\"' USR1",
                "trap 'echo TERM $EPOCHREALTIME >> \"$d/got\"; exit 0' TERM",
                "echo ready > \"$d/ready\"",
                "while :; do read -t 1 -u 9 || true; done", ""));
        app.toFile().setExecutable(true);
        // The sender stamps the time itself, just before its builtin kill: no fork in between.
        Process sender = new ProcessBuilder("bash", "-c",
                "while read sig pid; do echo $EPOCHREALTIME; kill -s $sig $pid; done").start();
        var toSender = new PrintWriter(sender.getOutputStream(), true);
        var fromSender = new BufferedReader(new InputStreamReader(sender.getInputStream()));
        List<Double> usr1 = new ArrayList<>();
        List<Double> term = new ArrayList<>();
        for (int run = 0; run < Math.max(3, runs / 2) + 1; run++) {
            Files.deleteIfExists(dir.resolve("got"));
            Files.deleteIfExists(dir.resolve("ready"));
            Files.deleteIfExists(dir.resolve("fifo"));
            Process p = start(toolJar(app.toString(), dir.toString()), Map.of());
            await(() -> Files.exists(dir.resolve("ready")));
            for (int k = 0; k < 6; k++) {
                String sig = k < 5 ? "USR1" : "TERM";
                int before = lines(dir.resolve("got")).size();
                toSender.println(sig + " " + p.pid());
                long sent = epochMicros(fromSender.readLine());
                await(() -> lines(dir.resolve("got")).size() > before);
                String[] got = lines(dir.resolve("got")).get(before).split(" ");
                double ms = (epochMicros(got[1]) - sent) / 1000.0;
                if (run > 0) (sig.equals("TERM") ? term : usr1).add(ms); // run 0 is the warm-up
                Thread.sleep(100);
            }
            p.waitFor(10, TimeUnit.SECONDS);
        }
        sender.destroy();
        table.add(row("f", "relay latency (ms): TERM sent to the tool until the app's trap runs", term, null, null,
                "median \u2264 20 ms", median(term) <= 20));
        table.add(row("f", "relay latency (ms): USR1 sent to the tool until the app's trap runs", usr1, null, null,
                "median \u2264 20 ms", median(usr1) <= 20));
    }

    // --- g: soak -----------------------------------------------------------------------------------

    static void soak() throws Exception {
        say("g: soak, 10 000 polls of a never-LIVE admin API, pauses capped at 1 ms");
        List<Double> growth = new ArrayList<>();
        List<Double> at1000 = new ArrayList<>();
        for (int run = 0; run < 3; run++) {
            try (FakeEnvoy fake = FakeEnvoy.start(0, Duration.ofDays(1))) {
                Process p = start(toolJar("true"), Map.of("ENVOY_ADMIN_API", fake.url().toString(),
                        "ENVOY_PREFLIGHT_POLL_MAX_INTERVAL", "1ms", "NEVER_KILL_ISTIO", "true"));
                LongSupplier polls = () -> fake.requests().size();
                await(() -> polls.getAsLong() >= 1_000);
                long rss1000 = rssKb(p.pid());
                await(() -> polls.getAsLong() >= 10_000);
                long rss10000 = rssKb(p.pid());
                p.destroy();
                p.waitFor();
                at1000.add(rss1000 / 1024.0);
                growth.add((rss10000 - rss1000) / 1024.0);
                say(String.format(Locale.ROOT, "g: run %d: VmRSS %d kB at poll 1000, %d kB at poll 10000", run,
                        rss1000, rss10000));
            }
        }
        table.add(row("g", "RSS growth (MB) from poll 1 000 to poll 10 000", growth, "RSS at poll 1 000 (MB)",
                at1000, "growth < 2 MB", max(growth) < 2));
    }

    // --- h: which HTTP client ----------------------------------------------------------------------

    static void httpClients() throws Exception {
        say("h: one readiness poll with each HTTP client, each in a fresh JVM");
        try (FakeEnvoy fake = FakeEnvoy.start(0, Duration.ZERO)) {
            for (String mode : List.of("tool", "urlconnection", "httpclient")) {
                Map<String, List<Double>> figures = new HashMap<>();
                for (int i = 0; i < Math.max(3, runs / 2) + 1; i++) {
                    List<String> cmd = new ArrayList<>(List.of(java));
                    cmd.addAll(toolOptions);
                    cmd.addAll(List.of("-cp", classes + ":" + jar, "HttpClients", mode, fake.url() + "/server_info"));
                    String line = mustRun(cmd).strip();
                    if (i == 0) continue;
                    for (String kv : line.split(" ")) {
                        String[] p = kv.split("=");
                        figures.computeIfAbsent(p[0], k -> new ArrayList<>()).add(Double.parseDouble(p[1]));
                    }
                }
                table.add(String.format(Locale.ROOT, "| h | one poll with %s: classes loaded %.0f, threads %.0f,"
                                + " VmRSS %.1f MB, first request %.0f ms (medians) | | | | | | information | |",
                        mode.equals("tool") ? "the tool's Http (HttpURLConnection + deadline)" : mode.equals("urlconnection")
                                ? "HttpURLConnection" : "java.net.http.HttpClient",
                        median(figures.get("classes")), median(figures.get("threads")),
                        median(figures.get("rssKB")) / 1024, median(figures.get("ms"))));
            }
        }
    }

    // --- i: idle CPU as PID 1 (the orphan reaper) -------------------------------------------------------

    static void idleCpuAsPid1() throws Exception {
        say("i: CPU the tool's JVM uses while the app sleeps, as PID 1 (reaping) and not");
        List<Double> pid1 = new ArrayList<>();
        List<Double> plain = new ArrayList<>();
        List<String> asPid1 = new ArrayList<>(List.of("unshare", "--pid", "--fork", "--mount-proc"));
        asPid1.addAll(toolJar("sleep", "13"));
        for (int i = 0; i < Math.max(3, runs / 3); i++) {
            pid1.add(cpuPercentWhileSleeping(asPid1));
            plain.add(cpuPercentWhileSleeping(toolJar("sleep", "13")));
        }
        table.add(String.format(Locale.ROOT, "| i | CPU (%% of a core) of the tool's JVM as PID 1 while the app sleeps,"
                        + " from 2 s to 12 s after the start | %.3f | %.3f | the same, not PID 1 (no reaper) | %.3f | | ≤ 0.5%%"
                        + " | %s |", median(pid1), max(pid1), median(plain), median(pid1) <= 0.5 ? "met" : "**not met**"));
    }

    /** User and system CPU of the tool's JVM (below cmd) from 2 s to 12 s after its start, in % of a core. */
    static double cpuPercentWhileSleeping(List<String> cmd) throws Exception {
        Process p = start(cmd, Map.of());
        try {
            Thread.sleep(2000);
            ProcessHandle jvm = Stream.concat(Stream.of(p.toHandle()), p.descendants())
                    .filter(h -> h.info().command().orElse("").endsWith("/java")).findFirst().orElseThrow();
            long before = cpuTicks(jvm.pid());
            Thread.sleep(10_000);
            return (cpuTicks(jvm.pid()) - before) / 100.0 / 10 * 100; // USER_HZ is 100 on Linux: 0.1% a tick
        } finally {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            p.waitFor();
        }
    }

    static long cpuTicks(long pid) throws IOException {
        String stat = Files.readString(Path.of("/proc/" + pid + "/stat"));
        String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
        return Long.parseLong(f[11]) + Long.parseLong(f[12]); // utime, stime
    }

    // --- j: what the launcher's lock costs a warm run -----------------------------------------------------

    static void warmRunWithTheLock() throws Exception {
        say("j: a warm ./jbang run with the build lock, and the same launcher without it");
        Path noLock = root.resolve("bench/out/nolock/jbang");
        Files.createDirectories(noLock.getParent());
        Files.writeString(noLock, Files.readString(root.resolve("jbang"))
                .replace("if command -v flock >/dev/null 2>&1 &&", "if false &&"));
        noLock.toFile().setExecutable(true);
        Path jbangHome = noLock.resolveSibling(".jbang");
        if (!Files.exists(jbangHome)) Files.createSymbolicLink(jbangHome, root.resolve(".jbang"));
        List<String> without = new ArrayList<>(List.of(noLock.toString(), "EnvoyPreflight.java", "/bin/true"));
        List<Double>[] t = timeInterleaved(jbang("EnvoyPreflight.java", "/bin/true"), without);
        ratioRow("j", "start to exit, warm `./jbang EnvoyPreflight.java /bin/true` with the build lock", t[0],
                "the same launcher without the lock", t[1], 1.02);
    }

    // --- helpers -----------------------------------------------------------------------------------

    static void ratioRow(String id, String what, List<Double> tool, String refName, List<Double> ref, double target) {
        double ratio = median(tool) / median(ref);
        table.add(String.format(Locale.ROOT, "| %s | %s | %s | %s | %s | %s | %.2f\u00d7 | \u2264 %.2f\u00d7 | %s |", id, what,
                fmt(median(tool)), fmt(max(tool)), refName, fmt(median(ref)), ratio, target,
                ratio <= target ? "met" : "**not met**"));
    }

    static String row(String id, String what, List<Double> values, String refName, List<Double> ref, String target,
                      boolean met) {
        return String.format(Locale.ROOT, "| %s | %s | %s | %s | %s | %s | | %s | %s |", id, what, fmt(median(values)),
                fmt(max(values)), refName == null ? "\u2014" : refName, ref == null ? "" : fmt(median(ref)), target,
                met ? "met" : "**not met**");
    }

    static String fmt(double v) {
        return v >= 100 ? String.format(Locale.ROOT, "%.0f", v) : v >= 10 ? String.format(Locale.ROOT, "%.1f", v)
                : String.format(Locale.ROOT, "%.3f", v);
    }

    static double median(List<Double> values) {
        List<Double> s = new ArrayList<>(values);
        Collections.sort(s);
        int n = s.size();
        return n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
    }

    static double max(List<Double> values) {
        return Collections.max(values);
    }

    static Process start(List<String> cmd, Map<String, String> env) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(root.toFile())
                .redirectOutput(ProcessBuilder.Redirect.DISCARD)
                .redirectError(out.resolve("last-stderr.txt").toFile())
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        pb.environment().keySet().removeIf(k -> k.startsWith("ENVOY_") || k.startsWith("ISTIO_")
                || k.startsWith("GENERIC_") || k.startsWith("NEVER_KILL") || k.endsWith("_ENVOY_TIMEOUT")
                || k.equals("START_WITHOUT_ENVOY") || k.equals("QUIT_REQUEST_TIMEOUT") || k.equals("USE_ISTIO_ENDPOINT")
                || k.equals("SCUTTLE_LOGGING") || k.equals("ALWAYS_KILL_ENVOY") || k.equals("SIDECAR_ABSENT_AFTER"));
        pb.environment().put("JBANG_NO_VERSION_CHECK", "true");
        pb.environment().putAll(env);
        return pb.start();
    }

    /** Runs cmd to its end; its stdout, or an exception with its stderr if it failed. */
    static String mustRun(List<String> cmd) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(root.toFile())
                .redirectError(out.resolve("last-stderr.txt").toFile())
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        pb.environment().put("JBANG_NO_VERSION_CHECK", "true");
        Process p = pb.start();
        String stdout = new String(p.getInputStream().readAllBytes());
        if (p.waitFor() != 0) {
            throw new IllegalStateException(cmd + " exited " + p.exitValue() + ":\n"
                    + Files.readString(out.resolve("last-stderr.txt")));
        }
        return stdout;
    }

    interface Condition {
        boolean holds() throws Exception;
    }

    static void await(Condition c) throws Exception {
        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!c.holds()) {
            if (System.nanoTime() > until) throw new IllegalStateException("timed out");
            Thread.sleep(1);
        }
    }

    static List<String> lines(Path p) throws IOException {
        return Files.exists(p) ? Files.readAllLines(p) : List.of();
    }

    static long rssKb(long pid) throws IOException {
        return Files.readString(Path.of("/proc/" + pid + "/status")).lines().filter(l -> l.startsWith("VmRSS:"))
                .mapToLong(l -> Long.parseLong(l.replaceAll("\\D", ""))).findFirst().orElseThrow();
    }

    /** bash's $EPOCHREALTIME ("seconds.micros") as epoch microseconds. */
    static long epochMicros(String s) {
        String[] p = s.strip().split("[.,]");
        return Long.parseLong(p[0]) * 1_000_000 + Long.parseLong((p[1] + "000000").substring(0, 6));
    }

    static long micros(Instant i) {
        return i.getEpochSecond() * 1_000_000 + i.getNano() / 1_000;
    }

    static String machine() throws IOException {
        String cpu = Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("model name"))
                .findFirst().map(l -> l.substring(l.indexOf(':') + 1).trim()).orElse("unknown CPU");
        long memKb = Long.parseLong(Files.readAllLines(Path.of("/proc/meminfo")).get(0).replaceAll("\\D", ""));
        return Runtime.getRuntime().availableProcessors() + " cores (" + cpu + "), " + (memKb >> 20) + " GiB, "
                + System.getProperty("java.vm.name") + " " + System.getProperty("java.version");
    }

    static void say(String s) {
        System.err.println("bench: " + s);
    }
}
