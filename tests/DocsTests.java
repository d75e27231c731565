import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Nested;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.parallel.ResourceLock;
import org.junit.jupiter.api.parallel.ResourceAccessMode;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The README and docs/ stay true to the tool: every output they show is produced again and
 * compared, the setting table is rendered from the tool's own, and links lead somewhere. With
 * UPDATE_DOCS=true the generated blocks and the transcripts are rewritten instead (review the diff).
 */
class DocsTests {
    static final Path ROOT = TestSupport.repositoryRoot();
    static final boolean UPDATE = "true".equals(System.getenv("UPDATE_DOCS"));
    static final String ELLIPSIS = "\u2026";
    static final Pattern MARKER = Pattern.compile("<!-- transcript: ([a-z0-9-]+) -->");
    static final Pattern FENCE = Pattern.compile("^```(\\S*)\\s*$");
    /** Blocks that are inputs (commands, manifests) or, for text, transcripts. */
    static final Set<String> LANGUAGES = Set.of("bash", "yaml", "json", "dockerfile", "java", "text");

    // ---------------------------------------------------------------- the pages and their blocks

    /** README.md and every docs/*.md, the pages a reader is sent to. */
    static List<Path> pages() throws IOException {
        List<Path> pages = new ArrayList<>(List.of(ROOT.resolve("README.md")));
        try (Stream<Path> docs = Files.list(ROOT.resolve("docs"))) {
            pages.addAll(docs.filter(p -> p.toString().endsWith(".md")).sorted().toList());
        }
        return pages;
    }

    /** A fenced block: the lines of its fences (0-based), its language, the transcript marker before it. */
    record Block(int open, int close, String lang, String marker) {
        List<String> body(List<String> lines) {
            return lines.subList(open + 1, close);
        }
    }

    static List<Block> blocks(List<String> lines) {
        List<Block> blocks = new ArrayList<>();
        for (int i = 0; i < lines.size(); i++) {
            Matcher open = FENCE.matcher(lines.get(i));
            if (!open.matches()) continue;
            int close = i + 1;
            while (close < lines.size() && !lines.get(close).strip().equals("```")) close++;
            String marker = null;
            for (int j = i - 1; j >= 0; j--) {
                if (lines.get(j).isBlank()) continue;
                Matcher m = MARKER.matcher(lines.get(j).strip());
                if (m.matches()) marker = m.group(1);
                break;
            }
            blocks.add(new Block(i, close, open.group(1), marker));
            i = close;
        }
        return blocks;
    }

    static List<String> read(Path p) {
        try {
            return new ArrayList<>(Files.readAllLines(p, StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw new AssertionError(e);
        }
    }

    static void write(Path p, List<String> lines) throws IOException {
        Files.writeString(p, String.join("\n", lines) + "\n", StandardCharsets.UTF_8);
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void theReadmeIsAtMost250Lines() {
        // A newcomer's page: the rest belongs in docs/.
        int lines = read(ROOT.resolve("README.md")).size();
        assertTrue(lines <= 250, "README.md has " + lines + " lines; move a subject to docs/");
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void everyBlockNamesItsLanguageAndEveryTextBlockIsATranscript() throws IOException {
        // The rule that makes "every shown output is checked" hold: output may only be shown in a
        // text block, and a text block is only accepted with a transcript marker this class runs.
        List<String> problems = new ArrayList<>();
        for (Path page : pages()) {
            List<String> lines = read(page);
            List<Block> blocks = blocks(lines);
            String where = ROOT.relativize(page) + ":";
            for (int i = 0; i < blocks.size(); i++) {
                Block b = blocks.get(i);
                if (b.close() >= lines.size()) problems.add(where + (b.open() + 1) + " a block that never closes");
                if (!LANGUAGES.contains(b.lang())) {
                    problems.add(where + (b.open() + 1) + " a block in '" + b.lang() + "': name one of " + LANGUAGES);
                }
                if (b.lang().equals("text") && b.marker() == null) {
                    problems.add(where + (b.open() + 1) + " a text block without <!-- transcript: NAME -->");
                }
                if (b.marker() != null && !b.lang().equals("text")) {
                    problems.add(where + (b.open() + 1) + " a transcript marker on a " + b.lang() + " block");
                }
                if (b.marker() != null && (i == 0 || !blocks.get(i - 1).lang().equals("bash"))) {
                    problems.add(where + (b.open() + 1) + " transcript " + b.marker() + " without a bash block before it");
                }
            }
            long markers = lines.stream().filter(l -> MARKER.matcher(l).find()).count();
            long attached = blocks.stream().filter(b -> b.marker() != null).count();
            if (markers != attached) problems.add(where + " a transcript marker not right before a block");
        }
        assertEquals(List.of(), problems);
    }

    // ---------------------------------------------------------------- transcripts

    /**
     * How a transcript is produced: the doc ports its commands use (each mapped to a free port on
     * this machine, and back in the output), and whether the fake waits for the tool's first poll.
     */
    record Scenario(List<Integer> ports, boolean fakeAfterFirstPoll) {}

    static final Map<String, Scenario> SCENARIOS = Map.of(
            // The fake starts once the tool has polled once: its polls then always begin refused,
            // whatever the machine's speed, and the fake's 3 s timeline is seen whole.
            "laptop-envoy", new Scenario(List.of(9901), true),
            "bad-duration", new Scenario(List.of(), false),
            "dry-run-istio-admin", new Scenario(List.of(), false),
            "dry-run-istio-fallback", new Scenario(List.of(), false),
            "check-refused", new Scenario(List.of(15000, 15021), false),
            "fake-envoy-help", new Scenario(List.of(), false));

    @TestFactory
    Stream<DynamicTest> everyTranscriptIsWhatTheToolPrintsToday() throws IOException {
        List<DynamicTest> tests = new ArrayList<>();
        Set<String> seen = new TreeSet<>();
        for (Path page : pages()) {
            for (Block b : blocks(read(page))) {
                if (b.marker() == null) continue;
                assertTrue(seen.add(b.marker()), "transcript " + b.marker() + " shown twice");
                tests.add(DynamicTest.dynamicTest(ROOT.relativize(page) + ": " + b.marker(),
                        () -> checkTranscript(page, b.marker())));
            }
        }
        assertEquals(new TreeSet<>(SCENARIOS.keySet()), seen, "scenarios here and markers in the docs");
        return tests.stream();
    }

    static void checkTranscript(Path page, String name) throws Exception {
        Scenario scenario = SCENARIOS.get(name);
        assertNotNull(scenario, "no scenario for transcript " + name);
        List<String> lines = read(page);
        List<Block> blocks = blocks(lines);
        int at = 0;
        while (!name.equals(blocks.get(at).marker())) at++;
        Block shown = blocks.get(at);
        String commands = String.join("\n", blocks.get(at - 1).body(lines));
        List<String> actual = run(commands, scenario);
        List<String> expected = shown.body(lines);
        if (UPDATE) {
            List<String> rewritten = new ArrayList<>(lines.subList(0, shown.open() + 1));
            rewritten.addAll(shortened(actual));
            rewritten.addAll(lines.subList(shown.close(), lines.size()));
            write(page, rewritten);
            expected = shortened(actual);
        }
        if (!streams(expected).equals(streams(actual))) {
            fail(ROOT.relativize(page) + ": transcript " + name + " is not what the commands print today"
                    + " (UPDATE_DOCS=true ./jbang test Docs rewrites it).\nShown, normalised: " + streams(expected)
                    + "\nPrinted, normalised: " + streams(actual) + "\nPrinted:\n" + String.join("\n", shortened(actual)));
        }
    }

    /**
     * Runs a doc's bash block: the tool's and the fake's JVMs stand in for `./jbang envoy-preflight`,
     * `jbang envoy-preflight@org` and `./jbang fake-envoy` (no JBang start in the way), its ports
     * are mapped to free ones; stdout and stderr of every process go to one file, as to a terminal.
     */
    static List<String> run(String commands, Scenario scenario) throws Exception {
        Map<Integer, Integer> ports = new LinkedHashMap<>();
        for (int port : scenario.ports()) ports.put(port, TestSupport.closedPort());
        String script = commands.replace("jbang envoy-preflight@org", "envoy_preflight")
                .replace("./jbang envoy-preflight", "envoy_preflight").replace("./jbang fake-envoy", "fake_envoy");
        assertFalse(script.contains("jbang"), "a transcript runs the tool or the fake, not JBang:\n" + script);
        for (var p : ports.entrySet()) script = script.replaceAll("(?<!\\d)" + p.getKey() + "(?!\\d)", "" + p.getValue());
        List<String> fake = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElse("java"),
                "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
                "-cp", System.getProperty("java.class.path"), "FakeEnvoy"));
        String prelude = "envoy_preflight() { " + quoted(TestSupport.javaCommand()) + " \"$@\"; }\n"
                + "fake_envoy() { "
                + (scenario.fakeAfterFirstPoll()
                ? "for i in $(seq 600); do grep -q 'envoy-preflight: poll 1:' \"$DOCS_LOG\" && break; sleep 0.05; done; " : "")
                + quoted(fake) + " \"$@\"; }\n";
        Path log = Files.createTempFile("transcript", ".log");
        ProcessBuilder pb = new ProcessBuilder("bash", "-c", prelude + script).directory(ROOT.toFile())
                .redirectErrorStream(true).redirectOutput(log.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
        TestSupport.cleanEnvironment(pb);
        pb.environment().put("DOCS_LOG", log.toString());
        String printed;
        // the tool SIGINTs every pilot-agent it sees (a loopback admin API, no Istio one): only the block's
        try (var ns = TestSupport.PidNamespace.create()) {
            Process p = ns.start(pb);
            try {
                assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the commands did not finish:\n" + TestSupport.read(log));
            } finally {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
                p.destroyForcibly();
            }
        } finally {
            printed = TestSupport.read(log);
            Files.delete(log);
        }
        List<String> out = new ArrayList<>();
        for (String line : printed.split("\n", -1)) {
            for (var port : ports.entrySet()) {
                line = line.replaceAll("(?<!\\d)" + port.getValue() + "(?!\\d)", "" + port.getKey());
            }
            out.add(line);
        }
        while (!out.isEmpty() && out.get(out.size() - 1).isEmpty()) out.remove(out.size() - 1);
        return out;
    }

    static String quoted(List<String> words) {
        return words.stream().map(w -> "'" + w.replace("'", "'\\''") + "'").collect(Collectors.joining(" "));
    }

    /** What may differ from run to run, made equal: pids, poll counts, milliseconds, timestamps. */
    static String normalised(String line) {
        return line.replaceAll("\\bpid \\d+", "pid N")
                .replaceAll("\\bpoll \\d+", "poll N")
                .replaceAll("\\b\\d+ polls\\b", "N polls")
                .replaceAll("\\b\\d+ ms\\b", "N ms")
                .replaceAll("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z", "TIME");
    }

    /** Which process printed a line: the fake, the tool, or the app (whatever has neither prefix). */
    static String source(String line) {
        return line.startsWith("fake-envoy:") ? "fake" : line.startsWith("envoy-preflight:") ? "tool" : "app";
    }

    /**
     * The lines of each process (the fake, the tool, the app), normalised, each run of equal lines
     * counted once, a "..." line dropped. Compared process by process: processes writing to one
     * terminal interleave by timing (the app may print before the tool logs its pid), but each
     * one's own order is fixed.
     */
    static Map<String, List<String>> streams(List<String> lines) {
        Map<String, List<String>> streams = new java.util.TreeMap<>();
        for (String s : List.of("app", "fake", "tool")) streams.put(s, new ArrayList<>());
        for (String line : lines) {
            if (line.strip().equals(ELLIPSIS)) continue;
            String n = normalised(line);
            streams.get(source(n)).add(n);
        }
        // The fake serves before it prints its start line: a poll may be logged first. Stable sort.
        streams.get("fake").sort((a, b) -> Boolean.compare(!a.startsWith("fake-envoy: admin API on"),
                !b.startsWith("fake-envoy: admin API on")));
        streams.replaceAll((s, l) -> collapsed(l));
        return streams;
    }

    static List<String> collapsed(List<String> lines) {
        List<String> out = new ArrayList<>();
        for (String l : lines) if (out.isEmpty() || !out.get(out.size() - 1).equals(l)) out.add(l);
        return out;
    }

    /** The output as a page shows it: of each run of a process's repeated lines the first, then a "...". */
    static List<String> shortened(List<String> raw) {
        Map<String, String> last = new HashMap<>();
        List<String> out = new ArrayList<>();
        boolean elided = false;
        for (String line : raw) {
            String n = normalised(line);
            if (n.equals(last.get(source(n)))) {
                elided = true;
                continue;
            }
            if (elided) out.add(ELLIPSIS);
            elided = false;
            out.add(line);
            last.put(source(n), n);
        }
        if (elided) out.add(ELLIPSIS);
        return out;
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void theNormaliserKeepsWhatMattersAndCollapsesRepeatedPolls() {
        // A stale line must fail; only counts and timings may differ.
        List<String> shown = List.of("envoy-preflight: poll 1: state PRE_INITIALIZING", ELLIPSIS,
                "envoy-preflight: LIVE after 17 polls in 2928 ms", "envoy-preflight: started the app, pid 8500: [true]");
        List<String> printed = List.of("envoy-preflight: poll 1: state PRE_INITIALIZING",
                "envoy-preflight: poll 2: state PRE_INITIALIZING", "envoy-preflight: poll 3: state PRE_INITIALIZING",
                "envoy-preflight: LIVE after 3 polls in 301 ms", "envoy-preflight: started the app, pid 77: [true]");
        assertEquals(streams(shown), streams(printed));
        assertEquals(streams(shown), streams(shortened(printed)));
        List<String> stale = new ArrayList<>(printed);
        stale.set(3, "envoy-preflight: LIVE after 3 polls");
        assertFalse(streams(shown).equals(streams(stale)));
        assertFalse(streams(shown).equals(streams(printed.subList(0, 4))), "a missing line fails");
    }

    // ---------------------------------------------------------------- the setting table

    static final String SETTINGS_START = "<!-- settings:start -->";
    static final String SETTINGS_END = "<!-- settings:end -->";

    /** The setting table as docs/configuration.md shows it, from the tool's own Setting enum. */
    static List<String> settingsTable() {
        List<String> rows = new ArrayList<>(List.of("| variable | aliases | flag | default | meaning |",
                "|---|---|---|---|---|"));
        for (EnvoyPreflight.Setting s : EnvoyPreflight.Setting.values()) {
            List<String> flags = new ArrayList<>();
            for (String flag : s.flags) {
                String f = s.kind == EnvoyPreflight.Setting.Kind.BOOL && flag.startsWith("--") ? "--[no-]" + flag.substring(2) : flag;
                flags.add(code(s.label == null ? f : f + " " + s.label));
            }
            String aliases = s.aliases.isEmpty() ? "\u2014" : s.aliases.stream()
                    .map(a -> code(a.variable()) + (a.inverted() ? " (inverted)" : "")).collect(Collectors.joining(", "));
            String dflt = s.defaultValue == null ? "\u2014" : code(s.show(s.defaultValue));
            rows.add("| " + code(s.variable) + (s.kind.list() ? " (a list)" : "") + " | " + aliases + " | "
                    + String.join(", ", flags) + (s.kind.list() ? " (repeatable)" : "") + " | " + dflt + " | "
                    + cell(s.help) + " |");
        }
        return rows;
    }

    static String code(String s) {
        return "`" + cell(s) + "`";
    }

    /** A table cell: a | would end it, also inside backticks. */
    static String cell(String s) {
        return s.replace("|", "\\|");
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void theSettingTableIsRenderedFromTheTool() throws IOException {
        checkGenerated(ROOT.resolve("docs/configuration.md"), SETTINGS_START, SETTINGS_END, settingsTable());
    }

    static final String EXIT_CODES_START = "<!-- exit-codes:start -->";
    static final String EXIT_CODES_END = "<!-- exit-codes:end -->";

    /** The README's one exit-code table is EnvoyPreflight.Exit's, as --help's footer is. */
    @org.junit.jupiter.api.Tag("fast")
    @Test
    void theExitCodeTableIsRenderedFromTheTool() throws IOException {
        Path readme = ROOT.resolve("README.md");
        checkGenerated(readme, EXIT_CODES_START, EXIT_CODES_END, EnvoyPreflight.Exit.table().lines().toList());
        long tables = read(readme).stream().filter(l -> l.startsWith("| code |")).count();
        assertEquals(1, tables, "one exit-code table in the README");
    }

    /** The lines between two markers of a page are the tool's rendering (UPDATE_DOCS=true rewrites them). */
    static void checkGenerated(Path page, String startMarker, String endMarker, List<String> generated) throws IOException {
        List<String> lines = read(page);
        int start = lines.indexOf(startMarker);
        int end = lines.indexOf(endMarker);
        String name = ROOT.relativize(page).toString();
        assertTrue(start >= 0 && end > start, name + ": " + startMarker + " ... " + endMarker);
        if (UPDATE) {
            List<String> rewritten = new ArrayList<>(lines.subList(0, start + 1));
            rewritten.addAll(generated);
            rewritten.addAll(lines.subList(end, lines.size()));
            write(page, rewritten);
            return;
        }
        assertEquals(String.join("\n", generated), String.join("\n", lines.subList(start + 1, end)),
                name + ": the block between " + startMarker + " and " + endMarker
                        + " (UPDATE_DOCS=true ./jbang test Docs rewrites it)");
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void everySettingAndItsAliasesAreNamedInTheDocs() throws IOException {
        // Beyond the table: the variables a migrating user greps for.
        String configuration = Files.readString(ROOT.resolve("docs/configuration.md"));
        for (String variable : TestSupport.TOOL_VARIABLES) {
            if (variable.startsWith("ENVOY_PREFLIGHT_APP_") || variable.equals("ENVOY_PREFLIGHT_MOVED")
                    || variable.endsWith("JAVA_OPTIONS") || variable.equals("JAVA_TOOL_OPTIONS")) continue;
            assertTrue(configuration.contains("`" + variable + "`"), variable);
        }
    }

    // ---------------------------------------------------------------- links and spellings

    /** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
    static String slug(String heading) {
        StringBuilder b = new StringBuilder();
        heading.strip().toLowerCase(java.util.Locale.ROOT).codePoints().forEach(c -> {
            if (Character.isLetterOrDigit(c) || c == '-' || c == '_') b.appendCodePoint(c);
            else if (c == ' ') b.append('-');
        });
        return b.toString();
    }

    static Set<String> anchors(Path page) {
        Set<String> anchors = new LinkedHashSet<>();
        Map<String, Integer> count = new HashMap<>();
        List<String> lines = read(page);
        Set<Integer> inBlocks = new java.util.HashSet<>();
        for (Block b : blocks(lines)) for (int i = b.open(); i <= b.close(); i++) inBlocks.add(i);
        for (int i = 0; i < lines.size(); i++) {
            Matcher h = Pattern.compile("^#{1,6} (.*)$").matcher(lines.get(i));
            if (inBlocks.contains(i) || !h.matches()) continue;
            String s = slug(h.group(1));
            int n = count.merge(s, 1, Integer::sum);
            anchors.add(n == 1 ? s : s + "-" + (n - 1));
        }
        return anchors;
    }

    @org.junit.jupiter.api.Tag("fast")
    @Test
    void everyRelativeLinkAndAnchorLeadsSomewhere() throws IOException {
        // Sections moved between the README and docs/: a link left behind must fail here, not on a reader.
        List<String> broken = new ArrayList<>();
        for (Path page : pages()) {
            Matcher m = Pattern.compile("\\]\\(([^)\\s]+)\\)").matcher(Files.readString(page));
            while (m.find()) {
                String target = m.group(1);
                if (target.matches("^[a-z]+:.*")) continue; // https:, mailto:
                String file = target.contains("#") ? target.substring(0, target.indexOf('#')) : target;
                String anchor = target.contains("#") ? target.substring(target.indexOf('#') + 1) : null;
                Path to = file.isEmpty() ? page : page.getParent().resolve(file).normalize();
                if (!Files.exists(to)) {
                    broken.add(ROOT.relativize(page) + ": " + target + " (no such file)");
                } else if (anchor != null && !anchors(to).contains(anchor)) {
                    broken.add(ROOT.relativize(page) + ": " + target + " (no such heading; there are " + anchors(to) + ")");
                }
            }
        }
        assertEquals(List.of(), broken);
    }

    @Test
    void faultsAreSpelledOneWayEverywhere() throws IOException {
        // The fake's --help, its log and the docs all say never-answer; the enum's NEVER_ANSWER is for code.
        for (FakeEnvoy.Fault f : FakeEnvoy.Fault.values()) {
            assertEquals(f, FakeEnvoy.Fault.parse(f.label()), f.label());
            assertTrue(f.label().matches("[a-z0-9]+(-[a-z0-9]+)*"), f.label());
            for (Path page : pages()) {
                assertFalse(Pattern.compile("\\b" + f.name() + "\\b").matcher(Files.readString(page)).find(),
                        ROOT.relativize(page) + " spells " + f.name() + "; write " + f.label());
            }
        }
        String faults = Arrays.stream(FakeEnvoy.Fault.values()).map(FakeEnvoy.Fault::label).collect(Collectors.joining(", "));
        String reliability = Files.readString(ROOT.resolve("docs/reliability.md"));
        assertTrue(reliability.contains(faults), "docs/reliability.md shows the fake's --help with " + faults);
    }

    // ---------------------------------------------------------------- catalogs and app install

    /**
     * What the README and docs/install.md say about `@org`, `jbang catalog add` and `jbang app
     * install`, run with the committed launcher in a scratch home folder (JBang's own user.home
     * too: it does not read $HOME), so that the claims stay true and nobody's real shell files move.
     */
    @org.junit.jupiter.api.Tag("launcher")
    @Nested
    @ResourceLock(value = TestSupport.CPU, mode = ResourceAccessMode.READ)
    class Install {
        Path home;
        Path elsewhere;

        record Run(int exitCode, String output) {}

        Run jbang(String path, String... args) throws Exception {
            List<String> command = new ArrayList<>(List.of(ROOT.resolve("jbang").toString()));
            command.addAll(List.of(args));
            return run(command, path);
        }

        Run run(List<String> command, String path) throws Exception {
            Path log = Files.createTempFile(home, "run", ".log");
            ProcessBuilder pb = new ProcessBuilder(command).directory(elsewhere.toFile())
                    .redirectErrorStream(true).redirectOutput(log.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(Path.of("/dev/null").toFile()));
            TestSupport.TOOL_VARIABLES.forEach(pb.environment()::remove);
            for (String v : List.of("JBANG_DIR", "JBANG_JAVA_OPTIONS")) pb.environment().remove(v);
            pb.environment().put("HOME", home.toString());
            pb.environment().put("JBANG_JAVA_OPTIONS", "-Duser.home=" + home);
            pb.environment().put("JBANG_NO_VERSION_CHECK", "true");
            // the cache the suite built the script into (no compile: the docs' claims are about the home
            // folder, which holds no cache), and the Maven repository that holds picocli and Gson: no download
            pb.environment().put("JBANG_CACHE_DIR", TestSupport.callersJbangCache().toString());
            pb.environment().put("JBANG_REPO", TestSupport.callersMavenRepository().toString());
            pb.environment().put("PATH", path);
            Process p = pb.start();
            try {
                assertTrue(p.waitFor(180, TimeUnit.SECONDS), command + " did not finish:\n" + TestSupport.read(log));
            } finally {
                p.descendants().forEach(ProcessHandle::destroyForcibly);
            }
            String out = TestSupport.read(log);
            Files.delete(log);
            return new Run(p.exitValue(), out);
        }

        /** Every file below home, but the logs of this test. */
        Map<String, String> files() throws IOException {
            Map<String, String> files = new java.util.TreeMap<>();
            try (Stream<Path> walk = Files.walk(home)) {
                for (Path f : walk.filter(Files::isRegularFile).toList()) {
                    String name = home.relativize(f).toString();
                    if (name.startsWith(".jbang/cache/") || name.matches("run.*\\.log")) continue;
                    files.put(name, Files.readString(f));
                }
            }
            return files;
        }

        @org.junit.jupiter.api.AfterEach
        void removeTheScratchFolders() throws IOException {
            for (Path dir : Arrays.asList(home, elsewhere)) {
                if (dir == null) continue;
                try (Stream<Path> walk = Files.walk(dir)) {
                    for (Path p : walk.sorted(java.util.Comparator.reverseOrder()).toList()) Files.delete(p);
                }
            }
        }

        @Test
        void catalogsAndAppInstallDoWhatTheDocsSay() throws Exception {
            String systemPath = Arrays.stream(System.getenv("PATH").split(":"))
                    .filter(d -> !d.endsWith("/.jbang/bin")).collect(Collectors.joining(":"));
            for (String dir : systemPath.split(":")) {
                Path installed = Path.of(dir.isEmpty() ? "." : dir, "jbang");
                Assumptions.assumeFalse(Files.isExecutable(installed)
                                && !installed.toRealPath().equals(ROOT.resolve("jbang").toRealPath()),
                        "an installed jbang (" + installed + ") would run instead of the launcher's JBang 0.132.1");
            }
            home = Files.createTempDirectory("docs-home");
            elsewhere = Files.createTempDirectory("docs-elsewhere"); // outside the clone and its catalog
            String bin = home.resolve(".jbang/bin").toString();

            Run unknown = jbang(systemPath, "envoy-preflight@docs-no-such-catalog", "--", "true");
            assertEquals(2, unknown.exitCode(), unknown.output());
            assertTrue(unknown.output().contains("Unknown catalog 'docs-no-such-catalog'"), unknown.output());
            Run outside = jbang(systemPath, "envoy-preflight", "--", "true");
            assertEquals(2, outside.exitCode(), outside.output());
            assertTrue(outside.output().contains("Script or alias could not be found or read: 'envoy-preflight'"), outside.output());

            String catalog = ROOT.resolve("jbang-catalog.json").toString();
            Run add = jbang(systemPath, "catalog", "add", "--name", "org", catalog);
            assertEquals(0, add.exitCode(), add.output());
            assertTrue(add.output().contains("Catalog 'org' added to '" + home.resolve(".jbang/jbang-catalog.json") + "'"), add.output());
            // the launcher's lock is in JBANG_DIR or the passwd home's .jbang, not the -Duser.home this test gives JBang
            assertEquals(Set.of(".jbang/jbang-catalog.json"), files().keySet(), "catalog add writes only its file");
            assertTrue(files().get(".jbang/jbang-catalog.json").replaceAll("\\s", "")
                    .contains("\"org\":{\"catalog-ref\":\"" + catalog + "\"}"), files().toString());
            Run byName = jbang(systemPath, "envoy-preflight@org", "--", "echo", "hello from the app");
            assertEquals(0, byName.exitCode(), byName.output());
            assertTrue(byName.output().contains("hello from the app"), byName.output());
            Run byFile = jbang(systemPath, "envoy-preflight@" + catalog, "--", "echo", "by file");
            assertEquals(0, byFile.exitCode(), byFile.output());
            assertTrue(byFile.output().contains("by file"), byFile.output());

            // With ~/.jbang/bin on PATH: the command, and no shell file touched.
            for (String rc : List.of(".zshrc", ".profile", ".bash_profile")) Files.writeString(home.resolve(rc), "# mine\n");
            Map<String, String> before = files();
            Run install = jbang(bin + ":" + systemPath, "app", "install", "--name", "envoy-preflight", "envoy-preflight@org");
            assertEquals(0, install.exitCode(), install.output());
            Map<String, String> after = files();
            String script = after.remove(".jbang/bin/envoy-preflight");
            assertNotNull(script, after.toString());
            assertEquals(List.of("#!/bin/sh", "exec jbang run envoy-preflight@org \"$@\""), script.strip().lines().toList());
            assertEquals(before, after, "on PATH: nothing else changed");
            Run noJbang = run(List.of(bin + "/envoy-preflight", "--", "echo", "hi"), bin + ":/usr/bin:/bin");
            assertEquals(127, noJbang.exitCode(), noJbang.output());
            assertTrue(noJbang.output().contains("jbang: not found"), noJbang.output());
            Files.createSymbolicLink(home.resolve(".jbang/bin/jbang"), ROOT.resolve("jbang"));
            Run installed = run(List.of(bin + "/envoy-preflight", "--", "echo", "hello from the command"), bin + ":" + systemPath);
            assertEquals(0, installed.exitCode(), installed.output());
            assertTrue(installed.output().contains("hello from the command"), installed.output());
            Files.delete(home.resolve(".jbang/bin/jbang"));

            // Not on PATH: ~/.bashrc (made) and ~/.zshrc (appended to) put it there; nothing else.
            assertEquals(0, jbang(systemPath, "app", "uninstall", "envoy-preflight").exitCode());
            before = files();
            install = jbang(systemPath, "app", "install", "--name", "envoy-preflight", "envoy-preflight@org");
            assertEquals(0, install.exitCode(), install.output());
            assertTrue(install.output().contains("Please start a new Shell"), install.output());
            after = files();
            String lines = "\n# Add JBang to environment\nalias j!=jbang\nexport PATH=\"$HOME/.jbang/bin:$PATH\"\n";
            assertEquals(lines, after.remove(".bashrc"));
            assertEquals("# mine\n" + lines, after.get(".zshrc"));
            after.put(".zshrc", before.get(".zshrc"));
            after.remove(".jbang/bin/envoy-preflight");
            assertEquals(before, after, "not on PATH: .bashrc and .zshrc, nothing else (.profile, .bash_profile)");
            Map<String, String> once = files();
            assertEquals(0, jbang(systemPath, "app", "install", "--force", "--name", "envoy-preflight", "envoy-preflight@org").exitCode());
            assertEquals(once, files(), "installed again: the lines are not appended twice");
            assertEquals(0, jbang(systemPath, "app", "uninstall", "envoy-preflight").exitCode());
            assertFalse(Files.exists(home.resolve(".jbang/bin/envoy-preflight")));
            assertEquals(once.get(".bashrc"), files().get(".bashrc"), "uninstall leaves the shell files as they are");

            // app setup alone makes the same change.
            Files.delete(home.resolve(".bashrc"));
            assertEquals(0, jbang(systemPath, "app", "setup").exitCode());
            assertEquals(lines, files().get(".bashrc"));
        }
    }
}
