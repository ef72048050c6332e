package flinkpilot.jobs;

import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.util.Collector;

/**
 * The counter job: an unbounded, checkpointed stream of keys {@code 0..K-1}, and per key a
 * counter kept in Flink state. Every record writes one line {@code key,count,epochMillis}, so
 * a reader can tell whether state survived a restart (counts continue) or was lost (counts
 * start again at 1). Only APIs present in both Flink 1.20 and 2.x are used.
 *
 * <p>See {@code jobs/README.md} for the arguments and the output format.
 */
public final class Counter {
    /** Operator uids: savepoints map state to operators by these, so they never change. */
    static final String SOURCE_UID = "counter-source";
    static final String COUNT_UID = "counter-count";

    /** Fixed so that key groups, and so state placement, stay the same across rescaling. */
    static final int MAX_PARALLELISM = 128;

    static final long DEFAULT_CHECKPOINT_INTERVAL_MS = 1000;

    private Counter() {}

    public static void main(String[] args) throws Exception {
        Options opts = Options.parse(args);

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setMaxParallelism(MAX_PARALLELISM);
        if (opts.checkpointIntervalMs > 0) {
            env.enableCheckpointing(opts.checkpointIntervalMs);
        } else if (!env.getCheckpointConfig().isCheckpointingEnabled()) {
            // The cluster config (execution.checkpointing.interval) wins when it sets one; the
            // job is never left without checkpoints, since its purpose is to have state.
            env.enableCheckpointing(DEFAULT_CHECKPOINT_INTERVAL_MS);
        }

        final long keys = opts.keys;
        DataGeneratorSource<Long> source =
                new DataGeneratorSource<>(
                        index -> index % keys,
                        Long.MAX_VALUE,
                        // divided among the source's subtasks, so this is the job's total rate
                        RateLimiterStrategy.perSecond(opts.rate),
                        Types.LONG);

        env.fromSource(source, WatermarkStrategy.noWatermarks(), "keys")
                .uid(SOURCE_UID)
                .keyBy(key -> key)
                .process(new Count(opts.output, opts.failAtCount, opts.failOnStart))
                .uid(COUNT_UID)
                .name("count");

        env.execute("counter");
    }

    /** Thrown on purpose (--fail-at-count, --fail-on-start); tests look for its name. */
    public static final class DeliberateFailure extends RuntimeException {
        private static final long serialVersionUID = 1L;

        DeliberateFailure(String message) {
            super(message);
        }
    }

    /** Counts records per key in a {@code ValueState<Long>} and writes one line per record. */
    static final class Count extends KeyedProcessFunction<Long, Long, Void> {
        private static final long serialVersionUID = 1L;

        private final String output;
        private final long failAtCount;
        private final boolean failOnStart;

        private transient ValueState<Long> count;
        private transient Writer writer;

        Count(String output, long failAtCount, boolean failOnStart) {
            this.output = output;
            this.failAtCount = failAtCount;
            this.failOnStart = failOnStart;
        }

        @Override
        public void open(OpenContext context) throws IOException {
            if (failOnStart) {
                throw new DeliberateFailure("counter: deliberate failure on start (--fail-on-start)");
            }
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
            if (output != null) {
                writer = openOutput();
            }
        }

        /**
         * One file per subtask and attempt: {@code <jobId>-<subtask>-<attempt>-<openedMillis>.csv}.
         * The job id and the time keep restarts and redeploys (which may reuse a job id) from
         * ever writing into an earlier run's file.
         */
        private Writer openOutput() throws IOException {
            Path dir = Paths.get(output);
            Files.createDirectories(dir);
            String name =
                    String.format(
                            "%s-%d-%d-%d.csv",
                            getRuntimeContext().getJobInfo().getJobId(),
                            getRuntimeContext().getTaskInfo().getIndexOfThisSubtask(),
                            getRuntimeContext().getTaskInfo().getAttemptNumber(),
                            System.currentTimeMillis());
            return Files.newBufferedWriter(
                    dir.resolve(name),
                    StandardCharsets.UTF_8,
                    StandardOpenOption.CREATE,
                    StandardOpenOption.APPEND);
        }

        @Override
        public void processElement(Long key, Context ctx, Collector<Void> out) throws Exception {
            Long previous = count.value();
            long next = previous == null ? 1 : previous + 1;
            if (failAtCount > 0 && next >= failAtCount) {
                throw new DeliberateFailure(
                        String.format(
                                "counter: deliberate failure, key %d reached count %d (--fail-at-count %d)",
                                key, next, failAtCount));
            }
            count.update(next);
            String line = key + "," + next + "," + System.currentTimeMillis();
            if (writer != null) {
                writer.write(line);
                writer.write('\n');
                // readers watch the files while the job runs; a whole line per write
                writer.flush();
            } else {
                System.out.println(line);
            }
        }

        @Override
        public void close() throws Exception {
            if (writer != null) {
                writer.close();
            }
        }
    }

    /** The command line; see {@code jobs/README.md}. */
    static final class Options {
        long rate = 10;
        long keys = 4;
        String output;
        long checkpointIntervalMs;
        long failAtCount;
        boolean failOnStart;

        static Options parse(String[] args) {
            Options o = new Options();
            for (int i = 0; i < args.length; i++) {
                switch (args[i]) {
                    case "--rate":
                        o.rate = positive(args, ++i);
                        break;
                    case "--keys":
                        o.keys = positive(args, ++i);
                        break;
                    case "--output":
                        o.output = value(args, ++i);
                        break;
                    case "--checkpoint-interval":
                        o.checkpointIntervalMs = positive(args, ++i);
                        break;
                    case "--fail-at-count":
                        o.failAtCount = positive(args, ++i);
                        break;
                    case "--fail-on-start":
                        o.failOnStart = true;
                        break;
                    default:
                        throw new IllegalArgumentException(
                                "counter: unknown argument '" + args[i] + "'; " + USAGE);
                }
            }
            return o;
        }

        static final String USAGE =
                "usage: [--rate N] [--keys K] [--output DIR] [--checkpoint-interval MS]"
                        + " [--fail-at-count N] [--fail-on-start]";

        private static String value(String[] args, int i) {
            if (i >= args.length) {
                throw new IllegalArgumentException(
                        "counter: " + args[i - 1] + " needs a value; " + USAGE);
            }
            return args[i];
        }

        private static long positive(String[] args, int i) {
            String v = value(args, i);
            long n;
            try {
                n = Long.parseLong(v);
            } catch (NumberFormatException e) {
                n = 0;
            }
            if (n <= 0) {
                throw new IllegalArgumentException(
                        "counter: " + args[i - 1] + " needs a positive whole number, got '" + v + "'");
            }
            return n;
        }
    }
}
