// Validates every object that `kubectl kustomize deploy/k8s` renders against its Kubernetes (or Prometheus
// Operator) schema, with the kubernetes-models package. Reads the rendered YAML on stdin:
//   kubectl kustomize deploy/k8s | node deploy/validate/k8s.mjs
// Prints one line per object and exits 1 if any object is unknown or invalid.
import { parseAllDocuments } from "yaml";
import * as apps from "kubernetes-models/apps/v1";
import * as autoscaling from "kubernetes-models/autoscaling/v2";
import * as core from "kubernetes-models/v1";
import * as networking from "kubernetes-models/networking.k8s.io/v1";
import * as policy from "kubernetes-models/policy/v1";
import * as monitoring from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = {
  "v1": core,
  "apps/v1": apps,
  "autoscaling/v2": autoscaling,
  "networking.k8s.io/v1": networking,
  "policy/v1": policy,
  "monitoring.coreos.com/v1": monitoring,
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const documents = parseAllDocuments(input);
let failed = 0;
let count = 0;
for (const document of documents) {
  if (document.errors.length > 0) {
    console.log(`not YAML: ${document.errors[0].message}`);
    failed++;
    continue;
  }
  const object = document.toJS();
  if (object === null) continue;
  count++;
  const name = `${object.apiVersion} ${object.kind} ${object.metadata?.name}`;
  const Model = models[object.apiVersion]?.[object.kind];
  if (!Model) {
    console.log(`UNKNOWN ${name}: no schema for this apiVersion and kind`);
    failed++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`valid   ${name}`);
  } catch (error) {
    console.log(`INVALID ${name}: ${error.message}`);
    failed++;
  }
}
if (count === 0) {
  console.log("no objects on stdin");
  failed++;
}
console.log(`${count} objects, ${failed} problems`);
process.exit(failed === 0 ? 0 : 1);
