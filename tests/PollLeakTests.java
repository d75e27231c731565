import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.parallel.Isolated;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Thousands of polls in this JVM leak no heap, thread or descriptor. What it measures is the whole
 * JVM's, and other test classes run in it side by side: it runs alone (@Isolated), and first
 * (RunTests), so that nothing waits for it for long. The tool's own process: ReliabilityTests.Soak.
 */
@Isolated
@Tag("slow")
class PollLeakTests extends TestSupport.WithFakeEnvoy {
    @Test
    void thousandsOfPollsLeakNoHeapThreadsOrDescriptors() throws Exception {
        fake.forceState("INITIALIZING");
        EnvoyPreflight.Config config = TestSupport.config(Map.of("ENVOY_ADMIN_API", fake.url().toString()));
        EnvoyPreflight.Wait.Target admin = EnvoyPreflight.Wait.targets(config).get(0);
        for (int i = 0; i < 300; i++) admin.poll(Duration.ofSeconds(1), new EnvoyPreflight.Http.Abort()); // warm-up
        long heap0 = usedHeapAfterGc();
        long threads0 = ourThreads();
        long fds0 = openDescriptors();
        for (int i = 0; i < 3000; i++) {
            assertFalse(admin.poll(Duration.ofSeconds(1), new EnvoyPreflight.Http.Abort()).ready());
        }
        long heapGrowth = usedHeapAfterGc() - heap0;
        assertTrue(heapGrowth < 2 << 20, "heap grew by " + heapGrowth + " bytes over 3000 polls");
        assertEquals(threads0, ourThreads(), "threads");
        long fds = openDescriptors();
        assertTrue(fds <= fds0 + 8, "descriptors: " + fds0 + " before, " + fds + " after 3000 polls");
    }

    long usedHeapAfterGc() throws InterruptedException {
        long best = Long.MAX_VALUE;
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(50);
            var heap = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage();
            best = Math.min(best, heap.getUsed());
        }
        return best;
    }

    /**
     * Threads of this JVM that are not the fake server's (whose pool grows and shrinks), nor JUnit's
     * workers (the pool adds one where a class waits for this one to end) or the JDK's process
     * reapers (they end a while after the processes of the suite's start): no poll makes any of those.
     */
    long ourThreads() {
        return Thread.getAllStackTraces().keySet().stream().map(Thread::getName)
                .filter(n -> !n.startsWith("fake-envoy") && !n.startsWith("HTTP-Dispatcher")
                        && !n.startsWith("ForkJoinPool") && !n.startsWith("process reaper"))
                .count();
    }

    long openDescriptors() throws IOException {
        try (var fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.count();
        }
    }
}
