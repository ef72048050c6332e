// Prints the Kubernetes objects that Flink's own native deployer (KubernetesClusterDescriptor)
// would create for a configuration directory, without a Kubernetes cluster: the client that would
// talk to the API server is replaced by one that records what it is asked to create.
//
// usage: java -cp "$FLINK_HOME/lib/*:DIR" NativeSpec CONF_DIR application|session
// stdout: one JSON object: "objects" (the JobManager Deployment first, then the ConfigMaps and
// Services), "before"/"after" (the configuration as loaded, and after the deployer added its
// settings), and "jars"/"args" (pipeline.jars and the program arguments as Flink reads them).

import org.apache.flink.client.deployment.ClusterSpecification;
import org.apache.flink.client.deployment.application.ApplicationConfiguration;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.DeploymentOptionsInternal;
import org.apache.flink.configuration.GlobalConfiguration;
import org.apache.flink.configuration.PipelineOptions;
import org.apache.flink.kubernetes.KubernetesClusterClientFactory;
import org.apache.flink.kubernetes.KubernetesClusterDescriptor;
import org.apache.flink.kubernetes.kubeclient.FlinkKubeClient;
import org.apache.flink.kubernetes.kubeclient.FlinkKubeClientFactory;
import org.apache.flink.kubernetes.kubeclient.KubernetesJobManagerSpecification;
import org.apache.flink.kubernetes.kubeclient.resources.KubernetesPod;
import org.apache.flink.kubernetes.shaded.io.fabric8.kubernetes.api.model.Pod;
import org.apache.flink.kubernetes.shaded.io.fabric8.kubernetes.client.utils.Serialization;

import java.io.File;
import java.io.FileInputStream;
import java.io.InputStream;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

public class NativeSpec {
    private static KubernetesJobManagerSpecification captured;

    public static void main(String[] args) throws Exception {
        Configuration conf = GlobalConfiguration.loadConfiguration(args[0]);
        Map<String, String> before = new TreeMap<>(conf.toMap());
        // as the `flink` CLI does: the log configuration files are shipped from this directory
        conf.set(DeploymentOptionsInternal.CONF_DIR, args[0]);
        ClusterSpecification spec = new KubernetesClusterClientFactory().getClusterSpecification(conf);
        FlinkKubeClient client =
                (FlinkKubeClient)
                        Proxy.newProxyInstance(
                                NativeSpec.class.getClassLoader(),
                                new Class<?>[] {FlinkKubeClient.class},
                                (proxy, method, margs) -> {
                                    switch (method.getName()) {
                                        case "createJobManagerComponent":
                                            captured = (KubernetesJobManagerSpecification) margs[0];
                                            return null;
                                        case "loadPodFromTemplateFile":
                                            try (InputStream in =
                                                    new FileInputStream((File) margs[0])) {
                                                return new KubernetesPod(
                                                        Serialization.unmarshal(in, Pod.class));
                                            }
                                        case "getRestEndpoint":
                                        case "getService":
                                            return Optional.empty();
                                        case "close":
                                            return null;
                                        default:
                                            throw new UnsupportedOperationException(method.getName());
                                    }
                                });
        FlinkKubeClientFactory factory =
                new FlinkKubeClientFactory() {
                    @Override
                    public FlinkKubeClient fromConfiguration(Configuration c, String useCase) {
                        return client;
                    }
                };
        KubernetesClusterDescriptor descriptor =
                new KubernetesClusterDescriptor(conf, factory, c -> {});
        try {
            if (args[1].equals("application")) {
                descriptor.deployApplicationCluster(
                        spec, ApplicationConfiguration.fromConfiguration(conf));
            } else {
                descriptor.deploySessionCluster(spec);
            }
        } catch (Exception e) {
            // expected: the recording client has no REST endpoint to hand back
            if (captured == null) {
                throw e;
            }
        }
        List<Object> objects = new ArrayList<>();
        objects.add(captured.getDeployment());
        objects.addAll(captured.getAccompanyingResources());
        Map<String, String> after = new TreeMap<>(conf.toMap());
        // the `flink` CLI's own setting, never shipped to the cluster
        before.remove(DeploymentOptionsInternal.CONF_DIR.key());
        after.remove(DeploymentOptionsInternal.CONF_DIR.key());
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("objects", objects);
        out.put("before", before);
        out.put("after", after);
        out.put("jars", conf.getOptional(PipelineOptions.JARS).orElse(new ArrayList<>()));
        out.put(
                "args",
                conf.getOptional(ApplicationConfiguration.APPLICATION_ARGS)
                        .orElse(new ArrayList<>()));
        System.out.println(Serialization.asJson(out));
    }
}
