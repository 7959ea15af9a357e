#!/usr/bin/python3
"""Validate JSON documents against component schemas of an OpenAPI file.

Used by spec/devserver_openapi_spec.lua to check what the bundled devserver
sends against ../shared/openapi/openapi.yaml with a tool independent of aigc
and of the devserver (Python's jsonschema).

stdin: one JSON object per line, {"label": ..., "schema": "ComponentName",
"instance": ...}. stdout: one line per document, "ok LABEL" or
"fail LABEL: message at path". Exit status 0 when all pass, 1 otherwise,
2 when the tools are missing (python3-yaml, python3-jsonschema).

Usage: /usr/bin/python3 spec/support/oas_check.py OPENAPI.yaml < docs.jsonl
(Debian's interpreter, which python3-yaml and python3-jsonschema serve; a
pyenv or venv python3 first on PATH usually lacks them. The spec uses
$AIGC_PYTHON, else /usr/bin/python3.)
"""
import json
import sys

try:
    import yaml
    import jsonschema
except ImportError as e:  # pragma: no cover
    print("missing: %s" % e)
    sys.exit(2)


def load(path):
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path) as f:
        return yaml.load(f, Loader=loader)


def main():
    spec = load(sys.argv[1])
    components = spec["components"]
    cls = getattr(jsonschema, "Draft202012Validator", None) or jsonschema.Draft7Validator
    validators = {}
    failed = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        doc = json.loads(line)
        name, label = doc["schema"], doc["label"]
        if name not in components["schemas"]:
            print("fail %s: no schema %s" % (label, name))
            failed += 1
            continue
        v = validators.get(name)
        if v is None:
            v = cls({"$ref": "#/components/schemas/" + name, "components": components})
            validators[name] = v
        errors = sorted(v.iter_errors(doc["instance"]), key=lambda e: list(e.absolute_path))
        if errors:
            failed += 1
            e = errors[0]
            # anyOf failures hide the useful message in their context
            best = jsonschema.exceptions.best_match(errors)
            print("fail %s: %s at %s" % (label, best.message[:300], "/".join(str(p) for p in best.absolute_path)))
        else:
            print("ok %s" % label)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
