///usr/bin/env jbang "$0" "$@" ; exit $?
//JAVA 17+
//DEPS info.picocli:picocli:4.7.7
//DEPS com.google.code.gson:gson:2.13.2
//COMPILE_OPTIONS -XDignore.symbol.file -XDstringConcat=inline
//RUNTIME_OPTIONS -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k -Xmx64m -Xmn4m -Xlog:cds=off -Xlog:cds+dynamic=off
//RUNTIME_OPTIONS -XX:-MaxFDLimit -XX:-UsePerfData --add-opens=java.base/java.lang=ALL-UNNAMED
//CDS
//MANIFEST Add-Opens=java.base/java.lang
//DESCRIPTION Waits for a sidecar (Envoy LIVE, Istio, Linkerd or any ready endpoint), runs your app,
//DESCRIPTION relays its signals, and quits the sidecars when it exits, so Kubernetes Jobs can finish.

// Why these options (each kept because bench/Bench.java shows it pays; docs/launcher.md has more):
// -XDstringConcat=inline   string concatenation without an invokedynamic bootstrap at start-up;
// -XDignore.symbol.file    no warning for sun.misc.Signal, the only signal API on JDK 17;
// SerialGC, C1 only        the fastest start and the least memory for a process that mostly waits;
// -Xmx64m -Xmn4m           a small young generation keeps RSS flat through long waits;
// //CDS, -Xlog:cds=off     JBang archives the classes of a first run; the logging flags silence its
//                          warnings about picocli's Java 5 classes, which cannot be archived.
// -XX:-MaxFDLimit          the JVM would raise the soft open-files limit to the hard one, for the app too;
// -XX:-UsePerfData         no /tmp/hsperfdata_*: as PID 1 of two containers sharing /tmp the JVM would
//                          print a lock warning on stdout, the app's (seen in CI); jcmd PID still works
// --add-opens java.lang    as PID 1, the JDK's own waitpid reaps orphans (App.Orphans); the exported
//                          jar says the same in its manifest (//MANIFEST).

import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;
import com.google.gson.stream.JsonWriter;
import com.google.gson.stream.MalformedJsonException;
import picocli.CommandLine;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;
import picocli.CommandLine.Model.PositionalParamSpec;

import java.io.*;
import java.math.BigDecimal;
import java.net.*;
import java.nio.charset.StandardCharsets;
import java.nio.file.*;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.time.Instant;
import java.util.*;
import java.util.concurrent.*;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.DoubleSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * envoy-preflight: read the settings, wait for the sidecars, run the app, relay its signals,
 * quit the sidecars, exit with the app's code. The story is {@link #preflight()}; each nested
 * class below it does one job, and the plumbing (logging, values, HTTP) is at the bottom.
 */
public class EnvoyPreflight implements Callable<Integer> {

    static final String VERSION = "1.2.0";
    static final String NAME = "envoy-preflight";

    // What the command line said; picocli fills it from the Setting and Mode tables (see commandLine()).
    final Map<Setting, String> flags = new EnumMap<>(Setting.class);
    final Set<Config.Mode> modes = EnumSet.noneOf(Config.Mode.class);
    Integer exitCode; // --exit-code, with --quit-only
    List<String> command = List.of();
    // The process's own, replaceable so that tests can run the story in-process.
    Map<String, String> env = System.getenv();
    PrintStream out = System.out;
    PrintStream err = System.err;
    private CommandSpec spec; // null when picocli was skipped

    public static void main(String[] args) {
        // Containers configure by environment and pass only the command: then there is nothing
        // for picocli to parse, and skipping it saves ~100 ms of start-up (its Java 5 classes
        // can't be CDS-archived and go through the old verifier). Options, --help and errors
        // all go through picocli.
        boolean endOfOptions = args.length > 0 && args[0].equals("--"); // as picocli reads "--"
        if (endOfOptions || args.length > 0 && !args[0].startsWith("-")) {
            EnvoyPreflight onlyCommand = new EnvoyPreflight();
            onlyCommand.command = List.of(args).subList(endOfOptions ? 1 : 0, args.length);
            System.exit(onlyCommand.call());
        }
        System.exit(commandLine(new EnvoyPreflight()).execute(args));
    }

    /** Never throws: a bug of ours becomes exit code 70, after the sidecar was still quit. */
    @Override
    public Integer call() {
        Exit.Ending end;
        try {
            end = preflight();
        } catch (RuntimeException | Error e) {
            end = Exit.internalError(Log.forErrors(this), e, true);
        }
        return tellThePod(end);
    }

    /** The story: read the settings, then one mode, decided once by Config; the code, and why if it is ours. */
    Exit.Ending preflight() {
        readFlags();
        Config config;
        try {
            config = Config.resolve(this);
        } catch (Config.Invalid e) {
            return usage(e.getMessage());
        }
        Log log = new Log(config.on(Setting.VERBOSE), config.logFormat(), err);
        for (Config.Warning w : config.warnings()) log.warn(w.event(), w.message(), w.fields()); // no lambda at start
        return switch (config.mode()) {
            case CHECK -> Exit.Ending.of(check(config));
            case DRY_RUN -> Exit.Ending.of(dryRun(config));
            case WAIT_ONLY -> exit(log, new Wait(config, log).until(watch(config, log), false).ending()); // no quit
            case QUIT_ONLY -> shutDown(config, watch(config, log), log, Exit.Ending.of(exitCode == null ? 0 : exitCode),
                    null); // as if an app had exited
            case RUN -> awaitRunShutDown(config, watch(config, log), log);
        };
    }

    /** Await the sidecars, run the app, shut down; a bug of ours in any step still quits them, and is exit 70. */
    Exit.Ending awaitRunShutDown(Config config, Lifecycle lifecycle, Log log) {
        Wait.Result waited = null;
        Exit.Ending end = Exit.Ending.of(Exit.SOFTWARE.code);
        Throwable bug = null;
        try {
            waited = new Wait(config, log).until(lifecycle, true);
            end = waited.startsApp() ? lifecycle.run(new App(config.command(), log)) : waited.ending();
        } catch (RuntimeException | Error e) {
            bug = e;
        }
        try {
            shutDown(config, lifecycle, log, end, waited);
        } catch (RuntimeException | Error e) {
            bug = e; // as a finally would have it: the later bug is the one told
        }
        // told last, after the quit; the pod hears of it only if no app ran (else the app's own message stands)
        return bug == null ? end : Exit.internalError(log, bug, !lifecycle.appStarted());
    }

    /** Every end after an app ran, or might have: first what a watching sidecar reads, then the quit plan. */
    Exit.Ending shutDown(Config config, Lifecycle lifecycle, Log log, Exit.Ending end, Wait.Result waited) {
        Exit.exitFile(config.exitFile(), end.code(), log);
        lifecycle.buried(end.code()); // also when the app never ran: kubexit's sidecars stop all the same
        boolean noSidecar = waited != null && waited.outcome() == Wait.Outcome.ABSENT && !Quit.cameLate(config, log);
        new Quit(config.duration(Setting.QUIT_TIMEOUT), log, lifecycle.appPid(), lifecycle::stopSignalled)
                .run(Plan.of(config, end.code(), noSidecar), config.duration(Setting.QUIT_CONFIRM_TIMEOUT));
        return exit(log, end);
    }

    /** Exit 2: said on stderr, and to a watching sidecar (the quit-only run's, which quits nothing now). */
    Exit.Ending usage(String message) {
        Log.forErrors(this).error(Log.Event.INVALID, message);
        tellTheSidecars(Exit.USAGE.code);
        return new Exit.Ending(Exit.USAGE.code, message);
    }

    /** From here on, signals are ours to handle (and the app's to get); the -v log shows the settings. */
    Lifecycle watch(Config config, Log log) {
        if (log.verbose()) { // built only if shown
            int sidecars = config.sidecars();
            log.info(Log.Event.CONFIG, "configuration: " + String.join(", ", config.describe()) + (sidecars > 0 ? ""
                    : "; no sidecar is configured: nothing is waited for or quit"), "settings", config.shown(),
                    "set_by", config.setBy(), "sidecars", sidecars);
        }
        Lifecycle lifecycle = new Lifecycle(log, Exit.Tombstone.of(config.tombstone(), log));
        Lifecycle.Signals.install(lifecycle, log);
        return lifecycle;
    }

    static Exit.Ending exit(Log log, Exit.Ending end) {
        log.info(Log.Event.EXIT, "exit code " + end.code(), "code", end.code());
        return end;
    }

    /** --check: one poll of each readiness target, each answer on stdout; 0 only if all are ready. */
    int check(Config config) {
        boolean all = true;
        for (Wait.Target target : Wait.targets(config)) {
            Wait.Poll poll = target.poll(Wait.POLL_TIMEOUT, new Http.Abort());
            out.println(target.checked(poll));
            all &= poll.ready();
        }
        return all ? 0 : Exit.NOT_READY.code;
    }

    /** --dry-run: the settings and what would be done, on stdout; runs and sends nothing. */
    int dryRun(Config config) {
        config.describe().forEach(out::println);
        out.println("command=" + config.command());
        if (config.shouldWait()) {
            String deadline = "for as long as it takes";
            String absence = "";
            for (Wait.Limit limit : Wait.limits(config)) {
                if (limit.outcome() == Wait.Outcome.ABSENT) absence = "; " + limit.describe();
                else deadline = limit.describe();
            }
            List<String> targets = Wait.targets(config).stream().map(t -> t.wording().until()).toList();
            out.println("before start: " + String.join(", then ", targets) + ", " + deadline + absence);
        } else {
            out.println("before start: no waiting (" + (config.on(Setting.START_WITHOUT_ENVOY) ? "start without Envoy"
                    : "no admin API") + ")");
        }
        Plan success = Plan.of(config, 0, false);
        Plan failure = Plan.of(config, 1, false);
        out.println("at exit with code 0: " + success.describe());
        out.println("at exit with code 1: " + failure.describe());
        Duration confirm = config.duration(Setting.QUIT_CONFIRM_TIMEOUT);
        String confirmation = success.steps().isEmpty() ? failure.confirmation(confirm) : success.confirmation(confirm);
        if (confirmation != null) out.println("after the quit: " + confirmation);
        return 0;
    }

    /**
     * When the tool failed on its own, before any app ran, the reason goes to the termination message,
     * which `kubectl describe pod` shows; after an app ran (no reason; or --quit-only's), its own message stands.
     */
    int tellThePod(Exit.Ending end) {
        int code = end.code();
        if (end.reason() == null || modes.contains(Config.Mode.QUIT_ONLY)) return code;
        String reason = Log.escape(Log.redact(end.reason()));
        String path = ((String) early(Setting.TERMINATION_LOG)).strip();
        boolean given = !path.equals(Setting.TERMINATION_LOG.defaultValue);
        if (path.equalsIgnoreCase("off") || !given && !Files.isWritable(Path.of(path))) return code;
        try {
            Exit.terminationMessage(Path.of(path), NAME + ": " + reason, " (exit " + code + ")\n");
        } catch (IOException | RuntimeException e) {
            String error = Exit.reason(e);
            Log.forErrors(this).warn(Log.Event.TERMINATION_LOG, "could not write the termination message to " + path
                    + ": " + error, "path", path, "error", error);
        }
        return code;
    }

    /** Exit 2 tells a watching sidecar too, through whichever of the exit file and the tombstone is valid alone. */
    private void tellTheSidecars(int code) {
        if (!modes.isEmpty() && !modes.contains(Config.Mode.QUIT_ONLY)) return; // --check, --dry-run, --wait-only
        Log log = Log.forErrors(this);
        Path exitFile = Exit.absolute((String) early(Setting.EXIT_FILE)); // null where not valid: nothing to write
        Path tombstone = null;
        try {
            tombstone = Exit.tombstone(env);
        } catch (Config.Invalid e) {
            // a bad tombstone: likewise
        }
        if (Exit.oneFile(exitFile, tombstone)) return; // one file for both: neither would be right
        Exit.exitFile(exitFile, code, log);
        Exit.Tombstone grave = Exit.Tombstone.of(tombstone, log);
        if (grave != null) grave.died(code);
    }

    /** Its value before the configuration is known; a bad one counts as unset, and is reported later. */
    Object early(Setting s) {
        try {
            return s.value(s.source(flags, env, new ArrayList<>()));
        } catch (Config.Invalid e) {
            return s.defaultValue;
        }
    }

    /**
     * Each exit code's meaning, declared once for --help and the docs (as sysexits(3) and the shell), and the
     * files that tell others of the end: the pod's termination message, the exit file, kubexit's tombstone.
     */
    enum Exit {
        APP(-1, "N", "the app's exit code: it exited by itself"),
        APP_SIGNAL(-1, "128+N", "the app died of signal N"),
        USAGE(2, "2", "bad configuration or command line: nothing was started or quit"),
        UNAVAILABLE(69, "69", "a sidecar was not ready within the give-up timeout: the app was not started"),
        SOFTWARE(70, "70", "internal error of envoy-preflight (a bug: please report it); in a run, the sidecars were"
                + " still quit"),
        NOT_EXECUTABLE(126, "126", "COMMAND found but cannot be run"),
        NOT_FOUND(127, "127", "COMMAND not found"),
        STOPPED(-1, "128+N", "stopped by signal N (TERM 143, INT 130, HUP 129) before the app started"),
        NOT_READY(1, "1", "--check: not every target was ready (0: all were)"),
        WAITED(0, "0", "--wait-only: ready, or the wait timeout passed (else 69 or 128+N, as above)"),
        QUIT_ONLY(-1, "N", "--quit-only: the --exit-code given (default 0)");

        final int code; // -1: a family of codes
        final String shown;
        final String meaning;

        Exit(int code, String shown, String meaning) {
            this.code = code;
            this.shown = shown;
            this.meaning = meaning;
        }

        /** The codes that say the tool failed on its own, before any app ran: the pod is told why. */
        static final Set<Exit> OWN = EnumSet.of(USAGE, UNAVAILABLE, SOFTWARE, NOT_EXECUTABLE, NOT_FOUND, STOPPED);

        /** How a run ends: the exit code, and why where the tool failed on its own (null: the app's code stands). */
        record Ending(int code, String reason) {
            static Ending of(int code) { return new Ending(code, null); }
        }

        /** A bug of ours: exit 70, and the pod is told unless an app ran (its own message stands). */
        static Ending internalError(Log log, Throwable e, boolean ours) {
            String problem = "internal error: " + e;
            log.error(Log.Event.INTERNAL_ERROR, problem, "error", e.toString());
            return new Ending(SOFTWARE.code, ours ? problem : null);
        }

        /** OWN as --help says it: "2, 69, 70, 126, 127, or 128+N before the app started". */
        static String ownCodes() {
            List<String> shown = new ArrayList<>();
            for (Exit e : OWN) shown.add(e.shown);
            return String.join(", ", shown.subList(0, shown.size() - 1)) + ", or " + shown.get(shown.size() - 1)
                    + " before the app started";
        }

        /** For --help's footer: "  2      bad configuration ...", wrapped under its meaning at 80 columns. */
        static String[] footer() {
            List<String> lines = new ArrayList<>(List.of("", "Exit codes:"));
            for (Exit e : values()) {
                StringBuilder line = new StringBuilder("  " + e.shown + "      ".substring(e.shown.length()));
                for (String word : e.meaning.split(" ")) {
                    if (line.length() + 1 + word.length() > 79) {
                        lines.add(line.toString());
                        line = new StringBuilder("        ");
                    }
                    line.append(' ').append(word);
                }
                lines.add(line.toString());
            }
            return lines.toArray(new String[0]);
        }

        /** For README.md: the same, as a Markdown table (DocsTests checks that the README shows it). */
        static String table() {
            StringBuilder b = new StringBuilder("| code | meaning |\n|---|---|\n");
            for (Exit e : values()) b.append("| ").append(e.shown).append(" | ").append(e.meaning).append(" |\n");
            return b.toString();
        }

        /**
         * Only ever a regular file, never through a link, never a FIFO (an open would block without a reader);
         * at most the 4096 bytes Kubernetes keeps, the reason first and cut to fit.
         */
        static void terminationMessage(Path path, String reason, String end) throws IOException {
            if (Files.isSymbolicLink(path)) throw new IOException("a symbolic link, which is not followed");
            LinkOption here = LinkOption.NOFOLLOW_LINKS;
            if (Files.exists(path, here) && !Files.isRegularFile(path, here)) {
                throw new IOException("not a regular file (a FIFO, folder or device)");
            }
            byte[] bytes = (reason + end).getBytes(StandardCharsets.UTF_8);
            if (bytes.length > 4096) {
                int cut = 4096 - end.length() - 3;
                while (cut > 0 && (bytes[cut] & 0xC0) == 0x80) cut--; // not inside a character
                String cutText = new String(bytes, 0, cut, StandardCharsets.UTF_8);
                bytes = (cutText + "..." + end).getBytes(StandardCharsets.UTF_8);
            }
            Files.write(path, bytes, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING, here); // a link made since: O_NOFOLLOW
        }

        /** Why a file could not be written, in our words (the JDK's exception names its class, our temporary file). */
        static String reason(Exception e) {
            if (e instanceof NoSuchFileException) return "its folder does not exist";
            if (e instanceof AccessDeniedException) return "permission denied";
            if (e instanceof FileSystemException f && f.getReason() != null) return f.getReason();
            return e.getMessage() != null ? e.getMessage() : "failed";
        }

        /** The exit code and a newline, before the quit sequence: a sidecar watching it starts stopping at once. */
        static void exitFile(Path path, int code, Log log) {
            if (path == null) return;
            try {
                writeAtomically(path, code + "\n");
                log.info(Log.Event.EXIT_FILE, "wrote exit code " + code + " to " + path, "path", path.toString(),
                        "code", code);
            } catch (IOException | RuntimeException e) {
                String error = reason(e);
                log.warn(Log.Event.EXIT_FILE, "could not write the exit file " + path + ": " + error,
                        "path", path.toString(), "error", error);
            }
        }

        /** A temporary name beside it, then a rename: a reader sees the old file or the whole new one. */
        static void writeAtomically(Path path, String text) throws IOException {
            // a short temporary name of its own: any name that fits the folder fits (Config checks the length)
            Path temporary = Files.createTempFile(path.toAbsolutePath().getParent(), ".envoy-preflight", ".tmp");
            try {
                Files.writeString(temporary, text);
                // readable by a sidecar running as another user (kubexit's os.Create gives 0666 less the umask)
                Files.setPosixFilePermissions(temporary, PosixFilePermissions.fromString("rw-r--r--"));
                Files.move(temporary, path, StandardCopyOption.ATOMIC_MOVE,
                        StandardCopyOption.REPLACE_EXISTING);
            } finally {
                Files.deleteIfExists(temporary);
            }
        }

        /**
         * kubexit's tombstone for the app ($KUBEXIT_GRAVEYARD/$KUBEXIT_NAME), as karlkfi/kubexit's
         * pkg/tombstone writes it: YAML with Born, then Died and ExitCode, times in RFC 3339, so that
         * a sidecar wrapped by kubexit with KUBEXIT_DEATH_DEPS=NAME stops when the app exits. Like
         * kubexit, it makes the directory; unlike it, a failure never changes our exit code.
         */
        record Tombstone(Path file, Log log, String[] firstLine, boolean[] died) {
            static Tombstone of(Path file, Log log) {
                return file == null ? null : new Tombstone(file, log, new String[1], new boolean[1]);
            }

            void born() {
                firstLine[0] = "Born: \"" + Instant.now() + "\"\n";
                write(firstLine[0]);
            }

            void died(int code) {
                if (died[0]) return;
                died[0] = true;
                // as kubexit when its child never started: Died and ExitCode, no Born
                String born = firstLine[0] == null ? "" : firstLine[0];
                write(born + "Died: \"" + Instant.now() + "\"\nExitCode: " + code + "\n");
            }

            private void write(String yaml) {
                try {
                    Files.createDirectories(file.getParent());
                    writeAtomically(file, yaml);
                } catch (IOException | RuntimeException e) {
                    String error = reason(e);
                    log.warn(Log.Event.TOMBSTONE, "could not write kubexit's tombstone " + file + ": " + error,
                            "path", file.toString(), "error", error);
                }
            }
        }

        /** The exit file and the tombstone are one file, as the kernel finds them (their folders' links followed). */
        static boolean oneFile(Path exitFile, Path tombstone) {
            return exitFile != null && tombstone != null && real(exitFile).equals(real(tombstone));
        }

        private static Path real(Path file) {
            Path path = file.toAbsolutePath().normalize();
            try {
                return path.getParent().toRealPath().resolve(path.getFileName());
            } catch (IOException e) {
                return path; // no folder yet: nothing to follow
            }
        }

        /** kubexit's tombstone, $KUBEXIT_GRAVEYARD/$KUBEXIT_NAME, where both are set; else null. */
        static Path tombstone(Map<String, String> env) throws Config.Invalid {
            String name = env.getOrDefault("KUBEXIT_NAME", "");
            String graveyard = env.getOrDefault("KUBEXIT_GRAVEYARD", "");
            if (name.isEmpty() || graveyard.isEmpty()) return null;
            if (name.contains("/") || name.equals(".") || name.equals("..") || name.indexOf('\0') >= 0) {
                throw new Config.Invalid("KUBEXIT_NAME: not a file name: '" + Log.shown(name) + "'");
            }
            if (graveyard.indexOf('\0') >= 0 || Path.of(graveyard).toAbsolutePath().normalize().getParent() == null) {
                throw new Config.Invalid("KUBEXIT_GRAVEYARD: not a folder for tombstones: '" + Log.shown(graveyard)
                        + "'");
            }
            String file = Path.of(graveyard, name).toString();
            try {
                return absolute(file(file));
            } catch (IllegalArgumentException e) {
                throw new Config.Invalid("KUBEXIT_GRAVEYARD/KUBEXIT_NAME: " + e.getMessage() + ": '" + Log.shown(file)
                        + "'");
            }
        }

        /** A file setting's path as the tool writes it: absolute, normalized; null where unset. */
        static Path absolute(String path) {
            return path == null ? null : Path.of(path).toAbsolutePath().normalize();
        }

        /** A file we write: a path, not a folder, its name short enough for the file system (255 bytes). */
        static String file(String raw) {
            Path file = Path.of(path(raw)).toAbsolutePath().normalize().getFileName();
            if (file == null || Files.isDirectory(Path.of(raw))) {
                throw new IllegalArgumentException("a folder, not a file");
            }
            if (file.toString().getBytes(StandardCharsets.UTF_8).length > 255) {
                throw new IllegalArgumentException("the file name is longer than 255 bytes");
            }
            return raw;
        }

        /** A file's path: not empty, no NUL. */
        static String path(String raw) {
            if (raw.isBlank() || raw.indexOf('\0') >= 0) throw new IllegalArgumentException("not a path");
            return raw;
        }
    }

    // --- The command line, built from the Setting and Mode tables so that each is declared once ---

    static CommandLine commandLine(EnvoyPreflight command) {
        CommandSpec spec = CommandSpec.wrapWithoutInspection(command);
        command.spec = spec;
        spec.name(NAME).version(NAME + " " + VERSION).mixinStandardHelpOptions(true);
        spec.usageMessage().sortOptions(false).autoWidth(true)
                .customSynopsis("envoy-preflight [OPTIONS] [--] COMMAND [ARG...]")
                .description("Waits until the Envoy admin API reports LIVE and each ready endpoint answers",
                        "2xx, runs COMMAND, relays signals to it, and when it exits tells the sidecars to",
                        "quit. Exits with its exit code. Options go before COMMAND; everything from",
                        "COMMAND on is passed to it verbatim. A flag wins over its environment variable,",
                        "a variable over its alias; an empty variable counts as unset.")
                .footer(Exit.footer());
        for (Setting s : Setting.values()) spec.addOption(option(s));
        for (Config.Mode m : Config.Mode.values()) {
            if (m.flag == null) continue;
            spec.addOption(OptionSpec.builder(m.flag).type(boolean.class).description(m.help).build());
        }
        spec.addOption(OptionSpec.builder("--exit-code").paramLabel("N").type(Integer.class)
                .description("With --quit-only: the exit code to quit with and exit with (0-255, default 0).").build());
        spec.addPositional(PositionalParamSpec.builder().paramLabel("COMMAND").arity("0..*")
                .type(List.class).auxiliaryTypes(String.class)
                .description("The app and its arguments, looked up on PATH like a shell does.").build());
        return new CommandLine(spec)
                .setStopAtPositional(true)   // `envoy-preflight ls --help`: --help is ls's
                .setExpandAtFiles(false)     // `curl -d @body.json` must reach curl as written
                .setParameterExceptionHandler((e, args) -> {
                    // One line, no usage dump: this runs in container logs, not at a prompt. The
                    // format comes from the variable, or from a --log-format parsed before the error.
                    EnvoyPreflight parsed = e.getCommandLine().getCommand();
                    parsed.readFlags();
                    // a mistyped option echoes its value, which may be credentials without a scheme
                    List<String> close = e instanceof CommandLine.UnmatchedArgumentException u ? u.getSuggestions()
                            : List.of();
                    String meant = close.isEmpty() ? "" : ": did you mean " + close.get(0) + "?";
                    return parsed.tellThePod(parsed.usage(e.getMessage().replaceAll("[^\\s'\"=]*@", "***@")
                            + meant + " (see --help)"));
                });
    }

    /** A setting as picocli shows and reads it: its flag, its variables and default in the help. */
    static OptionSpec option(Setting s) {
        StringBuilder env = new StringBuilder(s.variable);
        if (s.kind.list()) env.append(" (separated by commas or spaces)");
        for (Setting.Alias a : s.aliases) {
            env.append(", alias ").append(a.variable()).append(a.inverted() ? " (inverted)" : "");
        }
        OptionSpec.Builder b = OptionSpec.builder(s.flags).description(s.help + "%n  env: " + env
                + (s.defaultValue == null ? "" : ", default: " + s.show(s.defaultValue)));
        if (s.kind == Setting.Kind.BOOL) return b.type(Boolean.class).negatable(true).build();
        if (s.kind.list()) return b.paramLabel(s.label).type(List.class).auxiliaryTypes(String.class).build();
        return b.paramLabel(s.label).type(String.class).build();
    }

    /** Copies what picocli parsed into flags, the modes and command. */
    @SuppressWarnings("unchecked")
    void readFlags() {
        if (spec == null) return;
        for (Setting s : Setting.values()) {
            Object value = spec.findOption(s.flag()).getValue();
            if (value instanceof List<?> list) value = list.isEmpty() ? null : String.join(",", (List<String>) list);
            if (value != null) flags.put(s, value.toString());
        }
        for (Config.Mode m : Config.Mode.values()) {
            if (m.flag != null && Boolean.TRUE.equals(spec.findOption(m.flag).getValue())) modes.add(m);
        }
        exitCode = spec.findOption("--exit-code").getValue();
        List<String> positional = spec.positionalParameters().get(0).getValue();
        command = positional == null ? List.of() : List.copyOf(positional);
    }

    // --- Configuration: every setting once, with its flag, variable, aliases, default, parser, help ---

    enum Setting {
        ADMIN_API("--admin-api", "URL", "ENVOY_ADMIN_API", Kind.BASE_URL, null,
                "Envoy admin base URL, e.g. http://127.0.0.1:15000: wait for LIVE, quit at exit."),
        SIDECARS("--sidecar", "NAME", "ENVOY_PREFLIGHT_SIDECARS", Kind.SIDECAR_LIST, null,
                "Named sidecars, each setting what a user would otherwise write, on its documented default ports:"
                        + " istio, linkerd, cloud-sql-proxy, dapr, vault-agent, consul-dataplane (see"
                        + " docs/configuration.md). A list gets a sidecar's entries first, then the user's; a single"
                        + " value given explicitly wins. Repeatable (comma-separated lists too)."),
        USE_ISTIO_ENDPOINT("--use-istio-endpoint", null, "USE_ISTIO_ENDPOINT", Kind.BOOL, false,
                "Istio's ports: the admin API defaults to http://127.0.0.1:15000 and the Istio quit API to"
                        + " http://127.0.0.1:15020, each where unset."),
        READY_ENDPOINTS("--ready-endpoint", "URL", "GENERIC_READY_ENDPOINTS", Kind.READY_LIST, null,
                "Must be ready before the app starts, after the admin API is LIVE: an http(s) URL that answers"
                        + " GET with 2xx, tcp://HOST:PORT that accepts a connection, or file:///PATH that exists;"
                        + " repeatable, in order (comma-separated lists too)."),
        START_WITHOUT_ENVOY("--start-without-envoy", null, "START_WITHOUT_ENVOY", Kind.BOOL, false,
                "Don't wait for anything, but still quit the sidecars at exit."),
        WAIT_TIMEOUT("--wait-timeout", "DUR", "WAIT_FOR_ENVOY_TIMEOUT", Kind.DURATION, Duration.ZERO,
                "Stop waiting after DUR and start the app anyway (0: wait forever)."),
        GIVE_UP_TIMEOUT("--give-up-timeout", "DUR", "QUIT_WITHOUT_ENVOY_TIMEOUT", Kind.DURATION, Duration.ZERO,
                "Stop waiting after DUR and exit 69 without starting the app; wins over --wait-timeout (0: never)."),
        SIDECAR_ABSENT_AFTER("--absent-after", "DUR", "SIDECAR_ABSENT_AFTER", Kind.DURATION, Duration.ZERO,
                "If for DUR every readiness poll was refused, there is no sidecar: start the app at once, and at"
                        + " exit quit only if it answers by then (0: never judge)."),
        ISTIO_QUIT_API("--istio-quit-api", "URL", "ISTIO_QUIT_API", Kind.BASE_URL, null,
                "pilot-agent base URL, e.g. http://127.0.0.1:15020; POST URL/quitquitquit."),
        ISTIO_FALLBACK_PKILL("--istio-fallback-pkill", null, "ISTIO_FALLBACK_PKILL", Kind.BOOL, false,
                "If the Istio quit API fails, SIGINT pilot-agent as well."),
        ENVOY_KILL_API("--envoy-kill-api", "URL", "ENVOY_KILL_API", Kind.URL, null,
                "Full URL to POST instead of ADMIN_API/quitquitquit wherever that step appears."),
        GENERIC_QUIT_ENDPOINTS("--generic-quit-endpoint", "URL", "GENERIC_QUIT_ENDPOINTS", Kind.URL_LIST, null,
                "Full URL to POST first at exit; repeatable, in order (comma-separated lists too)."),
        CSQL_PROXY_QUIT_URLS("--csql-proxy-quit-url", "URL", "CSQL_PROXY_QUIT_URLS", Kind.URL_LIST, null,
                "Cloud SQL Auth Proxy quit URLs, as the Cloud SQL Proxy Operator injects them (space-separated);"
                        + " POSTed at exit after the generic quit endpoints."),
        QUIT_PROCESSES("--quit-process", "NAME[:SIGNAL]", "GENERIC_QUIT_PROCESSES", Kind.PROCESS_LIST, null,
                "At exit, after the quit endpoints: send SIGNAL (default TERM) to every process whose"
                        + " /proc/PID/comm is NAME (at most 15 bytes, as the kernel keeps it: a longer NAME is"
                        + " rejected), the eldest of a family of one name only, all names at once; wait up to the quit"
                        + " timeout, then KILL those left. Never the tool, its ancestors, the app or its own. Needs"
                        + " shareProcessNamespace: true; a SIGNAL other than TERM is sent with the shell's kill (bash"
                        + " or sh on PATH). Repeatable (comma-separated lists too)."),
        GENERIC_QUIT_ONLY("--generic-quit-only", null, "GENERIC_QUIT_ONLY", Kind.BOOL, false,
                "At exit only the generic quit endpoints and processes: no Istio API, no pkill, no Envoy quit."),
        NEVER_KILL_ISTIO("--never-kill-istio", null, "NEVER_KILL_ISTIO", Kind.BOOL, false,
                "Never quit anything.", new Alias("NEVER_KILL_ENVOY", false)),
        NEVER_KILL_ISTIO_ON_FAILURE("--never-kill-istio-on-failure", null, "NEVER_KILL_ISTIO_ON_FAILURE", Kind.BOOL,
                false, "Don't quit anything when the exit code is not 0.", new Alias("ALWAYS_KILL_ENVOY", true)),
        QUIT_TIMEOUT("--quit-timeout", "DUR", "QUIT_REQUEST_TIMEOUT", Kind.POSITIVE_DURATION, Duration.ofSeconds(5),
                "Time limit of each quit request, and of the wait for signalled quit processes to exit."),
        QUIT_CONFIRM_TIMEOUT("--quit-confirm-timeout", "DUR", "ENVOY_PREFLIGHT_QUIT_CONFIRM_TIMEOUT", Kind.DURATION,
                Duration.ofSeconds(5), "After the quit: wait up to DUR until each sidecar asked to quit has gone (its"
                        + " loopback ports refuse connections, its processes exited), trying the plan's further means"
                        + " halfway; one still there is a warning (0: don't wait)."),
        POLL_MAX_INTERVAL("--poll-max-interval", "DUR", "ENVOY_PREFLIGHT_POLL_MAX_INTERVAL", Kind.POSITIVE_DURATION,
                Duration.ofMillis(200), "Longest pause between two readiness polls; bounds how late the app starts"
                        + " after the sidecar is ready."),
        VERBOSE("-v,--verbose", null, "ENVOY_PREFLIGHT_LOGGING", Kind.BOOL, false,
                "Log each step to stderr (default: warnings and errors only).", new Alias("SCUTTLE_LOGGING", false)),
        LOG_FORMAT("--log-format", "text|json", "ENVOY_PREFLIGHT_LOG_FORMAT", Kind.LOG_FORMAT, Log.Format.TEXT,
                "text, or one JSON object per line."),
        EXIT_FILE("--exit-file", "PATH", "ENVOY_PREFLIGHT_EXIT_FILE", Kind.FILE, null,
                "Write the exit code and a newline to PATH (atomically) before the quit sequence starts, for a"
                        + " sidecar that watches a shared emptyDir. Not with --check, --dry-run or --wait-only."),
        TERMINATION_LOG("--termination-log", "PATH|off", "ENVOY_PREFLIGHT_TERMINATION_LOG", Kind.PATH,
                "/dev/termination-log", "Where to say why when the tool fails on its own (exit " + Exit.ownCodes()
                        + "), for kubectl describe pod; the default only where it exists and is writable; off:"
                        + " nowhere.");

        /** How a setting's text is read; a bad value throws IllegalArgumentException saying why. */
        enum Kind {
            BOOL, DURATION, POSITIVE_DURATION, URL, BASE_URL, LOG_FORMAT, PATH, FILE,
            URL_LIST, READY_LIST, PROCESS_LIST, SIDECAR_LIST;

            /** A repeatable flag, a comma-separated variable, a list value. */
            boolean list() { return compareTo(URL_LIST) >= 0; } // the list kinds come last
        }

        /** A variable read for the setting; inverted (a peer's alias): its true is the setting's false. */
        record Alias(String variable, boolean inverted) {}

        /** The raw text and where it came from; inverted when read from an inverted alias. */
        record Source(String name, String raw, boolean inverted) {}

        final String[] flags;
        final String label;
        final String variable;
        final Kind kind;
        final Object defaultValue; // typed, so that nothing is parsed at start-up; null: unset
        final String help;
        final List<Alias> aliases;
        final List<Alias> readings; // its own variable first, then the aliases

        Setting(String flags, String label, String variable, Kind kind, Object defaultValue, String help,
                Alias... aliases) {
            this.flags = flags.split(","); // one character: String.split's fast path, no regex at start-up
            this.label = label;
            this.variable = variable;
            this.kind = kind;
            this.defaultValue = defaultValue;
            this.help = help;
            this.aliases = List.of(aliases);
            List<Alias> readings = new ArrayList<>(List.of(new Alias(variable, false)));
            readings.addAll(this.aliases);
            this.readings = List.copyOf(readings);
        }

        /** The long flag: how errors and the "set by" line name the command line. */
        String flag() { return flags[flags.length - 1]; }

        /** The flag if given, else the variable, else its first alias set (empty is unset); each is checked. */
        Source source(Map<Setting, String> flagValues, Map<String, String> env, List<Config.Warning> warnings)
                throws Config.Invalid {
            Source chosen = flagValues.containsKey(this) ? new Source(flag(), flagValues.get(this), false) : null;
            for (Alias reading : readings) {
                String raw = env.get(reading.variable());
                if (raw == null || raw.isEmpty()) continue;
                Source found = new Source(reading.variable(), raw, reading.inverted());
                value(found); // an alias is validated like its variable
                if (chosen == null) chosen = found;
                else if (!reading.variable().equals(variable)) {
                    warnings.add(new Config.Warning(Log.Event.SETTING, reading.variable() + " is set, but "
                            + chosen.name() + " wins"));
                }
            }
            return chosen != null ? chosen : new Source(variable, null, false);
        }

        /** The typed value; a bad one names where it came from and what it was. */
        Object value(Source source) throws Config.Invalid {
            String raw = source.raw();
            if (raw == null) return defaultValue == null && kind.list() ? List.of() : defaultValue;
            try {
                return switch (kind) {
                    case BOOL -> bool(raw) != source.inverted();
                    case DURATION -> duration(raw);
                    case POSITIVE_DURATION -> positiveDuration(raw);
                    case URL -> url(raw);
                    case BASE_URL -> baseUrl(raw);
                    case URL_LIST -> list(raw, Setting::url);
                    case READY_LIST -> list(raw, Setting::readiness);
                    case PROCESS_LIST -> list(raw, Plan.Stop::of);
                    case SIDECAR_LIST -> List.copyOf(new LinkedHashSet<>(list(raw, Config.Sidecar::named)));
                    case PATH -> Exit.path(raw);
                    case FILE -> Exit.file(raw);
                    case LOG_FORMAT -> Log.Format.parse(raw);
                };
            } catch (IllegalArgumentException e) {
                throw new Config.Invalid(source.name() + ": " + e.getMessage() + ": '" + Log.shown(raw) + "'");
            }
        }

        /** Its name in the log and --dry-run: the long flag's, plural for a list. */
        String shownName() {
            String name = flag().substring(2);
            if (!kind.list()) return name;
            return name + (name.endsWith("s") ? "es" : "s");
        }

        /** A value as a user would write it, credentials redacted. */
        String show(Object value) {
            return switch (kind) {
                case DURATION, POSITIVE_DURATION -> Log.format((Duration) value);
                case URL_LIST, READY_LIST, PROCESS_LIST, SIDECAR_LIST -> Log.showEach((List<?>) value).toString();
                case LOG_FORMAT -> value.toString().toLowerCase(Locale.ROOT);
                default -> value == null ? "unset" : Log.showOne(value);
            };
        }

        // --- Reading values as the Go original and scuttle read them ---

        /** true or false in any case, nothing else. */
        static boolean bool(String raw) {
            if (raw.equalsIgnoreCase("true")) return true;
            if (raw.equalsIgnoreCase("false")) return false;
            throw new IllegalArgumentException("not a boolean (true or false)");
        }

        /** Go's syntax, compiled at the first duration read, not at each start (bench b); both micros escaped. */
        private static final class Go {
            static final Pattern BARE_SECONDS = Pattern.compile("\\d+(\\.\\d+)?");
            static final Pattern PART = Pattern.compile("(\\d+\\.?\\d*|\\.\\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)");
            static final Map<String, Long> NANOS_PER_UNIT = Map.of("ns", 1L, "us", 1_000L, "\u00b5s", 1_000L,
                    "\u03bcs", 1_000L, "ms", 1_000_000L, "s", 1_000_000_000L, "m", 60_000_000_000L,
                    "h", 3_600_000_000_000L);
        }

        /**
         * Go's syntax (500ms, 1h30m, +5s, -0) as scuttle accepts it, or bare seconds. A non-zero
         * duration never becomes zero, which means "forever": a fraction of a nanosecond rounds up.
         */
        static Duration duration(String raw) {
            String s = raw.trim();
            if (!s.equals(raw) || s.isEmpty()) throw new IllegalArgumentException("not a duration");
            boolean negative = s.startsWith("-");
            if (negative || s.startsWith("+")) s = s.substring(1);
            if (s.isEmpty()) throw new IllegalArgumentException("not a duration");
            BigDecimal nanos;
            if (Go.BARE_SECONDS.matcher(s).matches()) {
                nanos = new BigDecimal(s).multiply(BigDecimal.valueOf(1_000_000_000L));
            } else {
                nanos = BigDecimal.ZERO;
                Matcher m = Go.PART.matcher(s);
                int at = 0;
                while (at < s.length()) {
                    if (!m.find(at) || m.start() != at) {
                        throw new IllegalArgumentException("not a duration (like 500ms, 30s, 2m, 1h30m"
                                + " or a number of seconds)");
                    }
                    nanos = nanos.add(new BigDecimal(m.group(1).endsWith(".") ? m.group(1) + "0" : m.group(1))
                            .multiply(BigDecimal.valueOf(Go.NANOS_PER_UNIT.get(m.group(2)))));
                    at = m.end();
                }
            }
            if (negative && nanos.signum() != 0) throw new IllegalArgumentException("negative duration");
            if (nanos.compareTo(BigDecimal.valueOf(Long.MAX_VALUE)) > 0) {
                throw new IllegalArgumentException("duration too long");
            }
            return Duration.ofNanos(nanos.setScale(0, java.math.RoundingMode.CEILING).longValue());
        }

        static Duration positiveDuration(String raw) {
            Duration d = duration(raw);
            if (d.isZero()) throw new IllegalArgumentException("must be longer than 0");
            return d;
        }

        /** A full http(s) URL with a host, e.g. a generic quit endpoint. */
        static URI url(String raw) {
            if (!raw.contains("://")) throw new IllegalArgumentException("not a URL: add http:// in front");
            URI uri = uri(raw);
            String scheme = uri.getScheme() == null ? "" : uri.getScheme().toLowerCase(Locale.ROOT);
            if (!scheme.equals("http") && !scheme.equals("https")) {
                throw new IllegalArgumentException("not an http or https URL");
            }
            if (uri.getHost() == null || uri.getHost().isEmpty()) {
                throw new IllegalArgumentException("URL has no host");
            }
            if (uri.getRawFragment() != null) throw new IllegalArgumentException("URL has a #fragment");
            if (uri.getPort() == 0 || uri.getPort() > 65535) {
                throw new IllegalArgumentException("port " + uri.getPort() + " is not a port (1 to 65535)");
            }
            return uri;
        }

        /** A readiness target: tcp://HOST:PORT, file:///PATH, or an http(s) URL. */
        static URI readiness(String raw) {
            String scheme = raw.contains(":") ? raw.substring(0, raw.indexOf(':')).toLowerCase(Locale.ROOT) : "";
            if (!scheme.equals("tcp") && !scheme.equals("file")) return url(raw);
            URI uri = uri(raw);
            if (scheme.equals("file")) {
                if (uri.getRawAuthority() != null || uri.getPath() == null || !uri.getPath().startsWith("/")
                        || uri.getRawQuery() != null || uri.getRawFragment() != null) {
                    throw new IllegalArgumentException("not a file URL (file:///PATH, an absolute path)");
                }
                Path.of(uri.getPath()); // e.g. a NUL (%00): rejected here, not at the first poll
                return uri;
            }
            if (uri.getHost() == null || uri.getPort() < 1 || uri.getPort() > 65535 || uri.getRawUserInfo() != null
                    || !(uri.getRawPath() == null || uri.getRawPath().isEmpty() || uri.getRawPath().equals("/"))
                    || uri.getRawQuery() != null || uri.getRawFragment() != null) {
                throw new IllegalArgumentException("not a TCP address (tcp://HOST:PORT, a port from 1 to 65535)");
            }
            return uri;
        }

        private static URI uri(String raw) {
            try {
                return new URI(raw);
            } catch (URISyntaxException e) {
                throw new IllegalArgumentException("not a URL (" + e.getReason() + ")");
            }
        }

        /** A base URL that paths are appended to: no query; a trailing slash is fine. */
        static URI baseUrl(String raw) {
            URI uri = url(raw);
            if (uri.getRawQuery() != null) throw new IllegalArgumentException("base URL has a ?query");
            return uri;
        }

        /**
         * A list's entries, separated by commas or spaces (no URL, name or signal holds either), each read by one;
         * a bad entry is named by its place: a password holding a comma would split it, and show half of it.
         */
        static <T> List<T> list(String raw, java.util.function.Function<String, T> one) {
            List<T> list = new ArrayList<>();
            String[] entries = raw.split("[,\\s]+");
            for (int i = 0; i < entries.length; i++) {
                String entry = entries[i].strip();
                if (entry.isEmpty()) continue;
                try {
                    list.add(one.apply(entry));
                } catch (IllegalArgumentException e) {
                    throw new IllegalArgumentException("entry " + (i + 1) + ": " + e.getMessage());
                }
            }
            return List.copyOf(list);
        }
    }

    /** The accepted configuration; {@link #resolve} rejects anything it cannot use. */
    record Config(Mode mode, Map<Setting, Object> values, List<String> setBy, List<Warning> warnings,
                  List<String> command, Map<Integer, Map<String, String>> headers, List<String> expanded,
                  Path tombstone) {
        // Istio's ports: Envoy's admin API, and pilot-agent's (which quits both, since Istio 1.3).
        static final URI ISTIO_ADMIN_API = URI.create("http://127.0.0.1:15000");
        static final URI ISTIO_QUIT_API = URI.create("http://127.0.0.1:15020");

        /** What this run does: decided once, here; {@link #preflight()} is one switch over it. */
        enum Mode {
            RUN(null, null),
            CHECK("--check", "Ask the admin API and each ready endpoint once, print what they said, exit 0 if all"
                    + " are ready, else 1."),
            DRY_RUN("--dry-run", "Print the resolved configuration and what would be done; run nothing."),
            WAIT_ONLY("--wait-only", "Wait as configured, then exit: no COMMAND, nothing quit (for CI scripts and"
                    + " lifecycle hooks)."),
            QUIT_ONLY("--quit-only", "Run the quit sequence now, as if an app had exited with --exit-code, and exit"
                    + " with it: no COMMAND, no waiting.");

            final String flag; // null: the default, with a COMMAND
            final String help;

            Mode(String flag, String help) {
                this.flag = flag;
                this.help = help;
            }
        }

        /** A value we cannot use; the message names where it came from and what it was. */
        static final class Invalid extends Exception {
            Invalid(String message) {
                super(message, null, false, false);
            }
        }

        static Config resolve(EnvoyPreflight cmd) throws Invalid {
            Map<Setting, Object> values = new EnumMap<>(Setting.class);
            List<String> setBy = new ArrayList<>();
            List<Warning> warnings = new ArrayList<>();
            Set<Setting> explicit = EnumSet.noneOf(Setting.class);
            // In the table's order, so that the first bad value reported is the first in --help.
            for (Setting s : Setting.values()) {
                Setting.Source source = s.source(cmd.flags, cmd.env, warnings);
                values.put(s, s.value(source));
                if (source.raw() != null) {
                    setBy.add(source.name());
                    explicit.add(s);
                }
            }
            Map<Integer, Map<String, String>> headers = new HashMap<>();
            List<String> expanded = new ArrayList<>();
            @SuppressWarnings("unchecked")
            List<Sidecar> sidecars = (List<Sidecar>) values.get(Setting.SIDECARS);
            // Each prepends its entries, so applied last to first they come in the order named, the user's after.
            for (int i = sidecars.size() - 1; i >= 0; i--) {
                expanded.add(0, sidecars.get(i).apply(values, explicit, headers, cmd.env));
            }
            Unknown.check(cmd.env, warnings);
            if ((Boolean) values.get(Setting.USE_ISTIO_ENDPOINT)) { // as blablacar's: each only where unset
                values.putIfAbsent(Setting.ADMIN_API, ISTIO_ADMIN_API); // a null value counts as absent
                values.putIfAbsent(Setting.ISTIO_QUIT_API, ISTIO_QUIT_API);
            }
            Path tombstone = Exit.tombstone(cmd.env);
            String exitFile = (String) values.get(Setting.EXIT_FILE);
            if (Exit.oneFile(Exit.absolute(exitFile), tombstone)) {
                throw new Invalid("the exit file and kubexit's tombstone (KUBEXIT_GRAVEYARD/KUBEXIT_NAME) are the same"
                        + " file, and would overwrite each other: '" + Log.shown(exitFile) + "'");
            }
            Config config = new Config(mode(cmd), values, List.copyOf(setBy), List.copyOf(warnings),
                    List.copyOf(cmd.command), Map.copyOf(headers), List.copyOf(expanded), tombstone);
            if (config.mode == Mode.CHECK && Wait.targets(config).isEmpty()) {
                throw new Invalid("--check: needs ENVOY_ADMIN_API or GENERIC_READY_ENDPOINTS (or --admin-api,"
                        + " --ready-endpoint)");
            }
            return config;
        }

        /** The one mode the flags ask for, fitting the command and --exit-code. */
        private static Mode mode(EnvoyPreflight cmd) throws Invalid {
            Mode mode = cmd.modes.isEmpty() ? Mode.RUN : cmd.modes.iterator().next();
            if (cmd.modes.size() > 1) {
                List<String> flags = new ArrayList<>();
                for (Mode m : cmd.modes) flags.add(m.flag);
                throw new Invalid(String.join(" and ", flags) + ": choose one");
            }
            if (cmd.exitCode != null && mode != Mode.QUIT_ONLY) throw new Invalid("--exit-code: goes with --quit-only");
            if (cmd.exitCode != null && (cmd.exitCode < 0 || cmd.exitCode > 255)) {
                throw new Invalid("--exit-code: not an exit code (0 to 255): '" + cmd.exitCode + "'");
            }
            if ((mode == Mode.WAIT_ONLY || mode == Mode.QUIT_ONLY) && !cmd.command.isEmpty()) {
                throw new Invalid(mode.flag + " takes no COMMAND, but got '" + cmd.command.get(0) + "'");
            }
            if (mode == Mode.RUN && cmd.command.isEmpty()) {
                throw new Invalid("no COMMAND given: envoy-preflight [OPTIONS] [--] COMMAND [ARG...]");
            }
            return mode;
        }

        /** The exit file, if one is set. */
        Path exitFile() { return Exit.absolute((String) values.get(Setting.EXIT_FILE)); }

        URI url(Setting s) { return (URI) values.get(s); }
        @SuppressWarnings("unchecked")
        List<URI> urls(Setting s) { return (List<URI>) values.get(s); }
        @SuppressWarnings("unchecked")
        List<Plan.Stop> processes() { return (List<Plan.Stop>) values.get(Setting.QUIT_PROCESSES); }
        boolean on(Setting s) { return (Boolean) values.get(s); }
        Duration duration(Setting s) { return (Duration) values.get(s); }
        Log.Format logFormat() { return (Log.Format) values.get(Setting.LOG_FORMAT); }
        boolean shouldWait() { return !on(Setting.START_WITHOUT_ENVOY) && !Wait.targets(this).isEmpty(); }

        /** How many sidecar endpoints and processes are waited for or quit: 0 is a run that does neither. */
        int sidecars() {
            Set<Object> places = new HashSet<>(processes());
            for (Wait.Target t : Wait.targets(this)) places.add(t.uri());
            places.addAll(urls(Setting.GENERIC_QUIT_ENDPOINTS));
            places.addAll(urls(Setting.CSQL_PROXY_QUIT_URLS));
            return places.size();
        }

        /** The resolved settings as "name=value" and who set them, for -v and --dry-run. */
        List<String> describe() {
            List<String> lines = new ArrayList<>();
            values.forEach((s, v) -> lines.add(s.shownName() + "=" + s.show(v)));
            lines.add("set by=" + (setBy.isEmpty() ? "defaults only" : String.join(" ", setBy)));
            lines.addAll(expanded);
            return lines;
        }

        /** The config event's data: each setting by name, typed (booleans, lists), credentials redacted. */
        Map<String, Object> shown() {
            Map<String, Object> shown = new LinkedHashMap<>();
            for (Map.Entry<Setting, Object> e : values.entrySet()) {
                Setting s = e.getKey();
                Object v = e.getValue();
                if (v == null) continue; // unset
                if (s.kind == Setting.Kind.BOOL) shown.put(s.shownName(), v);
                else if (v instanceof List<?> list) shown.put(s.shownName(), Log.showEach(list));
                else shown.put(s.shownName(), s.show(v));
            }
            return shown;
        }

        /** Nothing silent: a variable meant for us that is no setting is a warning that names the one meant. */
        static final class Unknown {
            /** The settings' variables and their aliases': what a near miss is measured against. */
            static final List<String> SETTINGS = settings();
            /** Read too, but no near miss of theirs is ours to judge (Dapr's APP_API_TOKEN is two edits away). */
            static final List<String> OTHERS = List.of("DAPR_HTTP_PORT", "DAPR_API_TOKEN", "KUBEXIT_NAME",
                    "KUBEXIT_GRAVEYARD", App.MOVED);

            private static List<String> settings() { // loops, not streams: this runs at every start
                List<String> names = new ArrayList<>();
                for (Setting s : Setting.values()) for (Setting.Alias a : s.readings) names.add(a.variable());
                return names;
            }

            static void check(Map<String, String> env, List<Warning> warnings) {
                for (String name : new TreeSet<>(env.keySet())) {
                    if (SETTINGS.contains(name) || OTHERS.contains(name) || name.startsWith(App.MOVED_VALUE)) continue;
                    String meant = closest(name, SETTINGS);
                    if (meant == null && !name.startsWith("ENVOY_PREFLIGHT_")) continue; // neither ours nor like ours
                    String hint = meant == null ? "" : ": did you mean " + meant + "?";
                    warnings.add(new Warning(Log.Event.UNKNOWN_SETTING, name + " is not a setting, and is ignored"
                            + hint, "name", name, "suggestion", meant));
                }
            }

            /** The candidate nearest to word, case ignored, if it is within two edits; else null. */
            static String closest(String word, Collection<String> candidates) {
                String best = null;
                int bestDistance = 3;
                for (String c : candidates) {
                    if (Math.abs(c.length() - word.length()) >= bestDistance) continue;
                    int d = distance(word.toUpperCase(Locale.ROOT), c.toUpperCase(Locale.ROOT));
                    if (d < bestDistance) {
                        best = c;
                        bestDistance = d;
                    }
                }
                return best;
            }

            /** Levenshtein's edit distance, one row at a time. */
            private static int distance(String a, String b) {
                int[] row = new int[b.length() + 1];
                for (int j = 0; j <= b.length(); j++) row[j] = j;
                for (int i = 1; i <= a.length(); i++) {
                    int diagonal = row[0];
                    row[0] = i;
                    for (int j = 1; j <= b.length(); j++) {
                        int above = row[j];
                        row[j] = Math.min(Math.min(row[j] + 1, row[j - 1] + 1),
                                diagonal + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1));
                        diagonal = above;
                    }
                }
                return row[b.length()];
            }
        }

        /** Headers a request to uri carries (a named sidecar's, on its loopback port: Dapr's token); never logged. */
        Map<String, String> headers(URI uri) {
            return Http.isLoopback(uri) ? headers.getOrDefault(uri.getPort(), Map.of()) : Map.of();
        }

        /** A warning found while resolving, with its event and fields. */
        record Warning(Log.Event event, String message, Object... fields) {}

        /** Named sidecars: the settings a user would otherwise write, on their ports (docs/configuration.md). */
        enum Sidecar {
            ISTIO("istio", Setting.ADMIN_API, ISTIO_ADMIN_API.toString(),
                    Setting.READY_ENDPOINTS, "http://127.0.0.1:15021/healthz/ready",
                    Setting.ISTIO_QUIT_API, ISTIO_QUIT_API.toString()),
            LINKERD("linkerd", Setting.READY_ENDPOINTS, "http://127.0.0.1:4191/ready",
                    Setting.GENERIC_QUIT_ENDPOINTS, "http://127.0.0.1:4191/shutdown"),
            CLOUD_SQL_PROXY("cloud-sql-proxy", Setting.READY_ENDPOINTS, "http://127.0.0.1:9090/readiness",
                    Setting.GENERIC_QUIT_ENDPOINTS, "http://127.0.0.1:9091/quitquitquit"),
            // daprd's HTTP port is DAPR_HTTP_PORT (3500 unset); DAPR_API_TOKEN, when set, goes with each request.
            DAPR("dapr", Setting.READY_ENDPOINTS, "http://127.0.0.1:$DAPR_HTTP_PORT/v1.0/healthz/outbound",
                    Setting.GENERIC_QUIT_ENDPOINTS, "http://127.0.0.1:$DAPR_HTTP_PORT/v1.0/shutdown"),
            // vault-k8s' injected agent: its listener on 8200, /agent/v1/quit with agent-enable-quit; no ready URL.
            VAULT_AGENT("vault-agent", Setting.GENERIC_QUIT_ENDPOINTS, "http://127.0.0.1:8200/agent/v1/quit"),
            // consul-k8s' dataplane: Envoy's admin /ready on 19000, the graceful shutdown on 20600.
            CONSUL_DATAPLANE("consul-dataplane", Setting.READY_ENDPOINTS, "http://127.0.0.1:19000/ready",
                    Setting.GENERIC_QUIT_ENDPOINTS, "http://127.0.0.1:20600/graceful_shutdown");

            final String id;
            private final Object[] settingsAndValues;

            Sidecar(String id, Object... settingsAndValues) {
                this.id = id;
                this.settingsAndValues = settingsAndValues;
            }

            @Override
            public String toString() { return id; }

            static Sidecar named(String name) {
                for (Sidecar s : values()) if (s.id.equals(name.toLowerCase(Locale.ROOT))) return s;
                List<String> known = Arrays.stream(values()).map(s -> s.id).toList();
                String meant = Unknown.closest(name, known);
                throw new IllegalArgumentException("unknown sidecar '" + Log.escape(name) + "'"
                        + (meant == null ? "" : ": did you mean " + meant + "?")
                        + " (known: " + String.join(", ", known) + ")");
            }

            /**
             * Sets its values: a list's entries always, before the user's (a named sidecar must never lose its
             * quit); a single value where not given explicitly. Notes its headers; says what it set.
             */
            String apply(Map<Setting, Object> values, Set<Setting> explicit, Map<Integer, Map<String, String>> headers,
                         Map<String, String> env) throws Invalid {
                String port = this == DAPR ? env.getOrDefault("DAPR_HTTP_PORT", "").strip() : "";
                if (!port.isEmpty() && !(port.matches("\\d{1,5}") && Integer.parseInt(port) >= 1
                        && Integer.parseInt(port) <= 65535)) {
                    throw new Invalid("DAPR_HTTP_PORT (for ENVOY_PREFLIGHT_SIDECARS dapr): not a port (1 to 65535): '"
                            + Log.shown(port) + "'");
                }
                // A Secret made from a file often ends with a newline; inside, a line break would split the header.
                String token = this == DAPR ? env.getOrDefault("DAPR_API_TOKEN", "").strip() : "";
                if (token.indexOf('\n') >= 0 || token.indexOf('\r') >= 0) {
                    throw new Invalid("DAPR_API_TOKEN: holds a line break (its value is a secret: not shown)");
                }
                Map<String, String> extra = token.isEmpty() ? Map.of() : Map.of("dapr-api-token", token);
                List<String> set = new ArrayList<>();
                for (int i = 0; i < settingsAndValues.length; i += 2) {
                    Setting s = (Setting) settingsAndValues[i];
                    if (explicit.contains(s) && !s.kind.list()) continue; // a single value given explicitly wins
                    String raw = ((String) settingsAndValues[i + 1])
                            .replace("$DAPR_HTTP_PORT", port.isEmpty() ? "3500" : port);
                    Object own = s.value(new Setting.Source("ENVOY_PREFLIGHT_SIDECARS (" + id + ")", raw, false));
                    Object value = own;
                    if (s.kind.list()) {
                        List<Object> merged = new ArrayList<>((List<?>) own);
                        for (Object entry : (List<?>) values.get(s)) if (!merged.contains(entry)) merged.add(entry);
                        value = List.copyOf(merged);
                        // every request to its port, the user's URLs too
                        for (Object uri : (List<?>) own) {
                            if (!extra.isEmpty()) headers.put(((URI) uri).getPort(), extra);
                        }
                    } else if (values.get(s) != null) {
                        continue; // another named sidecar set it first
                    }
                    values.put(s, value);
                    set.add(s.shownName() + "=" + s.show(own));
                }
                String what = set.isEmpty() ? "nothing (all given explicitly)" : String.join(", ", set);
                return "sidecar " + id + ": " + what
                        + (extra.isEmpty() ? "" : " (each request with the header dapr-api-token from DAPR_API_TOKEN)");
            }
        }
    }

    // --- Waiting: poll each readiness target in turn, with backoff, until ready, a limit, or a stop ---

    static final class Wait {
        /** Each poll's own limit, so that a hung endpoint never stalls the wait. */
        static final Duration POLL_TIMEOUT = Duration.ofSeconds(1);
        /** The least time a poll starts with before a deadline: less would log a timeout of nanoseconds. */
        static final Duration MIN_POLL = Duration.ofMillis(10);

        enum Outcome { READY, WAIT_TIMED_OUT, GAVE_UP, STOPPED, ABSENT }

        /** One readiness target, of one kind: it asks, judges the answer, and words it for the log. */
        sealed interface Target permits Live, Answers2xx, Accepts, Exists {
            URI uri();
            /** One question, within timeout; refused only where nothing listens. */
            Poll poll(Duration timeout, Http.Abort abort);
            String what(); // "Envoy", "GET URL", "TCP HOST:PORT", "file PATH"
            Wording wording();

            /** After an absent wait: whether this answer shows that a sidecar is there now. */
            default boolean somethingThere(Poll poll) { return !poll.refused(); }

            /** For --check: one line on stdout (the sidecar's own words escaped). */
            default String checked(Poll poll) { return Log.redact(uri()) + ": " + Log.escape(poll.seen()); }

            /** A ready endpoint by its scheme: tcp://HOST:PORT, file:///PATH, else http(s) 2xx. */
            static Target of(URI uri, Map<String, String> headers) {
                return switch (uri.getScheme().toLowerCase(Locale.ROOT)) {
                    case "tcp" -> new Accepts(uri);
                    case "file" -> new Exists(uri);
                    default -> new Answers2xx(uri, headers);
                };
            }
        }

        /** A target's words at each moment: waiting for it, ready, not ready in time, and for --dry-run. */
        record Wording(String waitingFor, String ready, String notReady, String until) {
            /** Each after what the target is: "GET URL" + " answered 2xx". */
            static Wording of(String what, String waitingFor, String ready, String notReady, String until) {
                String the = what + " ";
                return new Wording(the + waitingFor, the + ready, the + notReady, the + until);
            }
        }

        /** Envoy's /server_info until its top-level state is LIVE. */
        record Live(URI uri) implements Target {
            public Poll poll(Duration timeout, Http.Abort abort) {
                return get(uri, Map.of(), timeout, abort, (status, body) -> {
                    if (status != 200) return new Poll(false, "HTTP " + status, false);
                    String state = ServerInfo.state(body);
                    if (state == null) return new Poll(false, "HTTP 200 without a top-level state", false);
                    return new Poll(state.equals("LIVE"), "state " + state, false);
                });
            }
            public String what() { return "Envoy"; }
            public Wording wording() {
                String get = "GET " + Log.redact(uri);
                return new Wording("Envoy: " + get, "LIVE", "Envoy was not LIVE", get + " until state LIVE");
            }
            public String checked(Poll poll) { return poll.ready() ? "LIVE" : Log.escape(poll.seen()); }
        }

        /** Any http(s) URL until it answers 2xx; with a named sidecar's headers, if any. */
        record Answers2xx(URI uri, Map<String, String> headers) implements Target {
            Answers2xx(URI uri) { this(uri, Map.of()); }
            public String toString() { return "Answers2xx[" + Log.redact(uri) + "]"; } // headers may hold a secret
            public Poll poll(Duration timeout, Http.Abort abort) {
                return get(uri, headers, timeout, abort,
                        (status, body) -> new Poll(status / 100 == 2, "HTTP " + status, false));
            }
            public String what() { return "GET " + Log.redact(uri); }
            public Wording wording() {
                return Wording.of(what(), "to answer 2xx", "answered 2xx", "did not answer 2xx", "until 2xx");
            }
        }

        /** tcp://HOST:PORT until a connection is accepted (and closed at once): a port that listens. */
        record Accepts(URI uri) implements Target {
            public Poll poll(Duration timeout, Http.Abort abort) {
                try {
                    Http.connect(uri, timeout, abort).close();
                    return new Poll(true, "connection accepted", false);
                } catch (IOException e) {
                    // reset before connect() returned: it was accepted (SYN-ACK), then closed: a port that listens
                    boolean reset = String.valueOf(e.getMessage()).startsWith("Connection reset");
                    return new Poll(reset, reset ? "connection accepted" : Http.describe(e, timeout),
                            e instanceof ConnectException);
                }
            }
            public String what() { return "TCP " + uri.getHost() + ":" + uri.getPort(); }
            public Wording wording() {
                return Wording.of(what(), "to accept a connection", "accepted a connection", "accepted no connection",
                        "until it accepts a connection");
            }
        }

        /** file:///PATH until the path exists (a rendered secret); a missing file is never "nothing listens". */
        record Exists(URI uri) implements Target {
            public Poll poll(Duration timeout, Http.Abort abort) {
                boolean exists = Files.exists(Path.of(uri.getPath())); // Path.of(uri) rejects non-ASCII as written
                return new Poll(exists, exists ? "exists" : "does not exist", false);
            }
            public String what() { return "file " + uri.getPath(); }
            public boolean somethingThere(Poll poll) { return poll.ready(); } // a missing file says nothing
            public Wording wording() {
                return Wording.of(what(), "to exist", "exists", "did not exist", "until it exists");
            }
        }

        /** One poll's answer: ready or not, what was seen (for the log), and if nothing listened. */
        record Poll(boolean ready, String seen, boolean refused) {}

        /** The admin API first (when set), then each ready endpoint, in order. */
        static List<Target> targets(Config config) {
            List<Target> targets = new ArrayList<>();
            URI admin = config.url(Setting.ADMIN_API);
            if (admin != null) targets.add(new Live(Http.resolve(admin, "server_info")));
            for (URI uri : config.urls(Setting.READY_ENDPOINTS)) targets.add(Target.of(uri, config.headers(uri)));
            return targets;
        }

        /** How a wait ended, the target it ended on, and the exit code if the app does not start (else 0). */
        record Result(Outcome outcome, Target target, Exit.Ending ending) {
            boolean startsApp() { return outcome != Outcome.GAVE_UP && outcome != Outcome.STOPPED; }
        }

        /** A limit of the wait, counted from its start; absent only while every poll was refused. */
        record Limit(Outcome outcome, Duration after) {
            /** For --dry-run. */
            String describe() {
                String after = Log.format(this.after);
                return switch (outcome) {
                    case GAVE_UP -> "exit " + Exit.UNAVAILABLE.code + " after " + after;
                    case WAIT_TIMED_OUT -> "start anyway after " + after;
                    default -> "no sidecar if nothing listens for " + after;
                };
            }
        }

        /** The limits in the order they are judged; as in scuttle, a give-up timeout replaces the wait timeout. */
        static List<Limit> limits(Config config) {
            List<Limit> limits = new ArrayList<>();
            Duration giveUp = config.duration(Setting.GIVE_UP_TIMEOUT);
            Duration startAnyway = config.duration(Setting.WAIT_TIMEOUT);
            Duration absent = config.duration(Setting.SIDECAR_ABSENT_AFTER);
            if (!absent.isZero()) limits.add(new Limit(Outcome.ABSENT, absent));
            if (!giveUp.isZero()) limits.add(new Limit(Outcome.GAVE_UP, giveUp));
            else if (!startAnyway.isZero()) limits.add(new Limit(Outcome.WAIT_TIMED_OUT, startAnyway));
            return limits;
        }

        private final Config config;
        private final Log log;

        Wait(Config config, Log log) {
            this.config = config;
            this.log = log;
        }

        /** Polls each target in turn until all are ready, a limit passes, or a stop signal comes. */
        Result until(Lifecycle stop, boolean appFollows) {
            long start = System.nanoTime(); // every limit counts from the start of the whole wait
            List<Limit> limits = limits(config);
            boolean onlyRefused = true; // any other answer means a sidecar is there
            Target target = null;
            for (Target next : config.shouldWait() ? targets(config) : List.<Target>of()) {
                target = next;
                String name = Log.redact(next.uri());
                log.info(Log.Event.WAIT, "waiting for " + next.wording().waitingFor(), "target", name);
                Backoff backoff = new Backoff(config.duration(Setting.POLL_MAX_INTERVAL),
                        ThreadLocalRandom.current()::nextDouble);
                for (int polls = 0; ; ) {
                    long left = Long.MAX_VALUE; // a poll is cut short by the deadlines, never by absence
                    for (Limit l : limits) {
                        if (l.outcome() != Outcome.ABSENT) left = Math.min(left, nanosLeft(start, l));
                    }
                    if (polls == 0 || left >= MIN_POLL.toNanos()) { // else the pause ran to a deadline: judge it
                        polls++;
                        Poll poll = next.poll(Duration.ofNanos(Math.max(MIN_POLL.toNanos(),
                                Math.min(POLL_TIMEOUT.toNanos(), left))), stop.abort());
                        if (stop.stopped()) return stopped(next, stop.signal());
                        log.info(Log.Event.POLL, "poll " + polls + ": " + poll.seen(), "target", name,
                                "seen", poll.seen(), "polls", polls);
                        onlyRefused &= poll.refused();
                        if (poll.ready()) {
                            long ms = (System.nanoTime() - start) / 1_000_000;
                            log.info(Log.Event.READY, next.wording().ready() + " after " + polls + " polls in " + ms
                                    + " ms", "target", name, "polls", polls, "ms", ms);
                            break;
                        }
                    }
                    long nearest = Long.MAX_VALUE;
                    for (Limit limit : limits) {
                        if (limit.outcome() == Outcome.ABSENT && !onlyRefused) continue;
                        long limitLeft = nanosLeft(start, limit);
                        if (limitLeft <= 0) return passed(limit, next, appFollows, polls, start);
                        nearest = Math.min(nearest, limitLeft);
                    }
                    long pause = Math.min(backoff.next().toNanos(), nearest);
                    if (nearest - pause < MIN_POLL.toNanos()) pause = nearest; // no poll too short to be answered
                    if (stop.pauseUnlessStopped(pause)) return stopped(next, stop.signal());
                }
            }
            return new Result(Outcome.READY, target, Exit.Ending.of(0));
        }

        /** A limit passed while waiting for target: said at its level, and the exit code if the app won't start. */
        private Result passed(Limit limit, Target target, boolean appFollows, int polls, long start) {
            Object[] fields = {"target", Log.redact(target.uri()), "polls", polls,
                "ms", (System.nanoTime() - start) / 1_000_000};
            String after = Log.format(limit.after());
            switch (limit.outcome()) {
                case ABSENT -> log.warn(Log.Event.ABSENT, "nothing listened at any readiness endpoint for " + after
                        + ": there is no sidecar" + (appFollows ? "; starting the app at once (at exit, it is quit only"
                        + " if it answers by then)" : ""), fields);
                case GAVE_UP -> {
                    String problem = target.wording().notReady() + " within the give-up timeout (" + after
                            + "); the app was not started";
                    log.error(Log.Event.GAVE_UP, problem, fields);
                    return new Result(Outcome.GAVE_UP, target, new Exit.Ending(Exit.UNAVAILABLE.code, problem));
                }
                default -> log.warn(Log.Event.WAIT_TIMEOUT, target.wording().notReady() + " within the wait timeout ("
                        + after + "); " + (appFollows ? "starting the app anyway" : "waiting no longer"), fields);
            }
            return new Result(limit.outcome(), target, Exit.Ending.of(0));
        }

        private Result stopped(Target target, int signal) {
            String name = Lifecycle.Signals.name(signal);
            String problem = "stopped by SIG" + name + " while waiting for " + target.what()
                    + "; the app was not started";
            log.warn(Log.Event.STOPPED, problem, "signal", name, "target", Log.redact(target.uri()));
            return new Result(Outcome.STOPPED, target, new Exit.Ending(128 + signal, problem));
        }

        /** A GET for a poll: whatever fails is "not ready yet", refused where nothing listens. */
        static Poll get(URI uri, Map<String, String> headers, Duration timeout, Http.Abort abort,
                        Http.BodyReader<Poll> judge) {
            try {
                return Http.exchange("GET", uri, headers, timeout, abort, judge);
            } catch (IOException e) { // an unusable body too: a "not yet", like any other wrong answer
                return new Poll(false, Http.describe(e, timeout), e instanceof ConnectException);
            }
        }

        /** How long until the limit has passed since start. */
        private static long nanosLeft(long start, Limit limit) {
            return limit.after().toNanos() - (System.nanoTime() - start);
        }

        /**
         * Envoy's /server_info: at most 1 MiB of it (Envoy's own is a few KiB), parsed as JSON by Gson,
         * its top-level "state" taken. A class of its own so that Gson's jar is opened only when a poll
         * reads JSON, not at every start (measured: ~5 ms, bench b).
         */
        static final class ServerInfo {
            static final int MAX_BODY = 1 << 20;

            /** The top-level "state" of a JSON object (null if it has none); the whole body must be that object. */
            static String state(InputStream body) throws IOException {
                byte[] bytes = body.readNBytes(MAX_BODY + 1);
                if (bytes.length > MAX_BODY) throw new IOException("HTTP 200 but the body is longer than 1 MiB");
                // Gson's streaming reader, not its tree: the tree's classes cost 2 MB of RSS (bench c)
                JsonReader json = new JsonReader(new StringReader(new String(bytes, StandardCharsets.UTF_8)));
                try {
                    String state = null;
                    json.beginObject();
                    while (json.hasNext()) {
                        boolean isState = json.nextName().equals("state") && json.peek() == JsonToken.STRING;
                        if (isState) state = json.nextString();
                        else json.skipValue();
                    }
                    json.endObject();
                    if (json.peek() != JsonToken.END_DOCUMENT) throw new MalformedJsonException("data after it");
                    return state;
                } catch (MalformedJsonException | IllegalStateException e) { // Gson's words hold a hint and a URL
                    throw new IOException("HTTP 200 but not a JSON object");
                } catch (EOFException e) {
                    throw new IOException("HTTP 200 but the JSON object ends early");
                }
            }
        }

        /** Pauses between polls: start near 100 ms, double, never above the cap (jitter only lowers). */
        static final class Backoff {
            static final Duration INITIAL = Duration.ofMillis(100);
            private final long capNanos;
            private final DoubleSupplier random;
            private long nextNanos = INITIAL.toNanos();

            Backoff(Duration cap, DoubleSupplier random) {
                this.capNanos = cap.toNanos();
                this.random = random;
            }

            Duration next() {
                long base = Math.min(nextNanos, capNanos);
                nextNanos = Math.min(capNanos, nextNanos * 2);
                // Up to 20% shorter, so that many Jobs started together don't poll in lockstep.
                return Duration.ofNanos(base - (long) (base * 0.2 * random.getAsDouble()));
            }
        }
    }

    // --- The app's lifecycle: one phase, the stop signal, the relay of signals; and our signals themselves. ---

    static final class Lifecycle implements Consumer<Lifecycle.Signals.Sig> {
        enum Phase { WAITING, RUNNING, EXITED }

        private final Log log;
        private final Object lock = new Object();
        private final Http.Abort abort = new Http.Abort();
        private Phase phase = Phase.WAITING;
        private boolean stoppedLate; // TERM, INT or HUP after the app exited
        private Signals.Sig lastStop; // the last TERM, INT or HUP relayed, and when
        private long lastStopNanos;
        private int stopSignal;
        private Process app;
        /** One thread sends every signal, so they reach the app in the order we got them. */
        private ExecutorService relay; // started with the first signal: most runs get none

        private final Exit.Tombstone tombstone; // kubexit's, or null

        Lifecycle(Log log, Exit.Tombstone tombstone) {
            this.log = log;
            this.tombstone = tombstone;
        }

        /** kubexit's tombstone says the app died with code, if it does not say so yet. */
        void buried(int code) {
            if (tombstone != null) tombstone.died(code);
        }

        boolean appStarted() {
            return appPid() != 0;
        }

        /** A stop signal came, before the app or after it: the quit still runs, but waits for no confirmation. */
        boolean stopSignalled() {
            synchronized (lock) {
                return stopSignal != 0 || stoppedLate;
            }
        }

        /** The app's pid once started, else 0: its process group and session are never a quit process's. */
        long appPid() {
            synchronized (lock) {
                return app == null ? 0 : app.pid();
            }
        }

        public Http.Abort abort() { return abort; }
        public boolean stopped() { return signal() != 0; }

        public int signal() {
            synchronized (lock) {
                return stopSignal;
            }
        }

        public boolean pauseUnlessStopped(long nanos) {
            long until = System.nanoTime() + nanos;
            synchronized (lock) {
                try {
                    for (long left = nanos; stopSignal == 0 && left > 0; left = until - System.nanoTime()) {
                        TimeUnit.NANOSECONDS.timedWait(lock, left);
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                return stopSignal != 0;
            }
        }

        /** The signal handler: as a Consumer, install() needs no method reference to it (one lambda less at start). */
        public void accept(Signals.Sig sig) { onSignal(sig); }

        /** Called on the JVM's signal thread: decides, under the lock, what the signal means now. */
        void onSignal(Signals.Sig sig) {
            synchronized (lock) {
                if (phase == Phase.EXITED) {
                    stoppedLate |= sig.stops();
                    signal(sig, false, sig.stops() ? "received after the app exited: the quit goes on, unconfirmed"
                            : "received after the app exited; ignored");
                } else if (phase == Phase.RUNNING && sig.stops() && sig == lastStop
                        && System.nanoTime() - lastStopNanos < 100_000_000L) {
                    // timeout(1) sends TERM to us and then to our group: one signal, delivered twice
                    signal(sig, false, "again within 100 ms (sent to us and to our process group); relayed once");
                } else if (phase == Phase.RUNNING) {
                    if (sig.stops()) {
                        lastStop = sig;
                        lastStopNanos = System.nanoTime();
                    }
                    relayLocked(sig);
                } else if (sig.stops()) {
                    // Before the app runs, TERM/INT/HUP mean "don't start it": stop the wait now.
                    if (stopSignal == 0) stopSignal = sig.number();
                    lock.notifyAll();
                    abort.abort();
                } else {
                    // Sent microseconds after the start, it would reach the app before it could install
                    // a handler, and the default action of USR1, USR2 and ALRM is to die.
                    signal(sig, true, "received before the app started; dropped: the app could not handle it yet");
                }
            }
        }

        private void relayLocked(Signals.Sig sig) {
            if (relay == null) {
                relay = Executors.newSingleThreadExecutor(r -> daemon(r, "signal-relay"));
            }
            Process p = app;
            relay.execute(() -> send(sig, p));
        }

        private void send(Signals.Sig sig, Process p) {
            if (!p.isAlive()) {
                signal(sig, false, "not relayed: the app has exited");
            } else if (Signals.terminalSentItToo(sig, p.pid())) {
                // A second SIGINT makes many apps skip their cleanup: the terminal's one is enough.
                signal(sig, false, "came from the terminal, which sent it to the app too; not relayed");
            } else {
                String failure = Signals.send(sig.name(), p.toHandle());
                if (failure == null) {
                    log.info(Log.Event.SIGNAL, "relayed SIG" + sig.name() + " to the app (pid " + p.pid() + ")",
                            "signal", sig.name(), "relayed", true, "pid", p.pid());
                } else {
                    log.warn(Log.Event.SIGNAL, "could not relay SIG" + sig.name() + " to pid " + p.pid() + ": "
                            + failure, "signal", sig.name(), "relayed", false, "error", failure);
                }
            }
        }

        /** A signal that was not relayed, and why; a warning when it was lost to the app. */
        private void signal(Signals.Sig sig, boolean lost, String why) {
            String message = "SIG" + sig.name() + " " + why;
            if (lost) log.warn(Log.Event.SIGNAL, message, "signal", sig.name(), "relayed", false);
            else log.info(Log.Event.SIGNAL, message, "signal", sig.name(), "relayed", false);
        }

        /** Starts the app unless a stop signal came first, waits for it, returns its exit code (and ours, why). */
        Exit.Ending run(App app) {
            App.Resolved found = app.find();
            if (found.exitCode() != 0) {
                log.error(Log.Event.APP_START, found.problem(), "code", found.exitCode(), "error", found.problem());
                return new Exit.Ending(found.exitCode(), found.problem());
            }
            List<String> launch = app.launchCommand(); // outside the lock: it may look at PATH and spawn
            Process p;
            synchronized (lock) {
                if (stopSignal != 0) {
                    String problem = "stopped by SIG" + Signals.name(stopSignal) + " before the app started";
                    log.warn(Log.Event.STOPPED, problem, "signal", Signals.name(stopSignal));
                    return new Exit.Ending(128 + stopSignal, problem);
                }
                try {
                    p = App.start(app.builder(launch));
                } catch (IOException e) {
                    String problem = "cannot run '" + app.name() + "': " + e.getMessage();
                    log.error(Log.Event.APP_START, problem, "code", Exit.NOT_EXECUTABLE.code, "error", problem);
                    return new Exit.Ending(Exit.NOT_EXECUTABLE.code, problem); // found on PATH: the kernel refused it
                }
                this.app = p;
                phase = Phase.RUNNING;
            }
            log.info(Log.Event.APP_START, "started the app, pid " + p.pid() + ": " + app.command(),
                    "pid", p.pid(), "command", app.command());
            if (tombstone != null) tombstone.born();
            App.Orphans.reapIfInit(log);
            int code = App.waitFor(p);
            synchronized (lock) {
                phase = Phase.EXITED;
            }
            if (tombstone != null) tombstone.died(code); // before the quit sequence, as kubexit's own
            // Java reports death by signal N as 128+N, as a shell does; exit(128+N) looks the same.
            String signal = code > 128 && code <= 128 + 64 ? Signals.name(code - 128) : null;
            log.info(Log.Event.APP_EXIT, "the app exited with code " + code
                    + (signal != null ? " (= 128+SIG" + signal + ")" : ""), "code", code, "signal", signal);
            return Exit.Ending.of(code);
        }

        /** Thread.sleep between rounds; nothing interrupts, and an interrupt would only end the pause early. */
        static void pause(long ms) {
            try {
                Thread.sleep(ms);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        /** A thread that never keeps the JVM alive: the tool exits when the app does. */
        static Thread daemon(Runnable r, String name) {
            Thread t = new Thread(r, name);
            t.setDaemon(true);
            return t;
        }

        /** The signals we take over from the JVM, and how we send one. */
        static final class Signals {
            /** Relayed as the same signal. Never CHLD, URG or PIPE (the Go original's mistake); QUIT is the JVM's. */
            enum Sig {
                HUP(true, false), INT(true, true), TERM(true, false), USR1(false, false), USR2(false, false),
                ALRM(false, false), WINCH(false, true);

                private final boolean stops;
                private final boolean fromTerminal;
                private final int number;

                Sig(boolean stops, boolean fromTerminal) {
                    this.stops = stops;
                    this.fromTerminal = fromTerminal;
                    this.number = new sun.misc.Signal(name()).getNumber(); // the platform's number
                }

                /** TERM, INT and HUP before the app started mean: don't start it. */
                boolean stops() { return stops; }
                int number() { return number; }
            }

            static void install(Consumer<Sig> handler, Log log) {
                for (Sig sig : Sig.values()) {
                    try {
                        // Replacing the JVM's handler also stops TERM/INT/HUP from shutting the JVM
                        // down: we exit when the app does, with its code.
                        sun.misc.Signal.handle(new sun.misc.Signal(sig.name()), s -> handler.accept(sig));
                    } catch (IllegalArgumentException e) {
                        // e.g. HUP when started under nohup: the JVM leaves ignored signals ignored.
                        log.info(Log.Event.SETUP, "SIG" + sig.name() + " is not relayed: " + e.getMessage(),
                                "signal", sig.name());
                    }
                }
            }

            /** Linux's signal names by number (x86 and ARM), for the log: "killed by SIGSEGV". */
            private static final String[] LINUX_NAMES = {null, "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS",
                "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP",
                "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"};

            /** A Linux signal's name, without SIG. */
            static boolean isName(String name) {
                return Arrays.asList(LINUX_NAMES).contains(name); // [0] is null: no List.of
            }

            static String name(int number) {
                for (Sig sig : Sig.values()) if (sig.number == number) return sig.name();
                return number > 0 && number < LINUX_NAMES.length ? LINUX_NAMES[number] : String.valueOf(number);
            }

            /**
             * Sends SIGname to target; null on success, else why not. TERM and KILL go through the JDK,
             * which needs no shell (distroless images have none) and checks that the pid still is the
             * process it was; the JDK cannot send any other signal, so those use the shell's builtin kill.
             */
            static String send(String name, ProcessHandle target) {
                if (name.equals("TERM") || name.equals("KILL")) {
                    if (name.equals("TERM") ? target.destroy() : target.destroyForcibly()) return null;
                    return target.isAlive() ? "not permitted" : "the process has exited";
                }
                String shell = Stream.of("bash", "sh").map(s -> App.resolve(s, System.getenv("PATH")))
                        .filter(r -> r.exitCode() == 0).map(r -> r.path().toString()).findFirst().orElse(null);
                if (shell == null) return "neither bash nor sh is on PATH to send it";
                try {
                    Process kill = App.start(new ProcessBuilder(shell, "-c", "kill -s \"$1\" \"$2\"", "kill", name,
                            Long.toString(target.pid()))
                            .redirectInput(ProcessBuilder.Redirect.from(App.DEV_NULL))
                            .redirectOutput(ProcessBuilder.Redirect.DISCARD));
                    // Wait first: kill's one line of error fits the pipe, so it can't block; the bound can fire.
                    if (!kill.waitFor(5, TimeUnit.SECONDS)) {
                        kill.destroyForcibly();
                        return "kill did not finish";
                    }
                    String error = new String(kill.getErrorStream().readAllBytes(), StandardCharsets.UTF_8).strip();
                    if (kill.exitValue() == 0) return null;
                    return error.isEmpty() ? "kill exited " + kill.exitValue() : error;
                } catch (IOException e) {
                    return e.getMessage();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    return "interrupted";
                }
            }

            /** True if a terminal sent sig to its foreground group (Ctrl-C), which is ours and the app's. */
            static boolean terminalSentItToo(Sig sig, long appPid) {
                if (!sig.fromTerminal) return false;
                String[] self = stat("self");
                String[] app = stat(Long.toString(appPid));
                // fields 5 and 8 of /proc/PID/stat: the process group and the terminal's foreground group
                return self != null && app != null && Long.parseLong(self[5]) > 0 && self[5].equals(self[2])
                        && app[2].equals(self[2]);
            }

            /** /proc/PID/stat from its third field (state, ppid, pgrp, ...) on, or null if unreadable. */
            static String[] stat(String pid) {
                try {
                    String stat = Files.readString(Path.of("/proc", pid, "stat"));
                    return stat.substring(stat.lastIndexOf(')') + 2).split(" ");
                } catch (IOException | RuntimeException e) {
                    return null;
                }
            }
        }
    }

    // --- The app: found like a shell finds it, started behind two safeguards, waited for. ---

    record App(List<String> command, Log log) {
        static final File DEV_NULL = new File("/dev/null");
        /**
         * Variables the launcher changed for the JVMs that are the app's (JAVA_TOOL_OPTIONS and its kin, which every
         * JVM reads, ours too; LC_ALL): their names, space-separated, and each value as it was under {@link
         * #MOVED_VALUE}NAME, absent if it was unset.
         */
        static final String MOVED = "ENVOY_PREFLIGHT_MOVED";
        static final String MOVED_VALUE = "ENVOY_PREFLIGHT_APP_";

        String name() { return command.get(0); }
        Resolved find() { return withInterpreter(resolve(name(), System.getenv("PATH")), name()); }

        /** How the app starts: our streams and environment, with what was set aside for it given back. */
        ProcessBuilder builder(List<String> launch) {
            ProcessBuilder pb = new ProcessBuilder(launch)
                    .redirectInput(stdio(0, ProcessBuilder.Redirect.from(DEV_NULL)))
                    .redirectOutput(stdio(1, ProcessBuilder.Redirect.to(DEV_NULL)))
                    .redirectError(stdio(2, ProcessBuilder.Redirect.to(DEV_NULL)));
            Map<String, String> env = pb.environment();
            String moved = env.remove(MOVED);
            Map<Object, Object> raw = moved == null ? Map.of() : undecoded(env);
            for (String name : moved == null ? new String[0] : moved.split(" ")) {
                Object bytes = null; // the value as the JVM read it: put() would encode its text again
                for (var e : raw.entrySet()) if (e.getKey().toString().equals(MOVED_VALUE + name)) bytes = e.getValue();
                String value = env.remove(MOVED_VALUE + name);
                if (value == null) {
                    env.remove(name); // unset stays unset
                    continue;
                }
                env.put(name, value); // empty stays empty
                for (var e : raw.entrySet()) if (bytes != null && e.getKey().toString().equals(name)) e.setValue(bytes);
            }
            return pb;
        }

        /**
         * The JDK's own map under pb.environment(), whose values keep the bytes they were read as (a JVM option that
         * is not UTF-8 reaches the app as it was); empty where java.lang is not open to us (the reaper's
         * --add-opens): then such bytes become U+FFFD (docs/containers.md).
         */
        @SuppressWarnings("unchecked")
        private static Map<Object, Object> undecoded(Map<String, String> env) {
            try {
                java.lang.reflect.Field m = env.getClass().getDeclaredField("m"); // ProcessEnvironment's
                m.setAccessible(true);
                return (Map<Object, Object>) m.get(env);
            } catch (ReflectiveOperationException | RuntimeException e) {
                return Map.of();
            }
        }

        /**
         * Our descriptor fd, unless it was closed when the JVM started: the JVM then reused the slot for a file of
         * its own (lib/modules, a jar), which the app must never get as a stream.
         */
        private static ProcessBuilder.Redirect stdio(int fd, ProcessBuilder.Redirect closed) {
            Path link = Path.of("/proc/self/fd/" + fd);
            String target;
            try {
                target = Files.readSymbolicLink(link).toString();
            } catch (IOException | UnsupportedOperationException e) {
                // still closed; or no /proc, and then as the JDK would
                return Files.isDirectory(link.getParent()) ? closed : ProcessBuilder.Redirect.INHERIT;
            }
            boolean ours = target.startsWith(System.getProperty("java.home") + "/");
            for (String entry : System.getProperty("java.class.path").split(File.pathSeparator)) {
                try {
                    // /proc's link is the real path
                    ours |= !entry.isEmpty() && target.equals(Path.of(entry).toRealPath().toString());
                } catch (IOException e) {
                    // a class path entry that is not there: not our stream either
                }
            }
            return ours ? closed : ProcessBuilder.Redirect.INHERIT;
        }

        /** Starts every process of ours under the reaper's lock, so that it knows each for ours before it exits. */
        static Process start(ProcessBuilder pb) throws IOException {
            synchronized (Orphans.OURS) {
                Process p = pb.start();
                if (Orphans.INIT) Orphans.OURS.add(p); // elsewhere nothing reaps: nothing to keep
                return p;
            }
        }

        /**
         * As a container's PID 1 we inherit every orphaned descendant of the app, and the JVM reaps only the
         * processes it started: the others would stay zombies. So, as tini does, reap them, but never one of ours:
         * the JDK reaps those itself, and a reaper that took the app's exit status first would turn its exit code
         * into 0. The JDK's own waitpid is used, for one pid at a time, and only for a zombie child that is not
         * ours, so it never blocks and never races the JDK.
         */
        static final class Orphans {
            static final boolean INIT = ProcessHandle.current().pid() == 1;
            static final List<Process> OURS = new ArrayList<>(); // until the JDK has reaped each
            /** Often enough that orphans never pile up, rare enough to cost nothing (bench i). */
            static final long PERIOD_MS = 500;

            static void reapIfInit(Log log) {
                if (!INIT) return;
                java.lang.reflect.Method waitpid;
                try { // ProcessHandleImpl.waitForProcessExit0(pid, reap): needs --add-opens java.base/java.lang
                    waitpid = Class.forName("java.lang.ProcessHandleImpl")
                            .getDeclaredMethod("waitForProcessExit0", long.class, boolean.class);
                    waitpid.setAccessible(true);
                } catch (ReflectiveOperationException | RuntimeException e) {
                    log.warn(Log.Event.SETUP, "running as PID 1, but orphaned processes cannot be reaped here ("
                            + (e instanceof java.lang.reflect.InaccessibleObjectException
                            ? "the JVM was started without --add-opens=java.base/java.lang=ALL-UNNAMED" : e.toString())
                            + "); they stay zombies until the container stops");
                    return;
                }
                Lifecycle.daemon(() -> {
                    try {
                        while (true) {
                            try {
                                reap(waitpid);
                            } catch (RuntimeException e) { // e.g. a racy /proc read: the next round tries again
                                log.info(Log.Event.SETUP, "reaping orphans: " + e);
                            }
                            Thread.sleep(PERIOD_MS);
                        }
                    } catch (InterruptedException e) {
                        // nothing interrupts it: the JVM ends with the tool
                    }
                }, "orphan-reaper").start();
            }

            private static void reap(java.lang.reflect.Method waitpid) {
                synchronized (OURS) {
                    OURS.removeIf(p -> !p.isAlive()); // reaped by the JDK: its pid may be reused
                    for (String child : orphans()) {
                        String[] stat = Lifecycle.Signals.stat(child);
                        if (stat == null || !stat[0].equals("Z") || isOurs(Long.parseLong(child))) continue;
                        try {
                            waitpid.invoke(null, Long.parseLong(child), true);
                        } catch (ReflectiveOperationException e) {
                            return; // cannot happen once set up; try again next round
                        }
                    }
                }
            }

            /**
             * Orphans are given to our first thread (the launcher's, which only waits): its children file lists
             * them, one small read a round. Without it (a kernel without CONFIG_PROC_CHILDREN), every child, from a
             * scan of /proc (measured in bench i).
             */
            private static List<String> orphans() {
                try {
                    String list = Files.readString(Path.of("/proc/self/task/1/children")).strip();
                    return list.isEmpty() ? List.of() : List.of(list.split(" "));
                } catch (IOException e) {
                    return ProcessHandle.current().children().map(h -> Long.toString(h.pid())).toList();
                }
            }

            private static boolean isOurs(long pid) {
                for (Process p : OURS) if (p.pid() == pid) return true;
                return false;
            }
        }

        /**
         * The command, behind two safeguards that the JDK cannot set up itself, each used where its
         * tool is on PATH (a missing one is logged with -v):
         * <ul>
         * <li>{@code env --default-signal=QUIT} (GNU coreutils 8.31+), on JDKs before 20 only: they
         *     start children with SIGQUIT blocked (JDK-8234262), and the app's signals are its own;
         * <li>{@code setpriv --pdeathsig TERM} (util-linux): if envoy-preflight is SIGKILLed, the
         *     kernel sends the app TERM instead of leaving it orphaned. The death signal is tied to
         *     the thread that starts the app, which is why the app is only started on the main thread.
         * </ul>
         * Both exec the next word: the app keeps the pid we started.
         */
        List<String> launchCommand() {
            List<String> launch = new ArrayList<>();
            if (Runtime.version().feature() < 20) {
                wrap(launch, "GNU env", "on this JDK the app starts with SIGQUIT blocked", "--default-signal=QUIT");
            }
            wrap(launch, "util-linux setpriv", "the app would outlive a SIGKILL of envoy-preflight", "--pdeathsig",
                    "TERM", "--");
            // Unless we are a terminal's foreground group (^C, ^Z and fg stay the terminal's), the app leads a
            // session of its own: a signal to our whole group (timeout(1), kill -TERM -PGID) reaches it once, relayed.
            String[] self = Lifecycle.Signals.stat("self");
            if (self != null && !self[5].equals(self[2])) { // tpgid is pgrp in the foreground; -1 with no terminal
                wrap(launch, "util-linux setsid", "a signal to envoy-preflight's process group reaches the app twice",
                        "--");
            }
            launch.addAll(command);
            return launch;
        }

        /** The named tool and its args, where it is on PATH (an env that knows them: GNU's); else what is lost. */
        private void wrap(List<String> launch, String named, String without, String... args) {
            String tool = named.substring(named.indexOf(' ') + 1);
            String path = genuine(tool);
            if (path != null && (!tool.equals("env") || succeeds(path, args[0], "true"))) {
                launch.add(path);
                launch.addAll(List.of(args));
            } else {
                log.info(Log.Event.SETUP, named + " is not on PATH: " + without);
            }
        }

        /** tool's path on PATH, unless it is a busybox or toybox applet (a link to another name). */
        private static String genuine(String tool) {
            Resolved found = resolve(tool, System.getenv("PATH"));
            try {
                if (found.exitCode() == 0 && found.path().toRealPath().getFileName().toString().equals(tool)) {
                    return found.path().toString();
                }
            } catch (IOException e) {
                // an unreadable link: do without it
            }
            return null;
        }

        private static boolean succeeds(String... command) {
            try {
                Process p = start(new ProcessBuilder(command).redirectErrorStream(true)
                        .redirectOutput(ProcessBuilder.Redirect.DISCARD));
                return p.waitFor(5, TimeUnit.SECONDS) && p.exitValue() == 0;
            } catch (IOException e) {
                return false;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }

        static int waitFor(Process p) {
            while (true) {
                try {
                    return p.waitFor();
                } catch (InterruptedException e) {
                    // Nothing interrupts the main thread on purpose; keep waiting for the app.
                }
            }
        }

        /** What a shell would make of the command word: a path to run, or an exit code and why. */
        record Resolved(Path path, int exitCode, String problem) {}

        static Resolved resolve(String word, String pathVariable) {
            if (word.contains("/")) return judge(Path.of(word), word);
            if (word.isEmpty()) return new Resolved(null, Exit.NOT_FOUND.code, "command '' not found");
            Path notExecutable = null;
            // As in execvp: an empty PATH entry means the current directory.
            for (String dir : (pathVariable == null ? "/usr/bin:/bin" : pathVariable).split(":", -1)) {
                Path candidate = Path.of(dir.isEmpty() ? "." : dir).resolve(word);
                if (Files.isRegularFile(candidate)) {
                    if (Files.isExecutable(candidate)) return new Resolved(candidate, 0, null);
                    if (notExecutable == null) notExecutable = candidate;
                }
            }
            if (notExecutable != null) {
                return new Resolved(null, Exit.NOT_EXECUTABLE.code,
                        "command '" + word + "' found at " + notExecutable + " but it is not executable");
            }
            return new Resolved(null, Exit.NOT_FOUND.code, "command '" + word + "' not found on PATH");
        }

        /** A script's #! interpreter must be there, else the wrappers (setpriv, env) would name themselves: 126. */
        static Resolved withInterpreter(Resolved found, String word) {
            if (found.exitCode() != 0) return found;
            byte[] head = new byte[256];
            int n;
            try (InputStream in = Files.newInputStream(found.path())) {
                n = in.readNBytes(head, 0, head.length);
            } catch (IOException e) {
                return found; // unreadable: the kernel will say so
            }
            if (n < 2 || head[0] != '#' || head[1] != '!') return found;
            // As the kernel reads it: up to the newline, spaces and tabs around; a CR (a CRLF script) stays
            String line = new String(head, 2, n - 2, StandardCharsets.UTF_8).split("\n", 2)[0];
            String interpreter = line.replaceAll("^[ \t]+", "").split("[ \t]", 2)[0];
            Path path = Path.of(interpreter);
            boolean missing = interpreter.isEmpty() || !Files.exists(path);
            if (!missing && !Files.isDirectory(path) && Files.isExecutable(path)) return found;
            String why = missing ? "No such file or directory" : "Permission denied";
            return new Resolved(null, Exit.NOT_EXECUTABLE.code, "cannot run '" + word + "': " + found.path() + ": "
                    + interpreter + ": bad interpreter: " + why);
        }

        private static Resolved judge(Path path, String word) {
            if (!Files.exists(path)) return new Resolved(null, Exit.NOT_FOUND.code, "command '" + word + "' not found");
            if (Files.isDirectory(path)) {
                return new Resolved(null, Exit.NOT_EXECUTABLE.code, "command '" + word + "' is a directory");
            }
            if (!Files.isExecutable(path)) {
                return new Resolved(null, Exit.NOT_EXECUTABLE.code, "command '" + word + "' is not executable");
            }
            return new Resolved(path, 0, null);
        }
    }

    // --- Quitting the sidecars at exit: a plan of steps, each able to say what it would do, and do it. ---

    /**
     * What happens at exit: the steps in order (or why there are none); the further means for a
     * sidecar still there halfway through the confirmation; the loopback addresses that must refuse
     * connections once it has gone (every process signalled must have exited too).
     */
    record Plan(List<Step> steps, String nothingBecause, List<Step> further, List<URI> addresses) {
        static final String PILOT_AGENT = "pilot-agent";

        Plan(List<Step> steps, String nothingBecause) {
            this(steps, nothingBecause, List.of(), List.of());
        }

        String describe() {
            if (steps.isEmpty()) return "quit nothing (" + nothingBecause + ")";
            return String.join("; then ", steps.stream().map(Step::describe).toList());
        }

        /** For --dry-run: what must be gone after the steps, and the further means; null if none is confirmed. */
        String confirmation(Duration within) {
            if (steps.isEmpty() || within.isZero()) return null;
            List<String> gone = new ArrayList<>(addresses.stream().map(URI::getAuthority).toList());
            if (steps.stream().anyMatch(s -> s instanceof Stops)) gone.add("each quit process signalled");
            String halfway = String.join(", ", further.stream().map(Step::describe).toList());
            return "confirm gone within " + Log.format(within) + ": " + String.join(", ", gone)
                    + (further.isEmpty() ? "" : " (still there halfway: " + halfway + ")");
        }

        interface Step {
            String describe();

            /** Does it; true if it worked. */
            boolean run(Quit quit);
        }

        /** POST a URL (with a named sidecar's headers, if any); only a 2xx answer counts as success. */
        record Post(URI uri, Map<String, String> headers) implements Step {
            Post(URI uri) {
                this(uri, Map.of());
            }

            @Override
            public String toString() { return "Post[" + Log.redact(uri) + "]"; } // headers may hold a secret

            public String describe() { return "POST " + Log.redact(uri); }
            public boolean run(Quit quit) { return quit.post(uri, headers); }
        }

        /** SIGsignal to every process of that name, as `pkill -SIGINT name`, not waited for; true if one got it. */
        record SignalAll(String name, String signal) implements Step {
            public String describe() { return "SIG" + signal + " " + name; }
            public boolean run(Quit quit) { return !quit.signal(name, signal, false).isEmpty(); }
        }

        /** One NAME[:SIGNAL] of --quit-process: a sidecar with no quit API. */
        record Stop(String name, String signal) {
            /** The kernel keeps 15 bytes of a name in /proc/PID/comm: a longer one would match nothing. */
            static final int COMM_LENGTH = 15;

            public String toString() { return name + ":" + signal; }

            /** One NAME[:SIGNAL] entry. */
            static Stop of(String entry) {
                String[] parts = entry.split(":", 2);
                String name = parts[0];
                String signal = parts.length == 1 ? "TERM" : parts[1].toUpperCase(Locale.ROOT).replaceFirst("^SIG", "");
                int bytes = name.getBytes(StandardCharsets.UTF_8).length;
                if (name.isEmpty() || name.contains("/") || bytes > COMM_LENGTH) {
                    throw new IllegalArgumentException("not a process name (1 to " + COMM_LENGTH
                            + " bytes, as /proc/PID/comm holds it)");
                }
                if (!Lifecycle.Signals.isName(signal)) {
                    throw new IllegalArgumentException("not a signal name (like TERM, INT, QUIT)");
                }
                return new Stop(name, signal);
            }
        }

        /** Every --quit-process at once, one quit timeout for all, then KILL whatever is left of them. */
        record Stops(List<Stop> stops) implements Step {
            public String describe() {
                return String.join(", ", stops.stream().map(s -> "SIG" + s.signal() + " every " + s.name() + " process")
                        .toList()) + " (the eldest of each family), then KILL any left";
            }

            public boolean run(Quit quit) { return quit.stop(stops); }
        }

        /** Try first; if it fails, orElse. */
        record Fallback(Step first, Step orElse) implements Step {
            public String describe() {
                // A chain reads "a, else b, else c"; a chain as the fallback is set apart, like brackets.
                return first.describe() + (orElse instanceof Fallback ? "; if that fails: " : ", else ")
                        + orElse.describe();
            }

            public boolean run(Quit quit) { return quit.attempt(first) || quit.attempt(orElse); }
        }

        /** What to quit at exit with exitCode; noSidecar: the wait found none, and none answered since. */
        static Plan of(Config config, int exitCode, boolean noSidecar) {
            String nothing = nothingToQuit(config, exitCode, noSidecar);
            if (nothing != null) return new Plan(List.of(), nothing);
            URI admin = config.url(Setting.ADMIN_API);
            List<Step> steps = new ArrayList<>();
            List<Step> further = new ArrayList<>();
            for (Setting s : List.of(Setting.GENERIC_QUIT_ENDPOINTS, Setting.CSQL_PROXY_QUIT_URLS)) {
                for (URI uri : config.urls(s)) steps.add(new Post(uri, config.headers(uri)));
            }
            if (!config.processes().isEmpty()) steps.add(new Stops(config.processes())); // before the mesh goes
            // Without an admin API, or when told so, the generic endpoints are all there is to quit.
            if (admin != null && !config.on(Setting.GENERIC_QUIT_ONLY)) {
                URI envoyQuit = config.url(Setting.ENVOY_KILL_API) != null ? config.url(Setting.ENVOY_KILL_API)
                        : Http.resolve(admin, "quitquitquit");
                URI istio = config.url(Setting.ISTIO_QUIT_API);
                // Istio's Envoy: quitting Envoy alone leaves pilot-agent running and the pod with it
                // (istio#6324), so ask pilot-agent on its own port before Envoy's /quitquitquit.
                boolean guessed = istio == null && admin.getPort() == Config.ISTIO_ADMIN_API.getPort();
                if (guessed) istio = URI.create("http://" + admin.getHost() + ":" + Config.ISTIO_QUIT_API.getPort());
                Post istioQuit = istio == null ? null : new Post(Http.resolve(istio, "quitquitquit"));
                Step pilotAgent = new SignalAll(PILOT_AGENT, "INT");
                if (guessed) pilotAgent = new Fallback(pilotAgent, istioQuit);
                Step pkill = new Fallback(pilotAgent, new Post(envoyQuit));
                if (config.url(Setting.ISTIO_QUIT_API) == null) {
                    steps.add(pkill);
                } else {
                    steps.add(config.on(Setting.ISTIO_FALLBACK_PKILL) ? new Fallback(istioQuit, pkill) : istioQuit);
                }
                // Istio's own order (pilot-agent takes Envoy with it), then Envoy's, then the processes.
                if (istio != null) further.add(istioQuit);
                further.add(new Post(envoyQuit));
                if (istio != null) { // in an Istio pod, its own two processes; elsewhere no name is a safe guess
                    further.add(new SignalAll(PILOT_AGENT, "TERM"));
                    further.add(new SignalAll("envoy", "TERM"));
                }
            }
            return new Plan(once(steps), "generic-quit-only is set and there are no generic quit endpoints",
                    List.copyOf(further), addresses(config, steps));
        }

        /** Why nothing is quit, or null. */
        private static String nothingToQuit(Config config, int exitCode, boolean noSidecar) {
            URI admin = config.url(Setting.ADMIN_API);
            if (noSidecar) return "no sidecar was found";
            if (admin == null && config.urls(Setting.GENERIC_QUIT_ENDPOINTS).isEmpty()
                    && config.urls(Setting.CSQL_PROXY_QUIT_URLS).isEmpty() && config.processes().isEmpty()) {
                return "no admin API configured";
            }
            if (admin != null && !Http.isLoopback(admin)) {
                return "the admin API host " + admin.getHost() + " is not loopback, so the sidecar is not ours to quit";
            }
            if (config.on(Setting.NEVER_KILL_ISTIO)) return "never-kill-istio is set";
            if (config.on(Setting.NEVER_KILL_ISTIO_ON_FAILURE) && exitCode != 0) {
                return "never-kill-istio-on-failure is set and the exit code is " + exitCode;
            }
            return null;
        }

        /**
         * The loopback HOST:PORTs of the sidecars the plan quits, as tcp:// URIs: each quit URL's, the admin
         * API's where Envoy is quit, and a readiness target's where it is a quit sidecar's (the same port, a
         * named sidecar's own ready port, or any where processes are quit). Files and other hosts can't be judged.
         */
        private static List<URI> addresses(Config config, List<Step> steps) {
            List<URI> quits = new ArrayList<>();
            for (List<Step> all = new ArrayList<>(steps); !all.isEmpty(); ) {
                Step step = all.remove(0);
                if (step instanceof Post post) quits.add(post.uri());
                if (step instanceof Fallback f) all.addAll(0, List.of(f.first(), f.orElse()));
            }
            Set<URI> quit = new LinkedHashSet<>();
            for (URI uri : quits) if (Http.isLoopback(uri)) quit.add(address(uri));
            Set<URI> ready = new HashSet<>(ownReady(config, quit));
            boolean envoyQuit = config.url(Setting.ADMIN_API) != null && !config.on(Setting.GENERIC_QUIT_ONLY);
            boolean byName = !config.processes().isEmpty(); // a sidecar quit by process is known by its ports
            Set<URI> addresses = new LinkedHashSet<>();
            for (Wait.Target t : Wait.targets(config)) {
                if (t instanceof Wait.Exists || !Http.isLoopback(t.uri())) continue;
                URI address = address(t.uri());
                if (t instanceof Wait.Live ? envoyQuit : byName || quit.contains(address) || ready.contains(t.uri())) {
                    addresses.add(address);
                }
            }
            addresses.addAll(quit);
            return List.copyOf(addresses);
        }

        /**
         * The ready URLs of the named sidecars that are quit at one of these addresses: Istio's 15021 and
         * Cloud SQL proxy's 9090 are the same sidecar as their quit ports, so they must refuse too.
         */
        static List<URI> ownReady(Config config, Set<URI> quitAddresses) {
            List<URI> ready = new ArrayList<>();
            @SuppressWarnings("unchecked")
            List<Config.Sidecar> named = (List<Config.Sidecar>) config.values().get(Setting.SIDECARS);
            for (Config.Sidecar sidecar : named) {
                List<URI> own = new ArrayList<>();
                boolean quit = false;
                for (int i = 0; i < sidecar.settingsAndValues.length; i += 2) {
                    String value = (String) sidecar.settingsAndValues[i + 1];
                    if (value.contains("$")) continue; // Dapr's port: its ready and quit share it anyway
                    if (sidecar.settingsAndValues[i] == Setting.READY_ENDPOINTS) own.add(URI.create(value));
                    else quit |= quitAddresses.contains(address(URI.create(value)));
                }
                if (quit) ready.addAll(own);
            }
            return ready;
        }

        static URI address(URI uri) {
            int port = uri.getPort();
            if (port < 0) port = uri.getScheme().equalsIgnoreCase("https") ? 443 : 80;
            return URI.create("tcp://" + uri.getHost() + ":" + port);
        }

        /**
         * Each URL POSTed once, where it first appears: a POST step that repeats one sent before it
         * is dropped. A repeat inside a fallback stays, to keep the fallback's meaning, and gets the
         * answer the URL had (see post).
         */
        static List<Step> once(List<Step> steps) {
            Set<URI> sent = new HashSet<>();
            List<Step> kept = new ArrayList<>();
            for (Step step : steps) {
                if (step instanceof Post post && !sent.add(post.uri())) continue;
                kept.add(step);
                for (Step s = step; s instanceof Fallback f; s = f.first()) { // a fallback's first is always tried
                    if (f.first() instanceof Post first) sent.add(first.uri());
                }
            }
            return List.copyOf(kept);
        }
    }

    /**
     * One quit at exit: the plan's steps, then the confirmation that each sidecar has gone. It remembers
     * what it POSTed (each URL once), what it signalled, and what it tried, for the confirmation.
     */
    record Quit(Duration timeout, Log log, Map<URI, Boolean> answered, Map<String, List<ProcessHandle>> signalled,
                Set<String> tried, long appPid, BooleanSupplier cut) {
        /** The confirmation's first pause: a sidecar that leaves at once costs one round; then it backs off. */
        static final long CONFIRM_ROUND_MS = 10;

        /** cut: a stop signal came (TERM always ends the tool): the confirmation waits no longer. */
        Quit(Duration timeout, Log log, long appPid, BooleanSupplier cut) {
            this(timeout, log, new HashMap<>(), new LinkedHashMap<>(), new LinkedHashSet<>(), appPid, cut);
        }

        /**
         * After a wait that found no sidecar, one poll of each target: if one is there now (as the
         * target judges: any answer but a refused connection, a file that exists), it came late and
         * is quit as usual.
         */
        static boolean cameLate(Config config, Log log) {
            try {
                for (Wait.Target next : Wait.targets(config)) {
                    Wait.Poll poll = next.poll(Wait.POLL_TIMEOUT, new Http.Abort());
                    if (!next.somethingThere(poll)) continue;
                    log.warn(Log.Event.LATE, next.what() + " answers now (" + poll.seen() + "), though nothing listened"
                            + " during the wait: the sidecar came late, and is quit as usual",
                            "target", Log.redact(next.uri()), "seen", poll.seen());
                    return true;
                }
                return false;
            } catch (RuntimeException | Error e) { // a bug must not cost a quit: quit as if it answered
                log.error(Log.Event.INTERNAL_ERROR, "internal error while asking the sidecar again: " + e
                        + "; quitting as usual", "error", e.toString());
                return true;
            }
        }

        /** The plan's steps, then until each sidecar has gone (or confirm has passed). */
        void run(Plan plan, Duration confirm) {
            if (plan.steps().isEmpty()) {
                log.info(Log.Event.QUIT, "quitting nothing: " + plan.nothingBecause(), "reason", plan.nothingBecause());
                return;
            }
            for (Plan.Step step : plan.steps()) attempt(step); // each logs its own outcome
            if (!confirm.isZero()) confirm(plan, confirm);
        }

        /** Runs one step; what it throws is its failure: a bug must never skip a later step, nor change the code. */
        boolean attempt(Plan.Step step) {
            if (!(step instanceof Plan.Fallback)) tried.add(step.describe());
            try {
                return step.run(this);
            } catch (RuntimeException | Error e) {
                log.error(Log.Event.INTERNAL_ERROR, "internal error in the quit step '" + step.describe() + "': " + e
                        + "; going on", "error", e.toString());
                return false;
            }
        }

        /**
         * A quit counts when the sidecar has gone: each address refuses connections, each process
         * signalled has exited. Halfway, the plan's further means are tried for what is still there.
         */
        void confirm(Plan plan, Duration within) {
            long start = System.nanoTime();
            Map<String, BooleanSupplier> targets = new LinkedHashMap<>(); // each target, and whether it has gone
            for (URI address : plan.addresses()) targets.put(address.getAuthority(), () -> refuses(address));
            Set<String> gone = new HashSet<>();
            boolean escalated = plan.further().isEmpty();
            for (long pause = CONFIRM_ROUND_MS; ; pause = Math.min(100, pause * 2)) { // 10, 20, 40, 80, 100 ms
                signalled.forEach((name, members) -> targets.putIfAbsent("process " + name,
                        () -> members.stream().noneMatch(Quit::running)));
                targets.forEach((target, hasGone) -> {
                    if (gone.contains(target) || !hasGone.getAsBoolean()) return;
                    gone.add(target);
                    long ms = millisSince(start);
                    log.info(Log.Event.GONE, target + " has gone after " + ms + " ms", "target", target, "ms", ms);
                });
                long left = within.toNanos() - (System.nanoTime() - start);
                if (gone.size() == targets.size() || left <= 0 || cut.getAsBoolean()) break;
                if (!escalated && left <= within.toNanos() / 2) {
                    escalated = true;
                    // each POSTs only what was not sent yet, within what is left of the confirmation
                    Quit bounded = new Quit(Duration.ofNanos(Math.min(timeout.toNanos(), left)), log, answered,
                            signalled, tried, appPid, cut);
                    for (Plan.Step step : plan.further()) bounded.attempt(step);
                    continue;
                }
                Lifecycle.pause(Math.min(pause, TimeUnit.NANOSECONDS.toMillis(left) + 1));
            }
            String why = cut.getAsBoolean() ? "a stop signal ended the wait; " : "";
            for (String target : targets.keySet()) {
                if (gone.contains(target)) continue;
                long ms = millisSince(start);
                log.warn(Log.Event.STILL_RUNNING, target + " is still there after " + ms + " ms (" + why + "tried: "
                        + String.join("; ", tried) + ")", "target", target, "tried", List.copyOf(tried), "ms", ms);
            }
        }

        /** Nothing listens at the address any more: a connection is refused (a timeout is someone still there). */
        private static boolean refuses(URI address) {
            try {
                Http.connect(address, Duration.ofMillis(100), new Http.Abort()).close();
                return false;
            } catch (ConnectException e) {
                return true;
            } catch (IOException e) {
                return false;
            }
        }

        /** Each URL is POSTed once: a step that repeats one (in a fallback) gets the answer it had. */
        boolean post(URI uri, Map<String, String> headers) {
            Boolean before = answered.get(uri);
            if (before != null) {
                log.info(Log.Event.QUIT, "POST " + Log.redact(uri) + ": sent already (" + (before ? "it worked"
                        : "it failed") + ")", "url", uri.toString(), "sent_already", true, "ms", 0, "ok", before);
                return before;
            }
            long start = System.nanoTime();
            boolean ok;
            try {
                int status = Http.exchange("POST", uri, headers, timeout, new Http.Abort(), (s, body) -> s);
                long ms = millisSince(start);
                ok = status / 100 == 2;
                String line = "POST " + Log.redact(uri) + ": HTTP " + status + " in " + ms + " ms";
                Object[] fields = {"url", uri.toString(), "status", status, "ms", ms, "ok", ok};
                if (ok) log.info(Log.Event.QUIT, line, fields);
                else log.warn(Log.Event.QUIT, line, fields);
            } catch (IOException e) {
                String error = Http.describe(e, timeout);
                log.warn(Log.Event.QUIT, "POST " + Log.redact(uri) + " failed: " + error, "url", uri.toString(),
                        "error", error, "ms", millisSince(start), "ok", false);
                ok = false;
            }
            answered.put(uri, ok);
            return ok;
        }

        /** Every --quit-process signalled at once; after one quit timeout, KILL every member still running. */
        boolean stop(List<Plan.Stop> stops) {
            long start = System.nanoTime();
            List<ProcessHandle> members = new ArrayList<>();
            for (Plan.Stop s : stops) members.addAll(signal(s.name(), s.signal(), true));
            long deadline = start + timeout.toNanos();
            while (members.stream().anyMatch(Quit::running) && System.nanoTime() - deadline < 0) Lifecycle.pause(20);
            for (Plan.Stop s : stops) { // one warning a sidecar, naming every member KILLed
                List<ProcessHandle> left = signalled.getOrDefault(s.name(), List.of()).stream().filter(Quit::running)
                        .toList();
                if (left.isEmpty()) continue;
                List<Long> pids = left.stream().map(ProcessHandle::pid).toList();
                log.warn(Log.Event.QUIT, s.name() + " " + pids + " still runs " + Log.format(timeout) + " after SIG"
                        + s.signal() + ": sending KILL", "process", s.name(), "pids", pids, "signal", "KILL",
                        "error", "still running", "ms", millisSince(start), "ok", false);
                for (ProcessHandle process : left) {
                    String failure = Lifecycle.Signals.send("KILL", process);
                    if (failure == null || !running(process)) continue;
                    log.warn(Log.Event.QUIT, "could not KILL " + s.name() + " (pid " + process.pid() + "): " + failure,
                            "process", s.name(), "pid", process.pid(), "signal", "KILL", "error", failure,
                            "ms", millisSince(start), "ok", false);
                }
            }
            return !members.isEmpty();
        }

        /**
         * SIGsignal to the eldest of each family of processes named name (nginx's master, not its
         * workers: they follow it, and HAProxy's master fails a graceful stop when a worker is
         * signalled too). Returns every member, signalled or following; empty if none was there.
         * A process gone before its signal has stopped, as asked: only one still running is a failure.
         */
        List<ProcessHandle> signal(String name, String signal, boolean asked) {
            long start = System.nanoTime();
            List<ProcessHandle> members = processesNamed(name);
            if (members.isEmpty()) {
                // pkill's pilot-agent is a guess with a fallback; a process asked for by name is missed
                String why = asked ? "no process named " + name + " is visible to SIG" + signal
                        + " (shareProcessNamespace: true?)"
                        : "no " + name + " process is visible (shareProcessNamespace?)";
                Object[] fields = {"process", name, "signal", signal, "error", "not visible", "ms", millisSince(start),
                        "ok", false};
                if (asked) log.warn(Log.Event.QUIT, why, fields);
                else log.info(Log.Event.QUIT, why, fields);
                return List.of();
            }
            Set<Long> family = new HashSet<>();
            for (ProcessHandle p : members) family.add(p.pid());
            Set<Long> followers = new HashSet<>(); // read before any signal: a head's QUIT may reap its children
            for (ProcessHandle p : members) {
                String[] stat = Lifecycle.Signals.stat(Long.toString(p.pid()));
                if (stat != null && family.contains(Long.parseLong(stat[1]))) followers.add(p.pid());
            }
            List<ProcessHandle> reached = new ArrayList<>();
            for (ProcessHandle process : members) {
                if (followers.contains(process.pid())) { // its parent is one of them, and takes it along
                    reached.add(process);
                    continue;
                }
                String failure = Lifecycle.Signals.send(signal, process);
                String line = "SIG" + signal + " to " + name + " (pid " + process.pid() + ")";
                if (failure != null && running(process)) {
                    log.warn(Log.Event.QUIT, "could not send " + line + ": " + failure, "process", name,
                            "pid", process.pid(), "signal", signal, "error", failure, "ms", millisSince(start),
                            "ok", false);
                    continue;
                }
                log.info(Log.Event.QUIT, failure == null ? "sent " + line : line + ": it had exited already",
                        "process", name, "pid", process.pid(), "signal", signal, "ms", millisSince(start), "ok", true);
                reached.add(process);
            }
            // what was asked for by name is confirmed gone; a guess (pilot-agent) is judged by its ports
            if (asked && !reached.isEmpty()) signalled.computeIfAbsent(name, n -> new ArrayList<>()).addAll(reached);
            return reached;
        }

        private static long millisSince(long start) {
            return (System.nanoTime() - start) / 1_000_000;
        }

        /** Alive and not a zombie (one that exited and waits for its parent to reap it). */
        private static boolean running(ProcessHandle process) {
            String[] stat = Lifecycle.Signals.stat(Long.toString(process.pid()));
            return process.isAlive() && stat != null && !stat[0].equals("Z");
        }

        /**
         * Processes whose /proc/PID/comm is exactly name (pkill matches the same field), except ours: the
         * tool, its ancestors and descendants, and the app's own (its process group or session).
         */
        List<ProcessHandle> processesNamed(String name) {
            ProcessHandle self = ProcessHandle.current();
            Set<Long> ours = new HashSet<>();
            for (Optional<ProcessHandle> p = Optional.of(self); p.isPresent(); p = p.get().parent()) {
                ours.add(p.get().pid());
            }
            self.descendants().forEach(d -> ours.add(d.pid()));
            String app = Long.toString(appPid);
            return ProcessHandle.allProcesses().filter(p -> !ours.contains(p.pid()) && name.equals(comm(p.pid())))
                    .filter(p -> {
                        String[] stat = Lifecycle.Signals.stat(Long.toString(p.pid()));
                        return stat != null && !stat[2].equals(app) && !stat[3].equals(app); // gone, or the app's
                    }).toList();
        }

        private static String comm(long pid) {
            try {
                return Files.readString(Path.of("/proc/" + pid + "/comm")).strip();
            } catch (IOException e) {
                return null; // the process ended while we looked: not a candidate
            }
        }
    }

    // --- Plumbing: logging, values, HTTP. ---

    /** Log lines on stderr only (stdout is the app's): text, or JSON with each event's typed data (docs/logging.md). */
    record Log(boolean verbose, Format format, PrintStream err) {
        enum Format {
            TEXT, JSON;

            static Format parse(String raw) {
                return switch (raw.toLowerCase(Locale.ROOT)) {
                    case "text" -> TEXT;
                    case "json" -> JSON;
                    default -> throw new IllegalArgumentException("not a log format (text or json)");
                };
            }
        }

        /** What a line is about: its "event" in JSON, with the fields it carries; docs/logging.md shows each. */
        enum Event {
            INVALID("a bad setting, mode or argument: exit 2"),
            SETTING("a setting worth a second look: an alias that another source shadows"),
            UNKNOWN_SETTING("a variable that is no setting, ours by its prefix or within two edits of one (name,"
                    + " suggestion): ignored"),
            CONFIG("the resolved settings (settings, set_by)"),
            WAIT("waiting for a readiness target starts (target)"),
            POLL("one readiness poll (target, seen, polls)"),
            READY("a readiness target is ready (target, polls, ms)"),
            GAVE_UP("not ready within the give-up timeout: exit 69 (target, polls, ms)"),
            WAIT_TIMEOUT("not ready within the wait timeout: the app starts anyway (target, polls, ms)"),
            ABSENT("every poll was refused for SIDECAR_ABSENT_AFTER: no sidecar (target, polls, ms)"),
            LATE("after an absent wait, a sidecar answers at exit, and is quit (target, seen)"),
            STOPPED("a stop signal before the app started (signal; target while waiting)"),
            APP_START("the app started (pid, command), or could not be (code, error)"),
            SIGNAL("a signal we got: relayed to the app, or not and why (signal, relayed; pid or error)"),
            APP_EXIT("the app exited (code; signal where it died of one)"),
            EXIT_FILE("the exit file was written (path, code), or not (path, error)"),
            TOMBSTONE("kubexit's tombstone could not be written (path, error)"),
            QUIT("one quit step: url or process (with pid, signal), status or error, ms; reason when nothing is quit"),
            GONE("a sidecar asked to quit has gone: its port refuses connections, its processes exited (target, ms)"),
            STILL_RUNNING("a sidecar still there when the confirm timeout passed (target, tried, ms)"),
            EXIT("the tool exits (code)"),
            TERMINATION_LOG("the termination message could not be written (path, error)"),
            SETUP("a safeguard this machine cannot give (setpriv, GNU env, the orphan reaper, a signal)"),
            INTERNAL_ERROR("a bug of ours, caught: the sidecars are still quit (error)");

            final String about;

            Event(String about) {
                this.about = about;
            }

            String id() { return name().toLowerCase(Locale.ROOT).replace('_', '-'); }
        }

        /** A log for errors before the configuration is known: in the asked format, else text. */
        static Log forErrors(EnvoyPreflight cmd) {
            return new Log(false, (Format) cmd.early(Setting.LOG_FORMAT), cmd.err);
        }

        /** fields: name, value, name, value...; a null value is left out, strings are redacted. */
        void info(Event event, String message, Object... fields) {
            if (verbose) write("info", event, message, fields);
        }

        void warn(Event event, String message, Object... fields) {
            write("warning", event, message, fields);
        }

        void error(Event event, String message, Object... fields) {
            write("error", event, message, fields);
        }

        private void write(String level, Event event, String message, Object[] fields) {
            String safe = redact(message);
            String label = level.equals("info") ? "" : level + ": ";
            // JSON escapes control characters itself
            String line = format == Format.JSON ? json(level, event, safe, fields) : NAME + ": " + label + escape(safe);
            synchronized (err) {
                err.println(line);
                err.flush();
            }
        }

        private static String json(String level, Event event, String message, Object[] fields) {
            StringWriter line = new StringWriter();
            try (JsonWriter json = new JsonWriter(line)) {
                json.beginObject().name("time").value(time(Instant.now())).name("level").value(level)
                        .name("logger").value(NAME).name("msg").value(message).name("event").value(event.id());
                for (int i = 0; i + 1 < fields.length; i += 2) {
                    if (fields[i + 1] != null) value(json.name((String) fields[i]), fields[i + 1]);
                }
                json.endObject();
            } catch (IOException e) {
                throw new UncheckedIOException(e); // a StringWriter never fails
            }
            return line.toString();
        }

        /** RFC 3339 with nine digits of fraction always: Instant.toString() drops trailing zeros. */
        static String time(Instant t) {
            String s = t.toString();
            int dot = s.indexOf('.');
            String fraction = dot < 0 ? "" : s.substring(dot + 1, s.length() - 1);
            String seconds = s.substring(0, dot < 0 ? s.length() - 1 : dot);
            return seconds + "." + (fraction + "000000000").substring(0, 9) + "Z";
        }

        /** Numbers and booleans as JSON's own; lists as arrays, maps as objects; the rest as redacted text. */
        private static void value(JsonWriter json, Object value) throws IOException {
            if (value instanceof Number n) json.value(n);
            else if (value instanceof Boolean b) json.value(b);
            else if (value instanceof Collection<?> list) {
                json.beginArray();
                for (Object item : list) value(json, item);
                json.endArray();
            } else if (value instanceof Map<?, ?> map) {
                json.beginObject();
                for (Map.Entry<?, ?> e : map.entrySet()) value(json.name(e.getKey().toString()), e.getValue());
                json.endObject();
            } else {
                json.value(redact(value.toString()));
            }
        }

        // --- Showing values: as a user would write them, credentials redacted, control characters escaped ---

        /** As a user would write it, and exact: a non-zero duration never shows as 0ms. */
        static String format(Duration d) {
            if (d.isZero()) return "0";
            long nanos = d.toNanos();
            if (nanos % 1_000_000 != 0) return nanos % 1000 != 0 ? nanos + "ns" : nanos / 1000 + "us";
            long ms = d.toMillis();
            if (ms < 1000 || ms % 1000 != 0) return ms + "ms";
            long s = ms / 1000;
            return (s >= 3600 ? s / 3600 + "h" : "") + (s % 3600 >= 60 ? s % 3600 / 60 + "m" : "")
                    + (s % 60 != 0 ? s % 60 + "s" : "");
        }

        /** Where URLs start, compiled at the first URL shown, not at every start (bench b). */
        private static final class Urls {
            /** Where a URL may start: any scheme, wherever it stands (jdbc:postgresql://, <http://, DSN:mysql://). */
            static final Pattern START = Pattern.compile("[A-Za-z][A-Za-z0-9+.-]*://");
            /** Where another URL surely starts: at the start of a word ("pa://ss" inside a password is none). */
            static final Pattern WORD_START = Pattern.compile("(?:^|(?<=[\\s'\"=,(\\[]))[A-Za-z][A-Za-z0-9+.-]*://");
        }

        /**
         * Credentials (user:pass@) in any text never reach a log line or an error: from each "//" to
         * the last '@' before the next URL that starts a word, whatever lies between (a password may
         * hold / ? # @ and spaces, and an invalid URL has no userinfo to parse). It may hide more
         * than the password.
         */
        static String redact(String s) {
            if (s == null || !s.contains("://")) return s;
            Matcher any = Urls.START.matcher(s);
            Matcher word = Urls.WORD_START.matcher(s);
            StringBuilder b = new StringBuilder();
            int copied = 0;
            for (int from = 0; any.find(from); ) {
                int start = any.end();
                int at = s.lastIndexOf('@', (word.find(start) ? word.start() : s.length()) - 1);
                if (at >= start) {
                    b.append(s, copied, start).append("***");
                    copied = at;
                }
                from = Math.max(start, copied);
            }
            return b.append(s, copied, s.length()).toString();
        }

        /** A valid URL, its userinfo exactly. */
        static String redact(URI uri) {
            String s = uri.toString();
            return uri.getRawUserInfo() == null ? s : s.replace(uri.getRawUserInfo() + "@", "***@");
        }

        /** One value or list entry: a URL with its credentials redacted. */
        static String showOne(Object value) {
            return value instanceof URI uri ? redact(uri) : value.toString();
        }

        static List<String> showEach(List<?> values) {
            return values.stream().map(Log::showOne).toList();
        }

        /**
         * A raw value as an error shows it: its credentials redacted (with no scheme, all before the
         * last '@'), and its invisible characters escaped (a trailing CR would look like nothing).
         */
        static String shown(String raw) {
            if (raw.contains("://")) return escape(redact(raw));
            return escape(raw.contains("@") ? "***" + raw.substring(raw.lastIndexOf('@')) : raw);
        }

        /** Control characters as \\n, \\r, \\t or \\xNN: text from outside can't forge a log line or colour a tty. */
        static String escape(String s) {
            StringBuilder b = null;
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                if (c >= 0x20 && c != 0x7f && (c < 0x80 || c > 0x9f)) {
                    if (b != null) b.append(c);
                    continue;
                }
                if (b == null) b = new StringBuilder(s.length() + 8).append(s, 0, i);
                b.append(switch (c) {
                    case '\n' -> "\\n";
                    case '\r' -> "\\r";
                    case '\t' -> "\\t";
                    default -> String.format("\\x%02x", (int) c);
                });
            }
            return b == null ? s : b.toString();
        }
    }

    /**
     * The JDK's HttpURLConnection, set up for talking to a sidecar: never through a proxy, never
     * following redirects, no keep-alive, user:pass@ sent as Basic auth, and one deadline for the
     * whole exchange, enforced by disconnecting at the deadline (as a stop signal does).
     */
    static final class Http {
        static {
            // Read once by the JDK's HTTP client: a POST is never sent twice, a socket never reused,
            // and the Host header may be set (a request to one address of a name carries the name).
            System.setProperty("sun.net.http.retryPost", "false");
            System.setProperty("http.keepAlive", "false");
            System.setProperty("sun.net.http.allowRestrictedHeaders", "true");
        }

        interface BodyReader<T> {
            T read(int status, InputStream body) throws IOException;
        }

        /** Lets another thread cut a request short (a stop signal during the wait), now and later. */
        static final class Abort {
            private volatile boolean aborted;
            private volatile Runnable cancel; // what cuts the exchange in progress short

            void abort() {
                aborted = true;
                cut(cancel);
            }

            private void attach(Runnable cancel) throws IOException {
                this.cancel = cancel;
                if (aborted) throw new IOException("aborted");
            }
        }

        private static ScheduledThreadPoolExecutor cutter;

        /** Disconnects on a thread of its own: a disconnect waits for a read, and the signal thread must not. */
        private static synchronized ScheduledThreadPoolExecutor cutter() {
            if (cutter == null) {
                cutter = new ScheduledThreadPoolExecutor(1, r -> Lifecycle.daemon(r, "http-deadline"));
                cutter.setRemoveOnCancelPolicy(true);
            }
            return cutter;
        }

        private static void cut(Runnable cancel) { if (cancel != null) cutter().execute(cancel); }

        /** One request, within timeout, name lookup included, to each address of the host in turn. */
        static <T> T exchange(String method, URI uri, Map<String, String> headers, Duration timeout, Abort abort,
                              BodyReader<T> reader) throws IOException {
            long deadline = System.nanoTime() + timeout.toNanos();
            return eachAddress(uri, timeout, deadline, address -> {
                if (address == null) return exchange(method, uri, headers, uri.toURL(), deadline, abort, reader);
                String host = address.getHostAddress();
                URL at = new URL(uri.getScheme(), address instanceof Inet6Address ? "[" + host + "]" : host,
                        uri.getPort(), uri.getRawPath() + (uri.getRawQuery() == null ? "" : "?" + uri.getRawQuery()));
                return exchange(method, uri, headers, at, deadline, abort, reader);
            });
        }

        /** A TCP connection to the URI's host and port within timeout, to each address in turn. */
        static Socket connect(URI uri, Duration timeout, Abort abort) throws IOException {
            long deadline = System.nanoTime() + timeout.toNanos();
            return eachAddress(uri, timeout, deadline, address -> {
                Socket socket = new Socket(Proxy.NO_PROXY);
                try {
                    abort.attach(() -> close(socket));
                    long left = Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()));
                    socket.connect(new InetSocketAddress(address, uri.getPort()),
                            (int) Math.min(Integer.MAX_VALUE, left));
                    return socket;
                } catch (IOException e) {
                    close(socket);
                    throw abort.aborted ? new IOException("aborted") : e;
                } finally {
                    abort.cancel = null;
                }
            });
        }

        interface Attempt<T> {
            T at(InetAddress address) throws IOException;
        }

        /**
         * Like Go's dialer and curl, each address the host resolves to is tried in order until one
         * accepts the connection: localhost may be 127.0.0.1 and ::1, and a sidecar of an IPv6-only
         * cluster listens on ::1 alone. A timeout or an abort ends the tries.
         */
        private static <T> T eachAddress(URI uri, Duration timeout, long deadline, Attempt<T> attempt)
                throws IOException {
            IOException refused = null;
            IOException failed = null;
            String host = uri.getHost();
            // an address as written is parsed, not looked up
            List<InetAddress> all = isLiteral(host) ? List.of(InetAddress.getByName(host.replaceAll("^\\[|]$", "")))
                    : List.of(lookup(host, timeout, deadline));
            // https goes by name (the lookup is cached), as TLS checks the name
            if (uri.getScheme().equalsIgnoreCase("https")) all = Collections.singletonList(null);
            for (InetAddress address : all) {
                try {
                    return attempt.at(address);
                } catch (SocketException e) { // not a timeout, nor an abort: the next address
                    if (e instanceof ConnectException) refused = e;
                    else failed = e; // e.g. ::1 where IPv6 is off: says nothing about a sidecar
                }
            }
            throw refused != null ? refused : failed; // refused anywhere, and nothing answered: nothing listens
        }

        private static void close(Socket socket) {
            try {
                socket.close();
            } catch (IOException e) {
                // closing a socket that never connected: nothing to lose
            }
        }

        /** An address as written ([::1], 127.0.0.1): nothing to look up. */
        private static boolean isLiteral(String host) {
            return host.startsWith("[") || IPV4.matcher(host).matches();
        }

        private static ExecutorService lookups;
        /** One lookup in flight per name: a hung resolver holds one thread, not one a poll. */
        private static final Map<String, Future<InetAddress[]>> LOOKING_UP = new ConcurrentHashMap<>();

        /** The JDK's lookup on a thread of its own, within the deadline: a silent resolver holds glibc's 10 s. */
        private static InetAddress[] lookup(String host, Duration timeout, long deadline) throws IOException {
            Future<InetAddress[]> answer;
            synchronized (Http.class) {
                if (lookups == null) lookups = Executors.newCachedThreadPool(r -> Lifecycle.daemon(r, "name-lookup"));
                answer = LOOKING_UP.computeIfAbsent(host, h -> lookups.submit(() -> {
                    try {
                        return InetAddress.getAllByName(h);
                    } finally {
                        LOOKING_UP.remove(h);
                    }
                }));
            }
            try {
                return answer.get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
            } catch (TimeoutException e) {
                throw new UnknownHostException(host + " (no answer from the resolver within " + Log.format(timeout)
                        + ")");
            } catch (ExecutionException e) {
                if (e.getCause() instanceof IOException io) throw io;
                throw new IOException(e.getCause());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted");
            }
        }

        private static <T> T exchange(String method, URI uri, Map<String, String> headers, URL at, long deadline,
                                      Abort abort, BodyReader<T> reader) throws IOException {
            HttpURLConnection c = (HttpURLConnection) at.openConnection(Proxy.NO_PROXY);
            long left = Math.max(1, deadline - System.nanoTime());
            int millis = (int) Math.max(1, Math.min(Integer.MAX_VALUE, TimeUnit.NANOSECONDS.toMillis(left)));
            c.setConnectTimeout(millis);
            c.setReadTimeout(millis);
            c.setInstanceFollowRedirects(false);
            c.setUseCaches(false);
            c.setRequestMethod(method);
            if (!at.getHost().equals(uri.getHost())) c.setRequestProperty("Host", uri.getRawAuthority()
                    .substring(uri.getRawAuthority().lastIndexOf('@') + 1)); // as the user wrote it
            c.setRequestProperty("User-Agent", NAME + "/" + VERSION);
            c.setRequestProperty("Accept", "*/*");
            c.setRequestProperty("Connection", "close");
            for (Map.Entry<String, String> header : headers.entrySet()) {
                try {
                    c.setRequestProperty(header.getKey(), header.getValue());
                } catch (IllegalArgumentException e) { // its message holds the value, which may be a secret
                    throw new IOException("the header " + header.getKey() + " has a character HTTP does not allow");
                }
            }
            if (uri.getRawUserInfo() != null) {
                c.setRequestProperty("Authorization", "Basic " + Base64.getEncoder()
                        .encodeToString(uri.getUserInfo().getBytes(StandardCharsets.UTF_8)));
            }
            ScheduledFuture<?> atDeadline = cutter().schedule(c::disconnect, left, TimeUnit.NANOSECONDS);
            try {
                abort.attach(c::disconnect);
                if (!method.equals("GET")) {
                    c.setDoOutput(true);
                    c.setFixedLengthStreamingMode(0);
                    c.getOutputStream().close();
                }
                int status = c.getResponseCode();
                if (status < 100) throw new IOException("not an HTTP response");
                InputStream body = status < 400 ? c.getInputStream() : c.getErrorStream();
                return reader.read(status, new Body(body == null ? InputStream.nullInputStream() : body,
                        c.getContentLengthLong(), deadline));
            } catch (IOException | RuntimeException e) {
                // Whatever a disconnect broke (the JDK may even throw a NullPointerException when
                // it comes mid-request), the cause is the deadline, or the abort.
                if (abort.aborted) throw new IOException("aborted");
                if (System.nanoTime() - deadline >= 0) throw new SocketTimeoutException("deadline passed");
                if (e instanceof IOException io) throw io;
                throw e;
            } finally {
                atDeadline.cancel(false);
                abort.cancel = null;
                c.disconnect();
            }
        }

        static String describe(IOException e, Duration timeout) {
            // a poll's timeout is what is left of the wait: shown rounded up to a whole millisecond
            if (e instanceof SocketTimeoutException) {
                return "no answer within " + Log.format(Duration.ofMillis((timeout.toNanos() + 999_999) / 1_000_000));
            }
            if (e instanceof ConnectException) return "connection refused";
            if (e instanceof UnknownHostException) return "unknown host " + e.getMessage();
            if (e instanceof NoRouteToHostException) return "no route to host";
            if (e instanceof EOFException) return e.getMessage();
            return e.getMessage() != null ? e.getMessage() : "I/O error"; // the JDK's words, not its class names
        }

        /**
         * The body as the JDK gives it, plus what it leaves out: each read checks the deadline (a
         * dripping body never outlasts it), and a body shorter than its Content-Length is an error,
         * not an early end.
         */
        static final class Body extends FilterInputStream {
            private final long length;
            private final long deadline;
            private long read;

            Body(InputStream in, long length, long deadline) {
                super(in);
                this.length = length;
                this.deadline = deadline;
            }

            @Override
            public int read() throws IOException {
                byte[] one = new byte[1];
                return read(one, 0, 1) == -1 ? -1 : one[0] & 0xff;
            }

            @Override
            public int read(byte[] b, int off, int len) throws IOException {
                if (System.nanoTime() - deadline >= 0) throw new SocketTimeoutException("deadline passed");
                int n;
                try {
                    n = in.read(b, off, len);
                } catch (SocketTimeoutException e) {
                    throw e;
                } catch (IOException e) { // JDK 25 says "Premature EOF" where JDK 17 just ends the body
                    if (length < 0) throw e;
                    n = -1;
                }
                if (n == -1 && length >= 0 && read < length) {
                    throw new EOFException("connection closed after " + read + " of " + length + " body bytes");
                }
                if (n > 0) read += n;
                return n;
            }
        }

        /** base + "/" + path, whatever slashes base ends with. */
        static URI resolve(URI base, String path) {
            String basePath = base.getRawPath() == null ? "" : base.getRawPath().replaceAll("/+$", "");
            // From the raw parts, as written: URI's many-argument constructors would encode a %40 again.
            return URI.create(base.getScheme() + "://" + base.getRawAuthority() + basePath + "/" + path);
        }

        static final Pattern IPV4 = Pattern.compile("(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})\\.(\\d{1,3})");

        /** localhost, 127.0.0.0/8 or ::1 (any spelling), judged without any DNS lookup. */
        static boolean isLoopback(URI uri) {
            if (uri.getHost() == null) return false; // e.g. 127.0.0.256: not an address at all
            String host = uri.getHost().toLowerCase(Locale.ROOT);
            if (host.equals("localhost") || host.equals("localhost.")) return true;
            Matcher v4 = IPV4.matcher(host);
            if (v4.matches()) {
                for (int i = 1; i <= 4; i++) if (Integer.parseInt(v4.group(i)) > 255) return false;
                return Integer.parseInt(v4.group(1)) == 127;
            }
            if (host.startsWith("[") && host.endsWith("]")) {
                try {
                    // A bracketed literal: InetAddress parses it without asking DNS.
                    return InetAddress.getByName(host.substring(1, host.length() - 1)).isLoopbackAddress();
                } catch (UnknownHostException e) {
                    return false;
                }
            }
            return false;
        }
    }
}
