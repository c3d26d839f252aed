# Thin wrappers; each target installs the locked dependencies first.
.PHONY: install run test check

install:
	@scripts/bootstrap

run: install
	.venv/bin/python -m stack

test: install
	.venv/bin/pytest

check: install
	scripts/check
