package vigil.flink.runtime;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.File;
import java.io.FileInputStream;
import java.util.ArrayList;
import java.util.List;

import org.apache.flink.runtime.checkpoint.Checkpoints;
import org.apache.flink.runtime.checkpoint.OperatorState;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.checkpoint.metadata.CheckpointMetadata;

/**
 * Prints, as JSON on stdout, the operator states held in a savepoint's {@code _metadata}: the
 * savepoint side of {@code vigil upgrade check} (vigil/upgrade_check.py).
 *
 * <p>Run with the wheel's {@code lib/*} on the classpath: {@code java -cp ... 
 * vigil.flink.runtime.SavepointStates <savepoint folder or _metadata file>}. It reads the metadata
 * with Flink's own loader (the same code the JobManager runs on restore), so the format version
 * is whatever this Flink writes. Only local files: the local cluster's savepoints.
 *
 * <p>"has_state" follows Flink's restore check (Checkpoints.loadAndValidateCheckpoint): an
 * operator state blocks a restore without --allowNonRestoredState when it has coordinator state
 * or a subtask state with content; empty ones are skipped by Flink silently.
 */
public final class SavepointStates {

    private SavepointStates() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: SavepointStates <savepoint folder | _metadata file>");
            System.exit(2);
        }
        File file = new File(args[0]);
        if (file.isDirectory()) {
            file = new File(file, "_metadata");
        }
        if (!file.isFile()) {
            System.err.println("no savepoint metadata at " + file);
            System.exit(2);
        }
        CheckpointMetadata metadata;
        try (DataInputStream in = new DataInputStream(new BufferedInputStream(new FileInputStream(file)))) {
            metadata = Checkpoints.loadCheckpointMetadata(
                    in, SavepointStates.class.getClassLoader(), file.getParentFile().getAbsolutePath());
        }
        List<String> operators = new ArrayList<>();
        for (OperatorState state : metadata.getOperatorStates()) {
            operators.add(describe(state));
        }
        System.out.println("{\"checkpoint_id\": " + metadata.getCheckpointId() + ", \"operators\": [\n  "
                + String.join(",\n  ", operators) + "\n]}");
    }

    private static String describe(OperatorState state) {
        boolean keyed = false;
        boolean operatorState = false;
        boolean channelState = false;
        int withState = 0;
        for (OperatorSubtaskState subtask : state.getStates()) {
            keyed |= !subtask.getManagedKeyedState().isEmpty() || !subtask.getRawKeyedState().isEmpty();
            operatorState |= !subtask.getManagedOperatorState().isEmpty() || !subtask.getRawOperatorState().isEmpty();
            channelState |= !subtask.getInputChannelState().isEmpty() || !subtask.getResultSubpartitionState().isEmpty();
            withState += subtask.hasState() ? 1 : 0;
        }
        boolean coordinator = state.getCoordinatorState() != null;
        long size = state.getStateSize();
        return "{\"id\": " + Json.str(state.getOperatorID().toHexString())
                + ", \"name\": " + Json.str(state.getOperatorName().orElse(null))
                + ", \"uid\": " + Json.str(state.getOperatorUid().orElse(null))
                + ", \"parallelism\": " + state.getParallelism()
                + ", \"max_parallelism\": " + state.getMaxParallelism()
                + ", \"state_size\": " + size
                + ", \"subtasks_with_state\": " + withState
                + ", \"keyed\": " + keyed
                + ", \"operator_state\": " + operatorState
                + ", \"coordinator_state\": " + coordinator
                + ", \"channel_state\": " + channelState
                + ", \"finished\": " + state.isFullyFinished()
                + ", \"has_state\": " + (coordinator || withState > 0) + "}";
    }
}
