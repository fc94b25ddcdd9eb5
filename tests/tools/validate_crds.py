#!/usr/bin/env python3
"""Validates custom objects against the openAPIV3Schema of their CustomResourceDefinitions.

    validate_crds.py CRD_DIR MANIFEST.yaml...

Every object of the manifests whose kind (group + kind + version) a CRD of CRD_DIR defines is
validated against that version's schema, the way the API server's strict field validation judges it:
types, enums, required fields, patterns and bounds, and a field the schema does not name is an error
(the server would prune it silently; with strict validation it refuses it). `nullable`,
`x-kubernetes-int-or-string` and `x-kubernetes-preserve-unknown-fields` are honoured; CEL rules
(`x-kubernetes-validations`) are not evaluated. An object of a custom group with no CRD here is an
error too (its schema would be unchecked). Built-in kinds are left to kubernetes-validate.

Prints one line per object checked; exits 1 listing every problem, 0 when there is none.
"""
import glob
import os
import sys

import jsonschema
import yaml

BUILT_IN_GROUPS = {"", "apps", "batch", "policy", "rbac.authorization.k8s.io", "networking.k8s.io",
                   "autoscaling", "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io"}


def strict(schema):
    """The JSON Schema the API server applies for an openAPIV3Schema node."""
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    for key in ("properties", "patternProperties"):
        if key in out:
            out[key] = {name: strict(sub) for name, sub in out[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in out:
            out[key] = [strict(sub) for sub in out[key]]
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    embedded = schema.get("x-kubernetes-embedded-resource")
    if "properties" in out and "additionalProperties" not in out and not preserve and not embedded:
        out["additionalProperties"] = False
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def load_crds(directory):
    schemas = {}
    for path in sorted(glob.glob(os.path.join(directory, "*.yaml"))):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
                for version in doc["spec"]["versions"]:
                    schema = version.get("schema", {}).get("openAPIV3Schema")
                    if schema is not None:
                        schemas[(f"{group}/{version['name']}", kind)] = (strict(schema), os.path.basename(path))
    return schemas


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    schemas = load_crds(argv[1])
    groups = {api.split("/")[0] for api, _ in schemas}
    problems, checked = [], 0
    for manifest in argv[2:]:
        with open(manifest) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        for doc in docs:
            api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
            group = api.split("/")[0] if "/" in api else ""
            name = f"{manifest}: {kind} {doc.get('metadata', {}).get('namespace', '')}/{doc.get('metadata', {}).get('name', '')}"
            if (api, kind) not in schemas:
                if group not in BUILT_IN_GROUPS:
                    why = "no CRD of this version" if group in groups else "no CRD of this group"
                    problems.append(f"{name}: {api} {kind}: {why} in {argv[1]}")
                continue
            schema, crd = schemas[(api, kind)]
            errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
            for e in errors:
                where = ".".join(str(p) for p in e.path) or "(object)"
                problems.append(f"{name}: {where}: {e.message}")
            checked += 1
            print(f"{'FAIL' if errors else 'ok'}  {name} against {crd}")
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{checked} custom objects checked, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
