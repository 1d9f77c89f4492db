#!/usr/bin/env bash
# Checks .github/workflows/*.yml as a supply-chain reviewer would:
# - every `uses:` pins a commit (40 hex digits) and names its tag in a comment
#   (`uses: actions/checkout@<sha> # v7.0.1`), so a moved or hijacked tag changes nothing;
# - every actions/checkout sets `persist-credentials: false`, so no later step (nor anything a build
#   runs) finds the token in .git/config;
# - the workflow grants nothing by default (`permissions: {}`) and every job says what it needs.
# To move an action to a new tag: look up the tag's commit (`git ls-remote https://github.com/<action>
# refs/tags/<tag>^{}`, or the tag's page) and replace both the SHA and the comment.
#
# Usage: scripts/check-workflows.sh     Needs: python3 with PyYAML (pip install pyyaml).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 - .github/workflows/*.yml <<'PY'
import re
import sys

try:
    import yaml
except ImportError:
    sys.exit("check-workflows.sh: python3 has no PyYAML: pip install pyyaml (or apt-get install python3-yaml)")

PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s*([^\s@#]+)@([0-9a-f]{40})\s+#\s*v\d+(?:\.\d+)*\s*$")
failures = []

for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as file:
        text = file.read()
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(r"^\s*(?:-\s+)?uses:", line) and not PINNED.match(line):
            failures.append(
                f"{path}:{number}: '{line.strip()}' is not pinned: write uses: <action>@<40-hex commit> # <tag>"
            )
    workflow = yaml.safe_load(text)
    if workflow.get("permissions") != {}:
        failures.append(f"{path}: top-level permissions are {workflow.get('permissions')!r}: write permissions: {{}} and give each job its own")
    for name, job in workflow.get("jobs", {}).items():
        if "permissions" not in job:
            failures.append(f"{path}: job {name} has no permissions: list the least it needs (e.g. contents: read)")
        for step in job.get("steps", []):
            uses = step.get("uses", "")
            if uses.startswith("actions/checkout@") and (step.get("with") or {}).get("persist-credentials") is not False:
                failures.append(f"{path}: job {name}: actions/checkout without persist-credentials: false")

for failure in failures:
    print(f"check-workflows.sh: {failure}", file=sys.stderr)
if failures:
    sys.exit(1)
print(f"check-workflows.sh: {len(sys.argv) - 1} workflows: actions pinned by commit, checkout without credentials, permissions per job")
PY
