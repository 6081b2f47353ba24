//! The rendered objects, as JSON values (serialised to YAML by the caller).

use serde_json::{json, Value};
use spotenc_proto::domain::Capacity;

use super::{capacity_name, RedisChoice, RenderOptions};
use spotenc_core::cost::catalogue::{Catalogue, Hardware, Pool};

const SECRET: &str = "spotenc-secrets";
const COORDINATOR: &str = "spotenc-coordinator";
const GRPC_PORT: u16 = 50051;
const METRICS_PORT: u16 = 9464;
const WORKER_METRICS_PORT: u16 = 9465;
/// The image's fixed non-root user (docker/Dockerfile).
const UID: u32 = 10001;
/// The capacity rules, shipped as a file for plain Prometheus and here as a
/// PrometheusRule for the operator.
/// Compute-optimised and general-purpose siblings of c6i for the CPU spot
/// NodePool (facts/deployment.md §3: diversify c6i with c6a/c5/m6i).
const CPU_SIBLINGS: &[&str] = &[
    "c5", "c5a", "c6a", "c6i", "c7a", "c7i", "m5", "m6a", "m6i", "m7i",
];
const RULES: &str = include_str!("../prometheus/spotenc-rules.yml");

fn image(o: &RenderOptions, name: &str) -> String {
    format!("{}/{name}:{}", o.image_repository, o.image_tag)
}

fn meta(name: &str, labels: Value) -> Value {
    json!({"name": name, "labels": labels})
}

fn secret_env(name: &str, key: &str) -> Value {
    json!({"name": name, "valueFrom": {"secretKeyRef": {"name": SECRET, "key": key}}})
}

fn security_context() -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": UID,
        "runAsGroup": UID,
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "capabilities": {"drop": ["ALL"]},
    })
}

pub fn namespace(o: &RenderOptions) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": o.namespace}})
}

fn redis_url(o: &RenderOptions) -> String {
    match &o.redis {
        RedisChoice::External(url) => url.clone(),
        RedisChoice::StatefulSet => format!("redis://spotenc-redis.{}.svc:6379/0", o.namespace),
    }
}

/// The coordinator: its config and catalogue, a Deployment and a Service.
pub fn coordinator(o: &RenderOptions, pools_toml: &str) -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/name": COORDINATOR});
    let config = format!(
        "# Rendered by `spotenc deploy render`. Secrets come from the {SECRET} Secret.\n\
         listen = \"0.0.0.0:{GRPC_PORT}\"\n\
         metrics_listen = \"0.0.0.0:{METRICS_PORT}\"\n\
         data_dir = \"/var/lib/spotenc/data\"\n\
         pools_file = \"/etc/spotenc/pools.toml\"\n\
         builtin_pools = false\n\n\
         [redis]\nurl = \"{}\"\nprefix = \"spotenc\"\n\n\
         [[tokens]]\nname = \"clients\"\nrole = \"client\"\ntoken_env = \"SPOTENC_CLIENT_TOKEN\"\n\n\
         [[tokens]]\nname = \"workers\"\nrole = \"worker\"\ntoken_env = \"SPOTENC_WORKER_TOKEN\"\n\n\
         [[tokens]]\nname = \"admin\"\nrole = \"admin\"\ntoken_env = \"SPOTENC_ADMIN_TOKEN\"\n",
        redis_url(o)
    );
    let probe = |initial: u32| json!({"grpc": {"port": GRPC_PORT}, "initialDelaySeconds": initial, "periodSeconds": 10});
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta(COORDINATOR, labels.clone()),
            "data": {"coordinator.toml": config, "pools.toml": pools_toml},
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(COORDINATOR, labels.clone()),
            "spec": {
                "replicas": o.coordinator_replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "securityContext": {"fsGroup": UID},
                        "containers": [{
                            "name": "coordinator",
                            "image": image(o, "coordinator"),
                            "args": ["--config", "/etc/spotenc/coordinator.toml"],
                            "ports": [
                                {"name": "grpc", "containerPort": GRPC_PORT},
                                {"name": "metrics", "containerPort": METRICS_PORT},
                            ],
                            "env": [
                                secret_env("SPOTENC_CLIENT_TOKEN", "client-token"),
                                secret_env("SPOTENC_WORKER_TOKEN", "worker-token"),
                                secret_env("SPOTENC_ADMIN_TOKEN", "admin-token"),
                            ],
                            "readinessProbe": probe(2),
                            "livenessProbe": probe(10),
                            "resources": {
                                "requests": {"cpu": "500m", "memory": "512Mi"},
                                "limits": {"memory": "2Gi"},
                            },
                            "securityContext": security_context(),
                            "volumeMounts": [
                                {"name": "config", "mountPath": "/etc/spotenc", "readOnly": true},
                                {"name": "data", "mountPath": "/var/lib/spotenc/data"},
                            ],
                        }],
                        "volumes": [
                            {"name": "config", "configMap": {"name": COORDINATOR}},
                            {"name": "data", "emptyDir": {}},
                        ],
                    },
                },
            },
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(COORDINATOR, labels.clone()),
            "spec": {
                "selector": labels,
                "ports": [
                    {"name": "grpc", "port": GRPC_PORT, "targetPort": "grpc", "appProtocol": "grpc"},
                    {"name": "metrics", "port": METRICS_PORT, "targetPort": "metrics"},
                ],
            },
        }),
    ]
}

/// Prometheus Operator objects: scrape the coordinators and the workers,
/// and load the capacity rules.
pub fn monitoring() -> Result<Vec<Value>, String> {
    let rules: Value = serde_yaml::from_str(RULES)
        .map_err(|e| format!("deploy/prometheus/spotenc-rules.yml: {e}"))?;
    Ok(vec![
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": meta(COORDINATOR, json!({"app.kubernetes.io/name": COORDINATOR})),
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": COORDINATOR}},
                "endpoints": [{"port": "metrics", "interval": "15s"}],
            },
        }),
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": meta("spotenc-workers", json!({"app.kubernetes.io/name": "spotenc-worker"})),
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/name": "spotenc-worker"}},
                "podMetricsEndpoints": [{"port": "metrics", "interval": "15s"}],
            },
        }),
        json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": meta("spotenc-capacity", json!({"app.kubernetes.io/name": COORDINATOR})),
            "spec": {"groups": rules["groups"]},
        }),
    ])
}

/// A single Redis for trials: append-only and never evicting. The settings
/// live in a config file, not in arguments: a bare `yes` in YAML is a
/// boolean to Kubernetes' YAML 1.1 parser.
pub fn redis() -> Vec<Value> {
    let labels = json!({"app.kubernetes.io/name": "spotenc-redis"});
    vec![
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta("spotenc-redis", labels.clone()),
            "data": {"redis.conf": "appendonly yes\nmaxmemory-policy noeviction\ndir /data\n"},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta("spotenc-redis", labels.clone()),
            "spec": {"selector": labels, "ports": [{"name": "redis", "port": 6379, "targetPort": 6379}]},
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": meta("spotenc-redis", labels.clone()),
            "spec": {
                "serviceName": "spotenc-redis",
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "containers": [{
                            "name": "redis",
                            "image": "redis:7.2-bookworm",
                            "args": ["/etc/redis/redis.conf"],
                            "ports": [{"name": "redis", "containerPort": 6379}],
                            "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 10},
                            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
                            "volumeMounts": [
                                {"name": "data", "mountPath": "/data"},
                                {"name": "config", "mountPath": "/etc/redis", "readOnly": true},
                            ],
                        }],
                        "volumes": [{"name": "config", "configMap": {"name": "spotenc-redis"}}],
                    },
                },
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "10Gi"}},
                    },
                }],
            },
        }),
    ]
}

fn worker_binary(p: &Pool) -> &'static str {
    match p.hardware {
        Hardware::Cpu => "cpu-worker",
        Hardware::Nvenc | Hardware::Qsv => "gpu-worker",
    }
}

/// The extended resource a GPU pool requests, and its toleration.
fn gpu_resource(p: &Pool) -> Option<&'static str> {
    match p.hardware {
        Hardware::Cpu => None,
        Hardware::Nvenc => Some("nvidia.com/gpu"),
        Hardware::Qsv => Some("gpu.intel.com/i915"),
    }
}

/// One catalogue pool: its worker Deployment, KEDA ScaledObject and
/// PodDisruptionBudget. Long (about 140 lines) because it is three
/// Kubernetes objects written out as JSON, read top to bottom.
pub fn pool(o: &RenderOptions, p: &Pool, min_replicas: u32) -> Vec<Value> {
    let name = format!("spotenc-worker-{}", p.name);
    let labels = json!({"app.kubernetes.io/name": "spotenc-worker", "spotenc.io/pool": p.name});
    let binary = worker_binary(p);
    // Requests sized so one worker fills one instance, leaving room for the
    // kubelet and daemon sets.
    let cpu = format!("{}m", (p.vcpus * 1000).saturating_sub(600).max(500));
    let memory = format!("{}Mi", ((p.memory_gib * 1024.0 * 0.75) as u64).max(512));
    let mut requests = json!({"cpu": cpu, "memory": memory});
    let mut limits = json!({"memory": memory});
    let mut tolerations = Vec::new();
    if let (Some(resource), Some(n)) = (gpu_resource(p), p.gpus) {
        requests[resource] = json!(n);
        limits[resource] = json!(n);
        tolerations.push(json!({"key": resource, "operator": "Exists", "effect": "NoSchedule"}));
    }
    let mut node_selector = json!({
        "karpenter.sh/capacity-type": capacity_name(p.capacity),
        "node.kubernetes.io/instance-type": p.instance_type,
    });
    if let [zone] = p.zones.as_slice() {
        node_selector["topology.kubernetes.io/zone"] = json!(zone);
    }
    let mut pod_spec = json!({
        // Above the notice deadline: the worker hands its task back and
        // exits within the deadline; the kubelet waits this long.
        "terminationGracePeriodSeconds": o.notice_deadline_seconds + 15,
        "nodeSelector": node_selector,
        "tolerations": tolerations,
        "securityContext": {"fsGroup": UID},
        "containers": [{
            "name": "worker",
            "image": image(o, binary),
            "ports": [{"name": "metrics", "containerPort": WORKER_METRICS_PORT}],
            "env": [
                {"name": "SPOTENC_COORDINATOR", "value": format!("http://{COORDINATOR}.{}.svc:{GRPC_PORT}", o.namespace)},
                secret_env("SPOTENC_TOKEN", "worker-token"),
                {"name": "SPOTENC_POOL", "value": p.name},
                {"name": "SPOTENC_CAPACITY", "value": capacity_name(p.capacity)},
                {"name": "SPOTENC_INSTANCE_TYPE", "value": p.instance_type},
                {"name": "SPOTENC_NOTICE_DEADLINE_SECONDS", "value": o.notice_deadline_seconds.to_string()},
                {"name": "SPOTENC_METRICS_LISTEN", "value": format!("0.0.0.0:{WORKER_METRICS_PORT}")},
                {"name": "SPOTENC_WORKER_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "livenessProbe": {"exec": {"command": [binary, "--health"]}, "initialDelaySeconds": 20, "periodSeconds": 15, "timeoutSeconds": 5},
            "resources": {"requests": requests, "limits": limits},
            "securityContext": security_context(),
            "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
        }],
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    });
    if p.zones.len() > 1 {
        pod_spec["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": p.zones},
            ]}],
        }}});
        pod_spec["topologySpreadConstraints"] = json!([{
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": labels},
        }]);
    }
    // The catalogue's slots: CPU workers run that many tasks; GPU workers
    // that many NVENC sessions over the instance's GPUs.
    let slots = match p.gpus {
        Some(gpus) if p.hardware == Hardware::Nvenc => json!({
            "name": "SPOTENC_SESSIONS_PER_GPU",
            "value": p.slots.div_ceil(gpus).to_string(),
        }),
        _ => json!({"name": "SPOTENC_SLOTS", "value": p.slots.to_string()}),
    };
    pod_spec["containers"][0]["env"]
        .as_array_mut()
        .expect("env is a list")
        .push(slots);
    let query = format!("max(spotenc_pool_desired_workers{{pool=\"{}\"}})", p.name);
    vec![
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(&name, labels.clone()),
            "spec": {
                "replicas": min_replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {
                        "labels": labels,
                        // Karpenter does not consolidate or drift a node
                        // under an encoding worker (spot interruptions still
                        // come; the worker hands its task back).
                        "annotations": {"karpenter.sh/do-not-disrupt": "true"},
                    },
                    "spec": pod_spec,
                },
            },
        }),
        json!({
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": meta(&name, labels.clone()),
            "spec": {
                "scaleTargetRef": {"name": name},
                "minReplicaCount": min_replicas,
                "maxReplicaCount": p.max_workers,
                "pollingInterval": 30,
                "cooldownPeriod": 300,
                // A lost scrape errors (ignoreNullValues "false"), and after
                // three errors KEDA holds the pool at no fewer than its
                // current replicas rather than scaling it to zero.
                "fallback": {
                    "failureThreshold": 3,
                    "replicas": min_replicas.max(1),
                    "behavior": "currentReplicasIfHigher",
                },
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": {
                    // The planner never asks for fewer than the busy
                    // workers; shrink one pod a minute, after the pool's
                    // launch time stable (at most five minutes): held
                    // idle longer, a worker costs more than its relaunch.
                    "stabilizationWindowSeconds": p.launch_seconds.min(300),
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                }}}},
                "triggers": [{
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": o.prometheus_url,
                        "query": query,
                        "threshold": "1",
                        "ignoreNullValues": "false",
                    },
                }],
            },
        }),
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(&name, labels.clone()),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}},
        }),
    ]
}

/// Instance types of the catalogue's pools of one family, sorted.
fn types(c: &Catalogue, keep: impl Fn(&Pool) -> bool) -> Vec<String> {
    let mut t: Vec<String> = c
        .pools
        .values()
        .filter(|p| keep(p))
        .map(|p| p.instance_type.clone())
        .collect();
    t.sort();
    t.dedup();
    t
}

/// Example Karpenter NodePools, one per pool family that the catalogue has:
/// GPU spot, CPU spot (with sibling families, so spot-to-spot
/// consolidation has enough types to choose from), and on-demand.
pub fn node_pools(o: &RenderOptions, c: &Catalogue) -> Vec<Value> {
    let node_class =
        json!({"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": o.node_class});
    let gpu = |p: &Pool| p.hardware == Hardware::Nvenc;
    let spot = |p: &Pool| p.capacity == Capacity::Spot;
    let mut out = Vec::new();
    let gpu_spot = types(c, |p| gpu(p) && spot(p));
    if !gpu_spot.is_empty() {
        let gpus: u32 = c
            .pools
            .values()
            .filter(|p| gpu(p) && spot(p))
            .map(|p| p.max_workers * p.gpus.unwrap_or(1))
            .sum();
        out.push(json!({
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": "spotenc-gpu-spot"},
            "spec": {
                "template": {"spec": {
                    "nodeClassRef": node_class,
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": gpu_spot},
                    ],
                    "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}],
                    "expireAfter": "720h",
                }},
                "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "5m"},
                "limits": {"nvidia.com/gpu": gpus.to_string()},
            },
        }));
    }
    let cpu_spot: Vec<&Pool> = c
        .pools
        .values()
        .filter(|p| p.hardware == Hardware::Cpu && spot(p))
        .collect();
    if !cpu_spot.is_empty() {
        // The catalogue's families and sizes plus their siblings: spot-to-
        // spot consolidation needs at least 15 instance types to pick from.
        let mut families: Vec<String> = CPU_SIBLINGS.iter().map(|f| f.to_string()).collect();
        let mut cpus: Vec<u32> = vec![8, 16, 32];
        for p in &cpu_spot {
            families.push(
                p.instance_type
                    .split('.')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            );
            cpus.push(p.vcpus);
        }
        families.sort();
        families.dedup();
        cpus.sort_unstable();
        cpus.dedup();
        let cpus: Vec<String> = cpus.iter().map(u32::to_string).collect();
        out.push(json!({
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": "spotenc-cpu-spot"},
            "spec": {
                "template": {"spec": {
                    "nodeClassRef": node_class,
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot"]},
                        {"key": "karpenter.k8s.aws/instance-family", "operator": "In", "values": families},
                        {"key": "karpenter.k8s.aws/instance-cpu", "operator": "In", "values": cpus},
                    ],
                    "expireAfter": "720h",
                }},
                "disruption": {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "5m"},
            },
        }));
    }
    let on_demand = types(c, |p| p.capacity == Capacity::OnDemand);
    if !on_demand.is_empty() {
        out.push(json!({
            "apiVersion": "karpenter.sh/v1",
            "kind": "NodePool",
            "metadata": {"name": "spotenc-on-demand"},
            "spec": {
                "template": {"spec": {
                    "nodeClassRef": node_class,
                    "requirements": [
                        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": on_demand},
                    ],
                    "expireAfter": "720h",
                }},
                "disruption": {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m"},
            },
        }));
    }
    out
}
