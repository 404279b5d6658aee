#!/usr/bin/env bash
# Runs kelpie's whole test suite: unit tests, property tests, and end-to-end tests of the real binary against the
# in-process Datadog API stand-in and the local Docker engine. Installs the Python packages the tests use
# (the `datadog` DogStatsD client, `botocore` for ECS task-definition validation) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

py=${PYTHON:-python3}
if command -v "$py" >/dev/null 2>&1; then
  if ! "$py" -c 'import datadog, botocore, yaml' >/dev/null 2>&1; then
    echo "test.sh: installing Python test clients (datadog, botocore, PyYAML)"
    "$py" -m pip install --quiet --disable-pip-version-check datadog botocore pyyaml
  fi
fi

# tests/browser.rs drives Debian's chromium headless (skipped with a message when it is missing, unless
# KELPIE_REQUIRE_TOOLS=1): install it with `apt-get install chromium chromium-driver` (.ci/run does).
if ! command -v chromedriver >/dev/null 2>&1; then
  echo "test.sh: chromium-driver is not installed; the browser test will skip (apt-get install chromium chromium-driver)"
fi

# The whole-host end-to-end tests run the agent, the intake stand-in and an example service as containers built
# FROM scratch on this machine (nothing is pulled). Build them once here (idempotent; the first time takes a
# static release build) so the tests do not each try.
if docker info >/dev/null 2>&1; then
  scripts/build-image.sh
  export KELPIE_E2E_NO_BUILD=1
fi

# Tests that need Docker skip with a message when no engine answers; CI sets KELPIE_REQUIRE_DOCKER=1 so that a
# present engine can never be skipped silently.
exec cargo test --workspace --all-targets --no-fail-fast "$@"
