#!/usr/bin/env python3
"""Structural checks of deploy/k8s/*.yaml (there is no cluster, nor kubeconform, here): every document has
apiVersion/kind/metadata.name; a DaemonSet's selector matches its pod labels, every volumeMount names a declared
volume, container ports are in range, and the kelpie agent has its documented mounts and hostPort 8125/UDP.

Usage: validate_k8s.py [FILE.yaml ...]   Exit status: 0 valid, 1 invalid, 2 PyYAML missing or a file unreadable.
"""
import glob
import os
import sys

try:
    import yaml
except ImportError:
    print("validate_k8s: the Python package PyYAML is not installed (pip install pyyaml)", file=sys.stderr)
    sys.exit(2)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AGENT_MOUNTS = {"/var/run/docker.sock", "/host/proc", "/host/sys/fs/cgroup", "/var/run/datadog"}


def check_daemonset(doc):
    errors = []
    spec = doc.get("spec") or {}
    selector = ((spec.get("selector") or {}).get("matchLabels")) or {}
    template = spec.get("template") or {}
    labels = ((template.get("metadata") or {}).get("labels")) or {}
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        errors.append("spec.selector.matchLabels does not match spec.template.metadata.labels")
    pod = template.get("spec") or {}
    volumes = {v.get("name") for v in pod.get("volumes") or []}
    containers = pod.get("containers") or []
    if not containers:
        errors.append("no containers")
    for c in containers:
        name = c.get("name", "?")
        if not c.get("image"):
            errors.append(f"container {name}: no image")
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                errors.append(f"container {name}: volumeMount {m.get('name')!r} names no volume")
        for p in c.get("ports") or []:
            for key in ("containerPort", "hostPort"):
                if key in p and not 1 <= int(p[key]) <= 65535:
                    errors.append(f"container {name}: {key} {p[key]} out of range")
            if p.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                errors.append(f"container {name}: protocol {p.get('protocol')!r}")
        if "kelpie" in (c.get("image") or ""):
            mounts = {m.get("mountPath") for m in c.get("volumeMounts") or []}
            missing = AGENT_MOUNTS - mounts
            if missing:
                errors.append(f"container {name}: missing documented mounts {sorted(missing)}")
            if not any(p.get("hostPort") == 8125 and p.get("protocol") == "UDP" for p in c.get("ports") or []):
                errors.append(f"container {name}: no hostPort 8125/UDP for DogStatsD")
    return errors


def main(argv):
    files = argv[1:] or sorted(glob.glob(os.path.join(ROOT, "deploy", "k8s", "*.yaml")))
    if not files:
        print("validate_k8s: no manifests found", file=sys.stderr)
        return 2
    failed = False
    for path in files:
        try:
            with open(path, encoding="utf-8") as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except (OSError, yaml.YAMLError) as e:
            print(f"{path}: cannot read: {e}", file=sys.stderr)
            return 2
        errors = []
        for i, doc in enumerate(docs):
            if not isinstance(doc, dict):
                errors.append(f"document {i}: not a mapping")
                continue
            for key in ("apiVersion", "kind"):
                if not doc.get(key):
                    errors.append(f"document {i}: no {key}")
            if not (doc.get("metadata") or {}).get("name"):
                errors.append(f"document {i}: no metadata.name")
            if doc.get("kind") == "DaemonSet":
                if doc.get("apiVersion") != "apps/v1":
                    errors.append(f"document {i}: DaemonSet must be apps/v1")
                errors += [f"document {i} (DaemonSet): {e}" for e in check_daemonset(doc)]
        if errors:
            failed = True
            print(f"{path}: INVALID")
            for e in errors:
                print("  " + e)
        else:
            print(f"{path}: ok ({len(docs)} documents)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
