#!/usr/bin/env python3
"""Validate ECS task definitions offline against the ECS API's own request schema.

Each file is checked as the input of RegisterTaskDefinition, using the service model that the `botocore` package
ships (botocore/data/ecs/*/service-2.json) and botocore's own ParamValidator: unknown keys, wrong types, missing
required members and out-of-range values are what `aws ecs register-task-definition --cli-input-json` would refuse
before any request. A few checks the schema cannot express follow (volumes named by mount points exist, secrets
come from Secrets Manager or SSM ARNs, ports are in range).

Usage: validate_ecs.py [FILE.json ...]      (default: deploy/ecs/*.json of this repository)
Exit status: 0 valid, 1 invalid, 2 botocore missing or a file unreadable.
"""
import glob
import json
import os
import re
import sys

try:
    import botocore
    import botocore.session
    from botocore.validate import ParamValidator
except ImportError:  # pragma: no cover - reported to the caller
    print("validate_ecs: the Python package botocore is not installed (pip install botocore)", file=sys.stderr)
    sys.exit(2)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ARN = re.compile(r"^arn:aws[a-z-]*:(secretsmanager|ssm):[a-z0-9-]+:\d{12}:(secret:|parameter/).+")


def semantic_errors(td):
    """What RegisterTaskDefinition's schema does not say but ECS (or the agent) would reject or mis-run."""
    errors = []
    volumes = {v.get("name") for v in td.get("volumes", [])}
    names = set()
    for c in td.get("containerDefinitions", []):
        name = c.get("name", "?")
        if name in names:
            errors.append(f"container {name}: duplicate container name")
        names.add(name)
        for m in c.get("mountPoints", []):
            if m.get("sourceVolume") not in volumes:
                errors.append(f"container {name}: mount point uses undeclared volume {m.get('sourceVolume')!r}")
        for s in c.get("secrets", []):
            if not ARN.match(s.get("valueFrom", "")):
                errors.append(f"container {name}: secret {s.get('name')} valueFrom is not a Secrets Manager or SSM ARN")
        for p in c.get("portMappings", []):
            for key in ("containerPort", "hostPort"):
                if key in p and not 0 <= p[key] <= 65535:
                    errors.append(f"container {name}: {key} {p[key]} out of range")
        env = [e.get("name") for e in c.get("environment", [])]
        dupes = {n for n in env if env.count(n) > 1}
        if dupes:
            errors.append(f"container {name}: environment variables set twice: {sorted(dupes)}")
        if "memory" in c and "memoryReservation" in c and c["memoryReservation"] > c["memory"]:
            errors.append(f"container {name}: memoryReservation above memory")
    if td.get("networkMode") == "awsvpc" and any(
        p.get("hostPort", p.get("containerPort")) != p.get("containerPort")
        for c in td.get("containerDefinitions", []) for p in c.get("portMappings", [])
    ):
        errors.append("awsvpc network mode requires hostPort == containerPort")
    return errors


def main(argv):
    files = argv[1:] or sorted(glob.glob(os.path.join(ROOT, "deploy", "ecs", "*.json")))
    if not files:
        print("validate_ecs: no task definition files found", file=sys.stderr)
        return 2
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    validator = ParamValidator()
    failed = False
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                td = json.load(f)
        except (OSError, ValueError) as e:
            print(f"{path}: cannot read: {e}", file=sys.stderr)
            return 2
        report = validator.validate(td, shape)
        errors = []
        if report.has_errors():
            errors.append(report.generate_report())
        errors += semantic_errors(td)
        if errors:
            failed = True
            print(f"{path}: INVALID as RegisterTaskDefinition input (botocore {botocore.__version__}, "
                  f"ECS API {model.api_version})")
            for e in errors:
                print("  " + e.replace("\n", "\n  "))
        else:
            print(f"{path}: ok (botocore {botocore.__version__}, ECS API {model.api_version})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
