// Validates Kubernetes objects against the API's schemas (npm kubernetes-models).
// Usage: node validate_k8s.js MODELS_DIR < objects.json   (a JSON array of objects)
// Prints one line per object; exits 1 when one is invalid or of a kind it does not know.
'use strict';
const path = require('path');
const fs = require('fs');

const modelsDir = process.argv[2];
const objects = JSON.parse(fs.readFileSync(0, 'utf8'));
let failures = 0;
for (const object of objects) {
  const where = `${object.apiVersion} ${object.kind} ${object.metadata && object.metadata.name}`;
  // "v1" -> v1/Kind; "apps/v1" -> apps/v1/Kind; "rbac.authorization.k8s.io/v1" -> the same path.
  const modulePath = path.join(modelsDir, 'kubernetes-models', object.apiVersion, object.kind);
  let Model;
  try {
    Model = require(modulePath)[object.kind];
  } catch (e) {
    console.log(`FAIL ${where}: no schema (${e.message.split('\n')[0]})`);
    failures++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`ok   ${where}`);
  } catch (e) {
    console.log(`FAIL ${where}: ${e.message}`);
    failures++;
  }
}
console.log(`${objects.length} objects, ${failures} invalid`);
process.exit(failures > 0 || objects.length === 0 ? 1 : 0);
