package vigil.flink.runtime;

import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.DeploymentOptions;
import org.apache.flink.core.execution.PipelineExecutorFactory;

/** A pipeline executor that `flink run -t NAME` selects (execution.target), by its name. */
public abstract class NamedExecutorFactory implements PipelineExecutorFactory {

    private final String name;

    protected NamedExecutorFactory(String name) {
        this.name = name;
    }

    @Override
    public String getName() {
        return name;
    }

    @Override
    public boolean isCompatibleWith(Configuration configuration) {
        return name.equalsIgnoreCase(configuration.get(DeploymentOptions.TARGET));
    }
}
