package vigil.flink.runtime;

import java.io.File;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.JobID;
import org.apache.flink.api.common.JobStatus;
import org.apache.flink.api.dag.Pipeline;
import org.apache.flink.client.deployment.executors.PipelineExecutorUtils;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.PipelineExecutor;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.OperatorIDPair;
import org.apache.flink.runtime.jobgraph.JobGraph;
import org.apache.flink.runtime.jobgraph.JobVertex;
import org.apache.flink.streaming.api.graph.StreamGraph;
import org.apache.flink.streaming.api.graph.StreamNode;

/**
 * An executor that writes a job's JobGraph operators as JSON instead of running the job: the
 * new-job side of {@code vigil upgrade check} (vigil/upgrade_check.py).
 *
 * <p>Selected with {@code flink run -t vigil-plan-export -Dvigil.plan-export.path=FILE -py job.py
 * [job flags]}: the job script runs unchanged (same flags, same planner, same uids) up to its
 * execute(), and Flink hands the pipeline to this executor instead of a cluster. Why an executor:
 * no job needs a hook, and the ids are the ones Flink computes when it translates the same
 * StreamGraph for a real submission (the JobGraph's OperatorIDPairs, which the JobManager matches
 * savepoint state against on restore).
 *
 * <p>For each operator: generated and user-defined ids, name, uid, whether it is keyed (its stream
 * node has a state key serializer) and its operator factory class (sources and sinks keep operator
 * state without being keyed). The returned JobClient reports the job FINISHED at once.
 */
public final class PlanExportExecutorFactory extends NamedExecutorFactory {

    public static final String NAME = "vigil-plan-export";

    static final ConfigOption<String> PATH =
            ConfigOptions.key("vigil.plan-export.path").stringType().noDefaultValue();

    public PlanExportExecutorFactory() {
        super(NAME);
    }

    @Override
    public PipelineExecutor getExecutor(Configuration configuration) {
        return (pipeline, config, classLoader) -> export(pipeline, config, classLoader);
    }

    private static CompletableFuture<JobClient> export(Pipeline pipeline, Configuration config, ClassLoader loader)
            throws Exception {
        String path = config.get(PATH);
        if (path == null) {
            throw new IllegalArgumentException("execution.target " + NAME + " needs -D" + PATH.key() + "=FILE");
        }
        StreamGraph streamGraph = PipelineExecutorUtils.getStreamGraph(pipeline, config);
        Map<String, StreamNode> byUid = new HashMap<>();
        Map<String, StreamNode> byName = new HashMap<>();
        for (StreamNode node : streamGraph.getStreamNodes()) {
            if (node.getTransformationUID() != null) {
                byUid.put(node.getTransformationUID(), node);
            }
            byName.putIfAbsent(node.getOperatorName(), node);
        }
        // The translation compiles the planner's generated operators, which may name classes of
        // the job's jars (pipeline.jars, e.g. vigil-formats' functions): load them beside the
        // caller's class loader, as a cluster does for a submitted job.
        List<URL> jars = new ArrayList<>();
        for (String jar : config.getOptional(PipelineOptions.JARS).orElse(Collections.emptyList())) {
            jars.add(new URL(jar));
        }
        JobGraph jobGraph;
        try (URLClassLoader withJars = new URLClassLoader(jars.toArray(new URL[0]), loader)) {
            jobGraph = streamGraph.getJobGraph(withJars);
        }
        List<String> vertices = new ArrayList<>();
        for (JobVertex vertex : jobGraph.getVertices()) {
            List<String> operators = new ArrayList<>();
            for (OperatorIDPair pair : vertex.getOperatorIDs()) {
                StreamNode node = pair.getUserDefinedOperatorUid() != null
                        ? byUid.get(pair.getUserDefinedOperatorUid()) : byName.get(pair.getUserDefinedOperatorName());
                operators.add("{\"generated_id\": " + Json.str(pair.getGeneratedOperatorID().toHexString())
                        + ", \"user_defined_id\": "
                        + Json.str(pair.getUserDefinedOperatorID().map(id -> id.toHexString()).orElse(null))
                        + ", \"name\": " + Json.str(pair.getUserDefinedOperatorName())
                        + ", \"uid\": " + Json.str(pair.getUserDefinedOperatorUid())
                        + ", \"keyed\": " + (node != null && node.getStateKeySerializer() != null)
                        + ", \"factory\": " + Json.str(node == null || node.getOperatorFactory() == null
                                ? null : node.getOperatorFactory().getClass().getName()) + "}");
            }
            vertices.add("{\"id\": " + Json.str(vertex.getID().toHexString())
                    + ", \"name\": " + Json.str(vertex.getName())
                    + ", \"parallelism\": " + vertex.getParallelism()
                    + ", \"max_parallelism\": " + vertex.getMaxParallelism()
                    + ", \"operators\": [\n    " + String.join(",\n    ", operators) + "]}");
        }
        String json = "{\"job_name\": " + Json.str(jobGraph.getName()) + ", \"vertices\": [\n  "
                + String.join(",\n  ", vertices) + "\n]}\n";
        File target = new File(path);
        File staging = new File(path + ".staging");
        Files.write(staging.toPath(), json.getBytes(StandardCharsets.UTF_8));
        Files.move(staging.toPath(), target.toPath(), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        return CompletableFuture.completedFuture(new ExportedJob(jobGraph.getJobID()));
    }

    /** The job that was exported, not run: finished at once, nothing to cancel or savepoint. */
    private static final class ExportedJob implements JobClient {
        private final JobID jobId;

        ExportedJob(JobID jobId) {
            this.jobId = jobId;
        }

        @Override
        public JobID getJobID() {
            return jobId;
        }

        @Override
        public CompletableFuture<JobStatus> getJobStatus() {
            return CompletableFuture.completedFuture(JobStatus.FINISHED);
        }

        @Override
        public CompletableFuture<Void> cancel() {
            return CompletableFuture.completedFuture(null);
        }

        @Override
        public CompletableFuture<String> stopWithSavepoint(boolean drain, String dir, SavepointFormatType type) {
            return unsupported();
        }

        @Override
        public CompletableFuture<String> triggerSavepoint(String dir, SavepointFormatType type) {
            return unsupported();
        }

        @Override
        public CompletableFuture<Map<String, Object>> getAccumulators() {
            return CompletableFuture.completedFuture(Collections.emptyMap());
        }

        @Override
        public CompletableFuture<JobExecutionResult> getJobExecutionResult() {
            return CompletableFuture.completedFuture(new JobExecutionResult(jobId, 0L, Collections.emptyMap()));
        }

        private static CompletableFuture<String> unsupported() {
            CompletableFuture<String> failed = new CompletableFuture<>();
            failed.completeExceptionally(new UnsupportedOperationException("an exported plan does not run"));
            return failed;
        }
    }
}
