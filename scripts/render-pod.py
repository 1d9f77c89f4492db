#!/usr/bin/env python3
"""Renders the pod template of contrib/kubernetes/statefulset.yaml as a Pod that `podman kube play`
(podman 4.3) can run, after checking the hardening that file promises. scripts/check-image.sh plays
the result; the rendering changes only what podman cannot take as it is:

- the pod is named like the StatefulSet's first pod (<name>-0);
- images are replaced: --image cosmovisor=<image> for ours, --image panacead=<image> for the chain's
  (matched by the last path segment of the image name, before the tag);
- the volume claim template `home` becomes a hostPath volume (--home DIR);
- `status.podIP` (which podman 4.3 cannot fill) becomes 127.0.0.1, the only address of a pod played
  with --network none, and `$(VAR)` references in env values are expanded (podman does not);
- the liveness probe is dropped: podman runs an httpGet probe as `curl` inside the container (there is
  none in a FROM-scratch image) from systemd timers; check-image.sh reads the probe's URL from the host;
- the init containers are of podman's type `always` (run at each start of the pod, as the kubelet runs
  them at each start of a pod's sandbox), not `once`: podman 4.3 removes a `once` init container
  while its own cleanup process still works on it, which logs errors and sometimes fails the play
  ("cannot remove container ... as it is running");
- the restart policy is OnFailure, not a StatefulSet's Always: podman 4.3 applies the pod's policy to
  init containers too, and runs an init container that exited 0 again and again under Always;
- container ports are dropped: podman publishes each on the host, which a pod without a network
  (--network none) refuses.

The checks (each failure printed, exit 1): the pod runs as non-root with the RuntimeDefault seccomp
profile and no service-account token; every container forbids privilege escalation, drops ALL
capabilities, adds none, is not privileged and has a read-only root filesystem; the grace period
exceeds DAEMON_SHUTDOWN_GRACE; COSMOVISOR_METRICS_ADDR is on the pod's IP, never a wildcard address,
on the port the liveness probe reads.

Usage: render-pod.py MANIFEST --image NAME=IMAGE... --home DIR > pod.yaml    Needs: PyYAML.
"""

import argparse
import copy
import re
import sys

import yaml

POD_IP = "127.0.0.1"


def duration_seconds(text):
    """Seconds of a Go duration made of h/m/s parts, e.g. 60s or 1m30s."""
    parts = re.findall(r"(\d+)(h|m|s)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"unsupported duration {text!r}")
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def check(sts):
    """The hardening the manifest promises; returns the problems found."""
    problems = []
    spec = sts["spec"]["template"]["spec"]
    pod_sc = spec.get("securityContext", {})
    if pod_sc.get("runAsNonRoot") is not True:
        problems.append("the pod's securityContext has no runAsNonRoot: true")
    if pod_sc.get("runAsUser", 0) == 0:
        problems.append("the pod's securityContext runs as user 0")
    if pod_sc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.append("the pod's securityContext has no seccompProfile RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        problems.append("the pod mounts a service-account token: automountServiceAccountToken: false")
    containers = spec.get("initContainers", []) + spec["containers"]
    for container in containers:
        name = container["name"]
        sc = container.get("securityContext", {})
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"container {name}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"container {name}: readOnlyRootFilesystem is not true")
        if sc.get("privileged"):
            problems.append(f"container {name} is privileged")
        caps = sc.get("capabilities", {})
        if caps.get("drop") != ["ALL"] or caps.get("add"):
            problems.append(f"container {name}: capabilities must drop [ALL] and add none")
        env = {e["name"]: e for e in container.get("env", [])}
        grace = env.get("DAEMON_SHUTDOWN_GRACE", {}).get("value")
        if grace and spec.get("terminationGracePeriodSeconds", 30) <= duration_seconds(grace):
            problems.append(f"container {name}: terminationGracePeriodSeconds does not exceed DAEMON_SHUTDOWN_GRACE={grace}")
        addr = env.get("COSMOVISOR_METRICS_ADDR", {}).get("value")
        if addr is None:
            continue
        host, _, port = addr.rpartition(":")
        if host.strip("[]") in ("0.0.0.0", "::", ""):
            problems.append(f"container {name}: metrics on the wildcard address {addr}")
        if host.strip("[]") != "$(POD_IP)" or env.get("POD_IP", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") != "status.podIP":
            problems.append(f"container {name}: COSMOVISOR_METRICS_ADDR={addr} is not $(POD_IP):<port> with POD_IP from status.podIP")
        probe = container.get("livenessProbe", {}).get("httpGet")
        if probe is not None:
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            probe_port = ports.get(probe["port"], probe["port"])
            if str(probe_port) != port:
                problems.append(f"container {name}: the liveness probe reads port {probe_port}, the metrics are on {port}")
    return problems


def expand(value, env):
    """Kubernetes' $(VAR) expansion of an env value from the variables defined before it."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), value)


def render(sts, images, home):
    template = sts["spec"]["template"]
    spec = copy.deepcopy(template["spec"])
    spec["restartPolicy"] = "OnFailure"
    for container in spec.get("initContainers", []) + spec["containers"]:
        name = container["image"].rsplit("/", 1)[-1].split(":", 1)[0]
        if name not in images:
            sys.exit(f"render-pod.py: no --image {name}=... for {container['image']}")
        container["image"] = images[name]
        container.pop("livenessProbe", None)
        container.pop("ports", None)
        values = {}
        for entry in container.get("env", []):
            if entry.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP":
                entry.pop("valueFrom")
                entry["value"] = POD_IP
            elif "value" in entry:
                entry["value"] = expand(entry["value"], values)
            values[entry["name"]] = entry.get("value", "")
    claims = [c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])]
    if claims != ["home"]:
        sys.exit(f"render-pod.py: expected one volume claim template named home, found {claims}")
    spec.setdefault("volumes", []).append({"name": "home", "hostPath": {"path": home, "type": "Directory"}})
    metadata = {
        "name": f"{sts['metadata']['name']}-0",
        "labels": template["metadata"].get("labels", {}),
        "annotations": {"io.podman.annotations.init.container.type": "always"},
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


class NoAliases(yaml.SafeDumper):
    """Writes shared values (the manifest's &env) out in full: every container gets its own copy."""

    def ignore_aliases(self, data):
        return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifest")
    parser.add_argument("--image", action="append", default=[], help="NAME=IMAGE")
    parser.add_argument("--home", required=True)
    args = parser.parse_args()
    images = dict(pair.split("=", 1) for pair in args.image)
    with open(args.manifest, encoding="utf-8") as file:
        docs = [d for d in yaml.safe_load_all(file) if d]
    sets = [d for d in docs if d.get("kind") == "StatefulSet"]
    if len(sets) != 1:
        sys.exit(f"render-pod.py: {args.manifest} has {len(sets)} StatefulSets, expected 1")
    problems = check(sets[0])
    for problem in problems:
        print(f"render-pod.py: {args.manifest}: {problem}", file=sys.stderr)
    if problems:
        sys.exit(1)
    yaml.dump(render(sets[0], images, args.home), sys.stdout, Dumper=NoAliases, sort_keys=False)


if __name__ == "__main__":
    main()
