# Shortcuts for the README's two commands (scripts/run, scripts/test) and the linters (Python and web/).
.PHONY: run test test-fast check clean

run:
	./scripts/run

test:
	./scripts/test

# Unit and hub tests only (no scenarios, no browser): the quick loop while working. Four workers: these
# tests mostly wait on the hub processes they start, so two cores keep four busy (1:40 against 2:30).
test-fast:
	./scripts/test tests/unit tests/hub -n 4

PURE_CORES := server/protocol.py server/auth.py server/errors.py server/config.py server/hubs/timers.py \
	server/hubs/ratelimit.py server/hms/tokens.py server/allocation/planner.py server/allocation/planner_proctors.py \
	server/recording/monitor/intervals.py server/recording/monitor/timeline.py server/recording/archive/admission.py \
	server/recording/monitor/witnesses.py server/recording/monitor/compaction.py server/lti/messages.py \
	server/api/lti_config.py server/lti/acs_rules.py \
	server/recording/backfill/plan.py server/recording/backfill/webm.py server/recording/backfill/checks.py \
	load_tests/scenario/model.py load_tests/scenario/loading.py load_tests/scenario/schedule.py \
	load_tests/judge/coverage.py load_tests/judge/detection.py load_tests/judge/verdict.py \
	load_tests/judge/node_kill.py load_tests/judge/backfill.py load_tests/backfill/local_copy.py \
	server/hostevents/catalog.py server/hostevents/schedule.py server/hostevents/signing.py

check:
	./scripts/test --co -q >/dev/null
	.venv/bin/ruff format --check server tests load_tests
	.venv/bin/ruff check server tests load_tests
	.venv/bin/mypy $(PURE_CORES)
	cd web && node_modules/.bin/tsc -p tsconfig.json
	cd web && node_modules/.bin/eslint .

clean:
	rm -rf .venv .pytest_cache
