# CityGrid Command — the two commands: `make demo` and `make test`.
SHELL := /bin/bash
CITYGRID := .venv/bin/citygrid
PORT ?= $(or $(CITYGRID_HTTP_PORT),8000)

.PHONY: setup demo test bench stop clean

setup:                          ## install Debian packages, the virtualenv and vendored JS (idempotent)
	@scripts/setup.sh

demo: export CITYGRID_DEMO = 1
# Shorter patrol alarm thresholds, so the simulator's scripted incidents show within minutes.
demo: export CITYGRID_STATIONARY_MINUTES ?= 5
demo: export CITYGRID_STATIONARY_ESCALATE_MINUTES ?= 8
demo: export CITYGRID_OFFLINE_MINUTES ?= 3
demo: export CITYGRID_OUT_OF_AREA_ESCALATE_MINUTES ?= 3
# A bag left in front of a demo camera becomes a case after a minute (2 by default).
demo: export CITYGRID_DWELL_MINUTES ?= 1
demo: setup                     ## run the whole system on a seeded demo city
	@$(CITYGRID) services up
	@$(CITYGRID) db migrate
	@$(CITYGRID) demo seed
	@scripts/serve-bg.sh
	@scripts/start-bg.sh ingest $(CITYGRID) ingest --name demo
	@scripts/start-bg.sh simulate $(CITYGRID) simulate
	@scripts/start-bg.sh streams $(CITYGRID) cameras serve-streams
	@scripts/start-bg.sh video $(CITYGRID) video --name demo
	@echo ""
	@echo "CityGrid Command is running (demo city 攸县):"
	@echo "  map          http://127.0.0.1:$(PORT)/map      (admin / citygrid-demo)"
	@echo "  API docs     http://127.0.0.1:$(PORT)/docs"
	@echo "  health       http://127.0.0.1:$(PORT)/api/health"
	@echo "  devices      http://127.0.0.1:$(PORT)/devices  alarms http://127.0.0.1:$(PORT)/alarms"
	@echo "  simulated    16 inspectors and vehicles, 300 IoT devices with faults every half hour (.run/simulate.log)"
	@echo "  ingest       .run/ingest.log"
	@echo "  video wall   http://127.0.0.1:$(PORT)/wall   4 test cameras (.run/streams.log), analysed by .run/video.log"
	@echo "  emergency    http://127.0.0.1:$(PORT)/incidents  a waterlogging drill (演练) running; duty roster /duty (commander / citygrid-demo)"
	@echo "  stop it all  make stop"

test: setup                     ## run the whole suite against real PostGIS, Mosquitto and Chromium
	@.venv/bin/pytest -q

bench: setup                    ## measure the figures each issue names, beside same-run baselines
	@for b in bench/bench_*.py; do echo "== $$b"; .venv/bin/python $$b || exit 1; done

stop:                           ## stop the demo server and local services
	@for p in video streams simulate ingest serve; do if [ -f .run/$$p.pid ]; then kill $$(cat .run/$$p.pid) 2>/dev/null || true; rm -f .run/$$p.pid; fi; done
	@CITYGRID_DEMO=1 $(CITYGRID) services down

clean: stop                     ## remove local data (.run) — the demo city is generated again next time
	rm -rf .run
