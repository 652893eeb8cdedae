package vigil.flink.runtime;

import java.util.Properties;

import org.apache.flink.metrics.Metric;
import org.apache.flink.metrics.MetricConfig;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.metrics.reporter.MetricReporter;
import org.apache.flink.metrics.reporter.MetricReporterFactory;

/**
 * Starts the embedded Python interpreter when a TaskManager starts, before any task can run.
 *
 * <p>Why: PyFlink's thread mode runs Python through pemja, whose one main interpreter per JVM is
 * started by the first Python operator's open(). If that task is cancelled during the start (a
 * failover while a restored job deploys), the interrupt is kept as a permanent error and every
 * later Python operator in that JVM fails with "java.lang.Error: java.lang.InterruptedException":
 * the TaskManager is useless until it is replaced (docs/adr/0006). Started here, on the start-up
 * thread that no task cancellation interrupts, the interpreter is up before tasks arrive; a task
 * that comes while it starts waits on pemja's lock, which an interrupt cannot break.
 *
 * <p>A metric reporter is the hook because Flink instantiates reporters while a TaskManager
 * starts, from its configuration alone: {@code metrics.reporter.python_warmup.factory.class:
 * vigil.flink.runtime.PythonWarmupReporterFactory} and {@code metrics.reporter.python_warmup.python:
 * <the interpreter of python.executable>}. It reports nothing. JobManagers skip the warm-up.
 */
public final class PythonWarmupReporterFactory implements MetricReporterFactory {

    @Override
    public MetricReporter createMetricReporter(Properties properties) {
        String python = properties.getProperty("python");
        String command = System.getProperty("sun.java.command", "");
        if (python != null && !python.isEmpty() && command.contains("TaskManagerRunner")) {
            PythonWarmup.start(python);
        }
        return new SilentReporter();
    }

    private static final class SilentReporter implements MetricReporter {
        @Override
        public void open(MetricConfig config) {}

        @Override
        public void close() {}

        @Override
        public void notifyOfAddedMetric(Metric metric, String name, MetricGroup group) {}

        @Override
        public void notifyOfRemovedMetric(Metric metric, String name, MetricGroup group) {}
    }
}
