package vigil.flink.runtime;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import pemja.core.PythonInterpreter;
import pemja.core.PythonInterpreterConfig;

/** Initialises pemja's main interpreter once, on the calling thread (see PythonWarmupReporterFactory). */
final class PythonWarmup {

    private static final Logger LOG = LoggerFactory.getLogger(PythonWarmup.class);

    private PythonWarmup() {}

    static void start(String python) {
        long started = System.nanoTime();
        PythonInterpreterConfig config = PythonInterpreterConfig.newBuilder()
                .setPythonExec(python)
                .setExcType(PythonInterpreterConfig.ExecType.MULTI_THREAD)
                .build();
        try (PythonInterpreter interpreter = new PythonInterpreter(config)) {
            interpreter.exec("import sys");
            LOG.info("Embedded Python ({}) started in {} ms, before any task", python,
                    (System.nanoTime() - started) / 1_000_000);
        } catch (Throwable t) {
            // Not fatal here: the jobs' Python operators report the same problem with their context.
            LOG.error("Embedded Python ({}) failed to start at TaskManager start-up", python, t);
        }
    }
}
