# CityGrid Command — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
CITYGRID := .venv/bin/citygrid
PORT ?= $(or $(CITYGRID_HTTP_PORT),8000)

.PHONY: setup demo test bench stop clean

setup:                          ## install Debian packages, the virtualenv and vendored JS (idempotent)
	@scripts/setup.sh

demo: export CITYGRID_DEMO = 1
demo: setup                     ## run the whole system on a seeded demo city
	@$(CITYGRID) services up
	@$(CITYGRID) db migrate
	@$(CITYGRID) demo seed
	@scripts/serve-bg.sh
	@echo ""
	@echo "CityGrid Command is running (demo city 攸县):"
	@echo "  map          http://127.0.0.1:$(PORT)/map      (admin / citygrid-demo)"
	@echo "  API docs     http://127.0.0.1:$(PORT)/docs"
	@echo "  health       http://127.0.0.1:$(PORT)/api/health"
	@echo "  stop it all  make stop"

test: setup                     ## run the whole suite against real PostGIS, Mosquitto and Chromium
	@.venv/bin/pytest -q

bench: setup                    ## measure the figures each issue names, beside same-run baselines
	@for b in bench/bench_*.py; do echo "== $$b"; .venv/bin/python $$b || exit 1; done

stop:                           ## stop the demo server and local services
	@if [ -f .run/serve.pid ]; then kill $$(cat .run/serve.pid) 2>/dev/null || true; rm -f .run/serve.pid; fi
	@CITYGRID_DEMO=1 $(CITYGRID) services down

clean: stop                     ## remove local data (.run) — the demo city is generated again next time
	rm -rf .run
