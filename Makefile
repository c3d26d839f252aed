# Thin wrappers; each target installs the locked dependencies first.
.PHONY: install run test check bench

install:
	@scripts/bootstrap

run: install
	.venv/bin/python -m stack

test: install
	.venv/bin/pytest

check: install
	scripts/check

# wrk, the load generator, comes from Debian's packages.
bench: install
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null)
	.venv/bin/python -m bench
