# The two commands a newcomer needs: `make demo` and `make test`. Everything else is detail.
VENV ?= .venv

.PHONY: demo test install bench clean

install:
	@bash scripts/install

demo: install
	$(VENV)/bin/fraudstream demo

test: install
	@bash scripts/test

bench: install
	@bash scripts/bench

clean:
	rm -rf var build *.egg-info .pytest_cache .hypothesis
