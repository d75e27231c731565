import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.parallel.ResourceLock;
import org.junit.jupiter.api.parallel.ResourceAccessMode;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The committed ./jbang launcher, copied into a folder of each test's own (JBang's jars linked in,
 * so that .jbang/ starts without an archive): the archive of JBang's classes it makes on the first
 * run, on the default JDK and on a second one, two first runs at once, a read-only .jbang/, a
 * broken archive, and that none of its JVM options reach the script's JVM or the app; its first-run
 * lock (bounded, said, skipped by a warm run, in JBang's own folder), and a locale that is UTF-8 in
 * name only, there and in the jar image's entrypoint. Each run gets JBang's variables set here, not the caller's.
 * A test that compiles, or runs JBangs side by side, takes the CPU alone (TestSupport.CPU); warm runs
 * one after another share it. Each test has a launcher, a JBang folder and an archive of its own: they run
 * side by side.
 */
@Tag("launcher")
@org.junit.jupiter.api.parallel.Execution(org.junit.jupiter.api.parallel.ExecutionMode.CONCURRENT)
class LauncherTests {
    static final Path ROOT = TestSupport.repositoryRoot();
    static final String APP = "echo \"app $1\"";

    @TempDir
    Path dir;
    Path launcher;
    Path lib;

    /** The script built before any launcher here runs it: these tests are about the launcher, not JBang's compile. */
    @org.junit.jupiter.api.BeforeAll
    static void buildTheScript() throws Exception {
        TestSupport.buildTheScript();
    }

    @BeforeEach
    void copyTheLauncher() throws IOException {
        Path installed = TestSupport.jbangLib(ROOT);
        launcher = Files.copy(ROOT.resolve("jbang"), Files.createDirectories(dir.resolve("home")).resolve("jbang"));
        lib = Files.createDirectories(launcher.getParent().resolve(".jbang").resolve(installed.getFileName()));
        try (Stream<Path> jars = Files.list(installed)) {
            for (Path jar : jars.filter(p -> p.toString().endsWith(".jar")).toList()) {
                Files.createLink(lib.resolve(jar.getFileName()), jar);
            }
        }
    }

    /** ExamplesTests' way to TestSupport's, until it calls that itself. */
    static Path jbangLib(Path root) throws IOException {
        return TestSupport.jbangLib(root);
    }

    /**
     * JBang's variables for a run of ours, whatever the caller has: JBang's folder (where the launcher's lock
     * is) is the test's own, the cache is the one the suite's launcher built the script into (so the script is
     * warm), and the Maven repository is the one its dependencies were resolved into.
     */
    Map<String, String> jbangVariables() {
        Map<String, String> env = new HashMap<>();
        env.put("JBANG_DIR", dir.resolve("jbang-dir").toString());
        env.put("JBANG_CACHE_DIR", TestSupport.callersJbangCache().toString());
        env.put("JBANG_REPO", TestSupport.callersMavenRepository().toString());
        return env;
    }

    /** The tool through our launcher copy running app, with {@link #jbangVariables} and env over them. */
    Process launch(Map<String, String> env, String... app) throws IOException {
        Map<String, String> all = jbangVariables();
        all.putAll(env);
        return TestSupport.launch(launcher, all, app);
    }

    Process start(Map<String, String> env) throws IOException {
        return launch(env, "sh", "-c", APP, "app", "ran");
    }

    TestSupport.Run run(Map<String, String> env) throws Exception {
        return TestSupport.finish(start(env));
    }

    List<String> archives() throws IOException {
        try (Stream<Path> files = Files.list(lib)) {
            return files.map(p -> p.getFileName().toString()).filter(n -> !n.endsWith(".jar")).sorted().toList();
        }
    }

    static void assertRanSilently(TestSupport.Run r) {
        assertEquals(0, r.code(), r.err());
        assertEquals("app ran\n", r.out());
        assertEquals("", r.err(), "nothing on stderr in the normal case");
    }

    @Test
    @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
    void theFirstRunMakesAnArchiveOfJBangAndLaterRunsStillRunSilently() throws Exception {
        assertEquals(List.of(), archives());
        assertRanSilently(run(Map.of()));
        List<String> made = archives();
        assertEquals(1, made.size(), made.toString());
        assertTrue(made.get(0).matches("jbang-jvm-\\d+\\.jsa"), made.toString());
        assertTrue(Files.size(lib.resolve(made.get(0))) > 1 << 20, "an archive of JBang's classes");
        assertRanSilently(run(Map.of()));
        assertEquals(made, archives(), "made once");
    }

    /** The launcher's rule: the AOT cache from JDK 24 on, AppCDS before. */
    static String archiveKind(int feature) {
        return feature >= 24 ? "aot" : "jsa";
    }

    @Test
    @ResourceLock(TestSupport.CPU)
    void aSecondJdkGetsAnArchiveOfItsOwnBesideTheDefaultJdks() throws Exception {
        TestSupport.Jdk other = TestSupport.otherJdk();
        int onPath = TestSupport.defaultJdk().orElseThrow(() -> new AssertionError("no java on PATH")).feature();
        Map<String, String> env = Map.of("JAVA_HOME", other.home().toString());
        assertRanSilently(run(env));
        List<String> first = archives();
        assertEquals(1, first.size(), first.toString());
        assertTrue(first.get(0).matches("jbang-jvm-\\d+\\." + archiveKind(other.feature())), other + ": " + first);
        assertRanSilently(run(env));
        assertEquals(first, archives(), "JDK " + other.feature() + "'s archive is used, not made again");
        assertRanSilently(run(Map.of()));
        List<String> both = new ArrayList<>(archives());
        assertEquals(2, both.size(), "one per JDK: " + both);
        both.removeAll(first);
        assertTrue(both.get(0).matches("jbang-jvm-\\d+\\." + archiveKind(onPath)), "JDK " + onPath + ": " + both);
    }

    @Test
    @ResourceLock(TestSupport.CPU)
    void twoFirstRunsAtOnceBothRunAndLeaveOneArchive() throws Exception {
        Process a = start(Map.of());
        Process b = start(Map.of());
        assertRanSilently(TestSupport.finish(a));
        assertRanSilently(TestSupport.finish(b));
        List<String> left = archives();
        assertEquals(1, left.size(), "one archive and no temporary file: " + left);
        assertRanSilently(run(Map.of()));
    }

    @Test
    @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
    void aBrokenArchiveIsPassedOverSilently() throws Exception {
        assertRanSilently(run(Map.of()));
        Path archive = lib.resolve(archives().get(0));
        Files.setPosixFilePermissions(archive, PosixFilePermissions.fromString("rw-r--r--"));
        Files.writeString(archive, "not an archive");
        assertRanSilently(run(Map.of()));
        Files.writeString(archive, "");
        assertRanSilently(run(Map.of()));
    }

    @Test
    @ResourceLock(TestSupport.CPU)
    void aReadOnlyJbangDirRunsWithoutAnArchive() throws Exception {
        // Another user than the owner, who can read .jbang/ but not write it (root writes anywhere).
        Path home = Files.createDirectories(dir.resolve("nobody"));
        Path script = Files.writeString(home.resolve("Hello.java"),
                "class Hello { public static void main(String[] a) { System.out.println(\"hello \" + a[0]); } }\n");
        for (Path p : List.of(dir, home, launcher.getParent(), lib.getParent(), lib)) {
            Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwxr-xr-x"));
        }
        try (Stream<Path> all = Files.walk(home)) {
            for (Path p : all.toList()) Files.setOwner(p, home.getFileSystem().getUserPrincipalLookupService()
                    .lookupPrincipalByName("nobody"));
        }
        ProcessBuilder pb = new ProcessBuilder("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                launcher.toString(), script.toString(), "ro").directory(home.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        // JBang's variables of its own: a cache or repository of the caller's is not this user's to write.
        List.of("JAVA_HOME", "JBANG_CACHE_DIR", "JBANG_REPO").forEach(pb.environment()::remove);
        pb.environment().putAll(Map.of("HOME", home.toString(), "JBANG_DIR", home.resolve(".jbang").toString(),
                "JBANG_NO_VERSION_CHECK", "true"));
        TestSupport.Run first = TestSupport.finish(pb.start()); // JBang compiles Hello.java, and says so
        assertEquals(0, first.code(), first.err());
        assertEquals("hello ro\n", first.out());
        assertTrue(first.err().lines().allMatch(l -> l.startsWith("[jbang] Building jar")), first.err());
        TestSupport.Run r = TestSupport.finish(pb.start());
        assertEquals(0, r.code(), r.err());
        assertEquals("hello ro\n", r.out());
        assertEquals("", r.err());
        assertEquals(List.of(), archives(), "nothing could be written, and nothing was");
    }

    @Test
    @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
    void noOptionOfJBangsJvmReachesTheScriptsJvmOrTheApp() throws Exception {
        assertRanSilently(run(Map.of())); // the archive exists: the next run uses it
        TestSupport.Run r = TestSupport.finish(launch(Map.of(), "sh", "-c",
                "tr '\\0' ' ' < /proc/$PPID/cmdline; echo; env"));
        assertEquals(0, r.code(), r.err());
        String jvmLine = r.out().lines().findFirst().orElseThrow();
        assertTrue(jvmLine.contains("EnvoyPreflight"), "the app's parent is the tool's JVM: " + jvmLine);
        for (String leak : List.of("CICompilerCount", "jbang-jvm-", "AOTCache", "AOTMode", "ArchiveClassesAtExit",
                "Xlog:disable")) {
            assertFalse(r.out().contains(leak), leak + " leaked:\n" + r.out());
        }
        assertTrue(jvmLine.contains(String.join(" ", TestSupport.RUNTIME_OPTIONS)),
                "the script's own options: " + jvmLine);
        assertFalse(r.out().contains("JBANG_JAVA_OPTIONS") || r.out().contains("JAVA_TOOL_OPTIONS"), r.out());
    }

    @Test
    @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
    void stockJBangStartsWithNoneOfIt() throws Exception {
        assertRanSilently(run(Map.of("JBANG_LAUNCHER_TUNE", "false")));
        assertEquals(List.of(), archives());
    }

    @Test
    @ResourceLock(TestSupport.CPU)
    void aCloneWithoutJBangBootstrapsItFromMavenAndMakesTheArchive() throws Exception {
        // A fresh clone: no .jbang/ at all. Maven fetches JBang (from its local repository, or Central).
        Path clone = Files.createDirectories(dir.resolve("clone"));
        Path fresh = Files.copy(ROOT.resolve("jbang"), clone.resolve("jbang"));
        launcher = fresh;
        TestSupport.Run r = TestSupport.finish(start(Map.of()));
        assertEquals(0, r.code(), r.err());
        assertEquals("app ran\n", r.out());
        assertTrue(r.err().contains("bootstrapping dev.jbang:jbang-cli:"), r.err());
        lib = TestSupport.jbangLib(clone);
        assertEquals(1, archives().size(), archives().toString());
        assertRanSilently(run(Map.of()));
    }

    // --- The first-run lock ---------------------------------------------------------------------------

    /** A launcher's stderr read line by line as it comes, and its stdout whole at the end; ended on close. */
    static final class Watched implements AutoCloseable {
        final Process process;
        final long started = System.nanoTime();
        final BlockingQueue<String> errLines = new LinkedBlockingQueue<>();
        final StringBuilder err = new StringBuilder();

        Watched(Process process) {
            this.process = process;
            Thread reader = new Thread(() -> {
                try (BufferedReader in = new BufferedReader(new InputStreamReader(process.getErrorStream(),
                        StandardCharsets.UTF_8))) {
                    for (String line; (line = in.readLine()) != null; ) errLines.add(line);
                } catch (IOException ignored) {
                    // the process is gone: what it said is in errLines
                }
            });
            reader.setDaemon(true);
            reader.start();
        }

        /** The first stderr line containing text, waiting at most seconds; null if none came. */
        String line(String text, long seconds) throws InterruptedException {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
            for (long left; (left = until - System.nanoTime()) > 0; ) {
                String line = errLines.poll(left, TimeUnit.NANOSECONDS);
                if (line == null) break;
                err.append(line).append('\n');
                if (line.contains(text)) return line;
            }
            return null;
        }

        double seconds() {
            return (System.nanoTime() - started) / 1e9;
        }

        /** Its stdout, once it exits within seconds (else it is destroyed and the test fails). */
        String finish(long seconds) throws Exception {
            if (!process.waitFor(seconds, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor();
                throw new AssertionError("still running after " + seconds + " s; stderr so far:\n" + err + drained());
            }
            return new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        }

        String drained() throws InterruptedException {
            line("\u0000", 1); // what is left, into err
            return err.toString();
        }

        /** A run the test gave up on ends with it, the JVMs it started too. */
        @Override
        public void close() throws InterruptedException {
            process.descendants().forEach(ProcessHandle::destroyForcibly);
            process.destroyForcibly().waitFor();
        }
    }

    /** The launcher's lock file held by flock(1), as another launcher holds it, until closed. */
    static final class HeldLock implements AutoCloseable {
        final Process flock;

        HeldLock(Path lock) throws IOException {
            Files.createDirectories(lock.getParent());
            // -o: the lock stays with flock itself, not with cat, which ends when its stdin closes
            flock = new ProcessBuilder("flock", "-o", lock.toString(), "sh", "-c", "echo held; exec cat >/dev/null")
                    .start();
            String said = new BufferedReader(new InputStreamReader(flock.getInputStream(), StandardCharsets.UTF_8))
                    .readLine();
            assertEquals("held", said, "flock " + lock);
        }

        @Override
        public void close() throws Exception {
            flock.getOutputStream().close();
            if (!flock.waitFor(10, TimeUnit.SECONDS)) flock.destroyForcibly().waitFor();
        }
    }

    /** A script JBang has never built: a run of it has to build, so it waits for a held lock. */
    Path coldScript() throws IOException {
        return Files.writeString(dir.resolve("Cold.java"),
                "class Cold { public static void main(String[] a) { System.out.println(\"cold \" + a[0]); } }\n");
    }

    /** A run of script with its own empty cache (so it builds there) and env over that (null: removed). */
    Process launchCold(Path script, Map<String, String> env) throws IOException {
        return startCold(env, launcher.toString(), script.toString(), "ran");
    }

    Process startCold(Map<String, String> env, String... command) throws IOException {
        Map<String, String> cold = new HashMap<>(Map.of("JBANG_CACHE_DIR", dir.resolve("cold-cache").toString()));
        cold.putAll(env);
        return startWith(cold, command);
    }

    /** command with a clean copy of our environment, JBang's variables of ours, and env over them (null: removed). */
    Process startWith(Map<String, String> env, String... command) throws IOException {
        Map<String, String> all = jbangVariables();
        all.putAll(env);
        ProcessBuilder pb = TestSupport.cleanEnvironment(new ProcessBuilder(command)).directory(dir.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        pb.environment().remove("JAVA_HOME");
        pb.environment().put("JBANG_NO_VERSION_CHECK", "true");
        all.forEach((k, v) -> {
            if (v == null) pb.environment().remove(k);
            else pb.environment().put(k, v);
        });
        return pb.start();
    }

    @Test
    @ResourceLock(TestSupport.CPU)
    void aFirstRunSaysAtOnceThatItWaitsForTheLockAndGoesOnWithoutItAfterTheBound() throws Exception {
        Path lock = dir.resolve("jbang-dir").resolve("launcher.lock");
        // At a raised priority (as root; elsewhere nice says it can't and runs it as is): the 2 s is the
        // launcher's own promise, which two CPU hogs beside the suite would otherwise turn into the machine's.
        try (HeldLock held = new HeldLock(lock);
             Watched run = new Watched(startCold(Map.of("JBANG_LAUNCHER_LOCK_TIMEOUT", "3"), "nice", "-n", "-10",
                     launcher.toString(), coldScript().toString(), "ran"))) {
            // Promised within 2 s; 4 s allowed: bash and at most one short JBang JVM come first, which a busy
            // 2-core machine may slow to twice their usual second.
            String waiting = run.line("waiting for another first run", 4);
            assertTrue(waiting != null, "no word within 4 s:\n" + run.drained());
            assertTrue(waiting.contains(lock.toString()), "names the lock: " + waiting);
            String gaveUp = run.line("without the lock", 30);
            assertTrue(gaveUp != null, "no warning after the bound:\n" + run.drained());
            assertTrue(run.seconds() >= 3, "went on only after the 3 s bound: " + run.seconds());
            assertEquals("cold ran\n", run.finish(120), run.drained());
            assertEquals(0, run.process.exitValue(), run.drained());
        }
    }

    @Test
    @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
    void aWarmRunDoesNotWaitForAnotherRunsLock() throws Exception {
        // The lock held as by another run in JBang's phase (a warm one, or a first run that takes long):
        // this run's script is built already, so it has nothing to wait for.
        try (HeldLock held = new HeldLock(dir.resolve("jbang-dir").resolve("launcher.lock"));
             Watched run = new Watched(launch(Map.of("JBANG_LAUNCHER_LOCK_TIMEOUT", "60"),
                     "sh", "-c", APP, "app", "ran"))) {
            // Far below the 60 s bound, far above a warm run's second or two on a busy machine.
            assertEquals("app ran\n", run.finish(30), run.drained());
            assertEquals(0, run.process.exitValue(), run.drained());
            assertEquals("", run.drained(), "a warm run waits for nothing and says nothing");
        }
    }

    @Test
    @ResourceLock(TestSupport.CPU)
    void theLockIsInJBangsOwnFolderWithOrWithoutHome() throws Exception {
        // JBang's folder without JBANG_DIR is Java's user.home/.jbang, and user.home is the passwd entry's
        // home, whatever HOME says. A private mount namespace gives this uid a passwd home of the test's own.
        Path home = Files.createDirectories(dir.resolve("passwd-home"));
        Path passwd = dir.resolve("passwd");
        StringBuilder entries = new StringBuilder();
        long uid = (Integer) Files.getAttribute(dir, "unix:uid");
        for (String entry : Files.readAllLines(Path.of("/etc/passwd"))) {
            String[] f = entry.split(":", -1);
            if (f.length > 5 && f[2].equals(Long.toString(uid))) f[5] = home.toString();
            entries.append(String.join(":", f)).append('\n');
        }
        Files.writeString(passwd, entries);
        Assumptions.assumeTrue(new ProcessBuilder("unshare", "-m", "sh", "-c",
                "mount --bind " + passwd + " /etc/passwd").start().waitFor() == 0, "no private mount namespace here");
        Path lock = home.resolve(".jbang").resolve("launcher.lock");
        Path script = coldScript();
        Path elsewhere = Files.createDirectories(dir.resolve("elsewhere"));
        for (String homeVariable : new String[] {null, elsewhere.toString()}) {
            try (HeldLock held = new HeldLock(lock)) {
                Map<String, String> env = new HashMap<>();
                env.put("JBANG_CACHE_DIR", Files.createTempDirectory(dir, "cache").toString()); // cold each time
                env.put("JBANG_DIR", null);
                env.put("HOME", homeVariable);
                env.put("JBANG_LAUNCHER_LOCK_TIMEOUT", "1");
                try (Watched run = new Watched(startCold(env, "unshare", "-m", "sh", "-c",
                        "mount --bind \"$1\" /etc/passwd && exec \"$2\" \"$3\" ran",
                        "sh", passwd.toString(), launcher.toString(), script.toString()))) {
                    String waiting = run.line("waiting for another first run", 30); // where, not when, is the point
                    assertTrue(waiting != null && waiting.contains(lock.toString()),
                            "HOME " + homeVariable + ": the lock in " + home + "/.jbang:\n" + run.drained());
                    assertEquals("cold ran\n", run.finish(120), run.drained());
                }
            }
        }
        assertFalse(Files.exists(elsewhere.resolve(".jbang")), "nothing in HOME's folder");
    }

    // --- A locale that is UTF-8 in name only --------------------------------------------------------------

    /** A UTF-8 locale name that is not installed: en_US.UTF-8 where it is missing, as here and in most slim images. */
    static String missingUtf8Locale() throws Exception {
        Process p = new ProcessBuilder("locale", "-a").start();
        String installed = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).toLowerCase();
        p.waitFor();
        return installed.contains("en_us.utf8") ? "xx_XX.UTF-8" : "en_US.UTF-8";
    }

    /** The app's view: its first argument, and the locale variables it got back. */
    static final String SHOW_LOCALE = "printf '[%s][%s][%s]' \"$1\" \"${LC_ALL-unset}\" \"${LANG-unset}\"";

    /** What SHOW_LOCALE prints when the app gets word and its own locale variables back. */
    static String appSees(String word, Map<String, String> env) {
        return "[" + word + "][" + java.util.Objects.requireNonNullElse(env.get("LC_ALL"), "unset") + "]["
                + env.get("LANG") + "]";
    }

    @Test
    @ResourceLock(TestSupport.CPU)
    void aLocaleUtf8InNameOnlyPassesArgumentsUnchangedThroughTheLauncherAndTheEntrypoint() throws Exception {
        String missing = missingUtf8Locale();
        String word = "\u00e9\u20ac";
        Map<String, String> allNamed = new HashMap<>(Map.of("LC_ALL", missing, "LANG", missing));
        allNamed.put("LC_CTYPE", null);
        Map<String, String> langNamed = new HashMap<>(Map.of("LANG", missing));
        langNamed.put("LC_ALL", null);
        langNamed.put("LC_CTYPE", null);

        for (Map<String, String> env : List.of(allNamed, langNamed)) {
            TestSupport.Run r = TestSupport.finish(startWith(env, launcher.toString(),
                    ROOT.resolve("EnvoyPreflight.java").toString(), "sh", "-c", SHOW_LOCALE, "sh", word));
            assertEquals(0, r.code(), r.err());
            assertEquals(appSees(word, env), r.out(),
                    "launcher, " + env);
        }

        // The jar image: the exported jar beside its entrypoint, run as the image runs it.
        Path image = Files.createDirectories(dir.resolve("image"));
        TestSupport.Run built = TestSupport.finish(startWith(Map.of(), launcher.toString(), "export", "fatjar", "-O",
                image.resolve("envoy-preflight.jar").toString(), ROOT.resolve("EnvoyPreflight.java").toString()));
        assertEquals(0, built.code(), built.err());
        Path entrypoint = Files.copy(ROOT.resolve("examples/docker/entrypoint.sh"), image.resolve("entrypoint.sh"));
        for (Map<String, String> env : List.of(allNamed, langNamed)) {
            TestSupport.Run r = TestSupport.finish(startWith(env, entrypoint.toString(),
                    "sh", "-c", SHOW_LOCALE, "sh", word));
            assertEquals(0, r.code(), r.err());
            assertEquals(appSees(word, env), r.out(),
                    "entrypoint, " + env);
        }
    }
}
