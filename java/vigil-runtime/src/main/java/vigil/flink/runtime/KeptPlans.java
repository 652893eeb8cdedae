package vigil.flink.runtime;

import java.io.File;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.CompletableFuture;

import org.apache.flink.api.common.JobID;
import org.apache.flink.api.dag.Pipeline;
import org.apache.flink.client.deployment.ClusterClientJobClientAdapter;
import org.apache.flink.client.deployment.ClusterDescriptor;
import org.apache.flink.client.deployment.StandaloneClientFactory;
import org.apache.flink.client.deployment.StandaloneClusterId;
import org.apache.flink.client.deployment.executors.PipelineExecutorUtils;
import org.apache.flink.client.program.ClusterClient;
import org.apache.flink.client.program.ClusterClientProvider;
import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.GlobalConfiguration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.PipelineExecutor;
import org.apache.flink.runtime.jobgraph.SavepointRestoreSettings;
import org.apache.flink.streaming.api.graph.StreamGraph;
import org.apache.flink.util.InstantiationUtil;

/**
 * Kept plans: a job's compiled StreamGraph written to a file when it is submitted, and submitted
 * again from that file to restore the job: what a disaster-recovery restore needs, without
 * running the job's Python client again (its plan compilation took 40-45 s of the DR drill's
 * recovery on 2 cores, vigil/dr_drill.py).
 *
 * <p>Submit side: {@code flink run -t vigil-remote -Dvigil.kept-plan.path=FILE -py job.py ...}
 * selects {@link ExecutorFactory}, which does what Flink's remote session executor does (the
 * StreamGraph with its user-defined instances serialised, submitted through the cluster's REST
 * client: Flink 2.x sends the StreamGraph, the JobManager builds the JobGraph) and first writes
 * that same StreamGraph to FILE. Restore side: {@code java -cp <cluster lib>/* vigil.flink.runtime.KeptPlans
 * FILE RESTORE_POINT} (with FLINK_CONF_DIR) submits the kept graph under a new job id, restoring
 * from RESTORE_POINT (a savepoint or retained checkpoint URI; state it cannot map fails the
 * submission, never dropped silently), and prints {@code JobID <id>}.
 *
 * <p>A kept plan is only valid for the code and flags it was made with: the caller keys it by
 * both (vigil/flink_cluster.py) and falls back to {@code flink run -s} when they differ.
 */
public final class KeptPlans {

    public static final String NAME = "vigil-remote";

    static final ConfigOption<String> PATH =
            ConfigOptions.key("vigil.kept-plan.path").stringType().noDefaultValue();

    private KeptPlans() {}

    /** {@code flink run -t vigil-remote}: Flink's remote submission, keeping the plan. */
    public static final class ExecutorFactory extends NamedExecutorFactory {
        public ExecutorFactory() {
            super(NAME);
        }

        @Override
        public PipelineExecutor getExecutor(Configuration configuration) {
            return (pipeline, config, classLoader) -> submitKeeping(pipeline, config, classLoader);
        }
    }

    private static CompletableFuture<JobClient> submitKeeping(Pipeline pipeline, Configuration config,
            ClassLoader loader) throws Exception {
        StreamGraph graph = PipelineExecutorUtils.getStreamGraph(pipeline, config);
        graph.serializeUserDefinedInstances();
        String path = config.get(PATH);
        if (path != null) {
            write(graph, new File(path));
        }
        return submit(graph, config, loader);
    }

    static void write(StreamGraph graph, File target) throws Exception {
        File parent = target.getAbsoluteFile().getParentFile();
        if (parent != null) {
            Files.createDirectories(parent.toPath());
        }
        File staging = new File(target.getPath() + ".staging");
        try (OutputStream out = Files.newOutputStream(staging.toPath())) {
            InstantiationUtil.serializeObject(out, graph);
        }
        Files.move(staging.toPath(), target.toPath(), StandardCopyOption.REPLACE_EXISTING,
                StandardCopyOption.ATOMIC_MOVE);
    }

    private static CompletableFuture<JobClient> submit(StreamGraph graph, Configuration config, ClassLoader loader)
            throws Exception {
        StandaloneClientFactory factory = new StandaloneClientFactory();
        ClusterDescriptor<StandaloneClusterId> descriptor = factory.createClusterDescriptor(config);
        ClusterClientProvider<StandaloneClusterId> provider = descriptor.retrieve(factory.getClusterId(config));
        ClusterClient<StandaloneClusterId> client = provider.getClusterClient();
        return client.submitJob(graph)
                .thenApply(id -> (JobClient) new ClusterClientJobClientAdapter<>(provider, id, loader))
                .whenComplete((ignored, error) -> {
                    client.close();
                    descriptor.close();
                });
    }

    /** Restore: {@code KeptPlans FILE RESTORE_POINT}; exit 0 and "JobID <id>" once submitted. */
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: KeptPlans PLAN_FILE RESTORE_POINT_URI");
            System.exit(2);
        }
        String confDir = System.getenv("FLINK_CONF_DIR");
        Configuration config = confDir == null ? new Configuration() : GlobalConfiguration.loadConfiguration(confDir);
        StreamGraph graph;
        try (InputStream in = Files.newInputStream(new File(args[0]).toPath())) {
            graph = InstantiationUtil.deserializeObject(in, KeptPlans.class.getClassLoader());
        }
        graph.setJobId(JobID.generate());
        // allowNonRestoredState false: state the plan cannot map fails the job, as `flink run -s` does.
        graph.setSavepointRestoreSettings(SavepointRestoreSettings.forPath(args[1], false));
        JobID id = submit(graph, config, KeptPlans.class.getClassLoader()).get().getJobID();
        System.out.println("JobID " + id.toHexString());
        System.exit(0);
    }
}
