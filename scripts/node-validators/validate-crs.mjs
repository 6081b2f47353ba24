// Validates the custom resources in YAML files with the typed models of
// @kubernetes-models (generated from each project's CRD schemas):
// KEDA ScaledObject, Karpenter NodePool, and the Prometheus Operator's
// ServiceMonitor, PodMonitor and PrometheusRule. Core kinds are left to
// kubernetes-validate and reported as "core". YAML is read as 1.1, as
// Kubernetes reads it, so a bare `yes` is a boolean here too.
//
// Usage: validate-crs FILE...   (exit 1 on the first invalid or unknown object)
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { NodePool } from "@kubernetes-models/karpenter/karpenter.sh/v1/NodePool";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

const models = {
  "keda.sh/v1alpha1 ScaledObject": ScaledObject,
  "karpenter.sh/v1 NodePool": NodePool,
  "monitoring.coreos.com/v1 ServiceMonitor": ServiceMonitor,
  "monitoring.coreos.com/v1 PodMonitor": PodMonitor,
  "monitoring.coreos.com/v1 PrometheusRule": PrometheusRule,
};
const core = /^(v1|apps\/v1|policy\/v1|batch\/v1|kustomize\.config\.k8s\.io\/v1beta1)$/;

let failed = false;
for (const file of process.argv.slice(2)) {
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"), { version: "1.1" })) {
    if (doc.errors.length) {
      console.log(`invalid ${file}: ${doc.errors[0].message}`);
      failed = true;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue;
    const what = `${obj.kind}/${obj.metadata?.name}`;
    const Model = models[`${obj.apiVersion} ${obj.kind}`];
    if (!Model) {
      if (core.test(obj.apiVersion)) {
        console.log(`core ${file} ${what}`);
        continue;
      }
      console.log(`unknown ${file} ${obj.apiVersion} ${what}: no model to validate it`);
      failed = true;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`ok ${file} ${what}`);
    } catch (e) {
      console.log(`invalid ${file} ${what}: ${e.message}`);
      failed = true;
    }
  }
}
process.exit(failed ? 1 : 0);
