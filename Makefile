# bluegreen: `make demo` takes a bare Debian machine (as root) to a finished release
# 1.0.0 -> 2.0.0 on the lab; `make test` runs the whole suite. Each target says what
# it installs before it installs it.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BLUEGREEN := $(BIN)/bluegreen
# What the demo needs on the controller; the tests also run a real nginx, promtool and a
# browser that renders the HTML report.
DEMO_PACKAGES := docker.io mmdebstrap openssh-client
TEST_PACKAGES := nginx-light prometheus chromium age
SYSTEM_PACKAGES := $(DEMO_PACKAGES) $(TEST_PACKAGES)
DEMO_VERSIONS := 1.0.0 2.0.0
SAMPLE_VERSIONS := 1.0.0 2.0.0 2.1.0 2.0.1+crash 2.0.2+http500 2.0.3+errors30.after8 2.0.4+slow1500 \
  2.0.3+errors30.after200req 2.0.4+slow1500.after200req 2.0.5+migfail 2.0.6+breaking \
  2.0.7+cpu20.after200req 2.0.8+leak1.after200req 2.0.9+tracebacks.after200req \
  2.0.10+lag70.after200req 2.0.11+dependency 2.0.12+lag100
DJANGO_VERSIONS := 1.0.0 2.0.0
# A Wagtail site nobody on this project wrote: what `wagtail start` makes from PyPI's
# wagtail (examples/third-party/wagtailsite/inventory-vars.yml), and the same site upgraded to 7.1.
WAGTAIL := 7.0.10
WAGTAIL_SITE := build/wagtailsite
WAGTAIL_VERSIONS := 1.0.0 1.1.0
# A Flask + Alembic service nobody on this project wrote, from its published sdists as
# they are (examples/third-party/ihatemoney/): one real migration between the versions.
IHATEMONEY_VERSIONS := 7.1.1 7.2.1
LABS := lab lab-single lab-django lab-django-single lab-fleet
DOCKERD_LOG := /var/log/bluegreen-dockerd.log
# The base image of `bluegreen build --image` here, where no registry is reachable: Debian
# 12 minbase with python3 and its venv (and the pip wheel the release installs run pip from).
RUNTIME_IMAGE := bluegreen-runtime:bookworm
IMAGE_VERSIONS := 1.0.0 2.0.0 2.0.3+errors30.after200req

.PHONY: help host-limits deps demo-deps docker venv test-venv artifacts demo-artifacts lab-image wagtail-artifacts ihatemoney-artifacts lab second-labs fresh-lab demo test lint unit integration molecule bench clean collection runtime-image image-artifacts

help:
	@echo "make demo   - install what is missing, start the lab, release 1.0.0 then 2.0.0"
	@echo "make test   - lint, unit tests, lab integration tests and the molecule scenario"
	@echo "make deps   - install $(SYSTEM_PACKAGES) and start the Docker engine (root)"
	@echo "make bench  - run the benchmarks in bench/ against the lab"
	@echo "make clean  - remove the lab containers, the venv and built artifacts"

# $(1): Debian packages installed when missing.
define install_packages
missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then \
  echo "installing system packages:$$missing"; \
  [ "$$(id -u)" = 0 ] || { echo "make deps must run as root to install:$$missing"; exit 2; }; \
  apt-get update -qq; \
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
fi
endef

demo-deps: docker
	@$(call install_packages,$(DEMO_PACKAGES))

deps: docker
	@$(call install_packages,$(SYSTEM_PACKAGES))

# Every systemd container takes inotify instances from the host's per-user budget (128
# by default); with all the labs and molecule up, containers exit 255 without more.
host-limits:
	@if [ "$$(sysctl -n fs.inotify.max_user_instances)" -lt 1024 ]; then \
	  sysctl -w fs.inotify.max_user_instances=1024 >/dev/null \
	  || echo "warning: could not raise fs.inotify.max_user_instances; lab containers may exit"; \
	fi

# The engine is started by hand where no init system manages it (CI, containers).
docker: host-limits
	@if ! command -v dockerd >/dev/null; then \
	  echo "installing the Docker engine (docker.io)"; \
	  [ "$$(id -u)" = 0 ] || { echo "installing docker.io needs root"; exit 2; }; \
	  apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null; \
	fi
	@if ! docker info >/dev/null 2>&1; then \
	  echo "starting dockerd (log: $(DOCKERD_LOG))"; \
	  nohup dockerd >$(DOCKERD_LOG) 2>&1 & \
	  for i in $$(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done; \
	  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see $(DOCKERD_LOG)"; exit 1; }; \
	fi

# bluegreen and Ansible: what the demo and the commands need.
venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@echo "creating the virtualenv $(VENV) (bluegreen, Ansible)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -e .
	touch $@

# What the tests add: pytest, molecule, the linters and the example apps.
test-venv: $(VENV)/.installed-test

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml examples/sampleapp/pyproject.toml examples/djangoapp/pyproject.toml
	@echo "adding the test tools and the example apps to $(VENV) (pytest, molecule, ansible-lint, ruff)"
	$(BIN)/pip install -q --disable-pip-version-check -e '.[test]' -e examples/sampleapp -e examples/djangoapp
	touch $@

# One artifact per file, so that `make -j` builds them side by side (a build waits on
# the package index about half its time). An artifact older than any file of its example
# is rebuilt (--force): a version's migrations come from the source tree, so a stale
# build would release the wrong schema.
example_sources = $(shell find examples/$(1) -type f -not -path '*.egg-info*' -not -path '*__pycache__*')

artifacts/sampleapp-%.tar.gz: $(call example_sources,sampleapp) | venv
	$(BLUEGREEN) build examples/sampleapp --version "$*" --force

artifacts/djangoapp-%.tar.gz: $(call example_sources,djangoapp) | venv
	$(BLUEGREEN) build examples/djangoapp --version "$*" --force

demo-artifacts: $(DEMO_VERSIONS:%=artifacts/sampleapp-%.tar.gz)

artifacts: $(SAMPLE_VERSIONS:%=artifacts/sampleapp-%.tar.gz) $(DJANGO_VERSIONS:%=artifacts/djangoapp-%.tar.gz)

# The site is generated by wagtail's own `wagtail start` in a virtualenv of its own, and
# built as it is (requirements.txt only) plus gunicorn, as its Dockerfile does.
$(WAGTAIL_SITE)/manage.py:
	@echo "generating a Wagtail $(WAGTAIL) site with wagtail start ($(WAGTAIL_SITE))"
	rm -rf build/wagtail-venv $(WAGTAIL_SITE)
	$(PYTHON) -m venv build/wagtail-venv
	build/wagtail-venv/bin/pip install -q --disable-pip-version-check 'wagtail==$(WAGTAIL)'
	mkdir -p $(WAGTAIL_SITE)
	build/wagtail-venv/bin/wagtail start wagtailsite $(WAGTAIL_SITE)

# 1.0.0 is the site as generated (wagtail 7.0); 1.1.0 is the team's upgrade to wagtail
# 7.1, its requirements line changed and nothing else, which brings wagtail's own new
# migrations (a model, and a NOT NULL field on user profiles).
artifacts/wagtailsite-1.0.0.tar.gz: | test-venv $(WAGTAIL_SITE)/manage.py
	$(BLUEGREEN) build $(WAGTAIL_SITE) --name wagtailsite --version 1.0.0 --with gunicorn --force

artifacts/wagtailsite-1.1.0.tar.gz: | test-venv $(WAGTAIL_SITE)/manage.py
	rm -rf build/wagtailsite-1.1.0
	cp -a $(WAGTAIL_SITE) build/wagtailsite-1.1.0
	sed -i 's/^wagtail>=7.0,<7.1$$/wagtail>=7.1,<7.2/' build/wagtailsite-1.1.0/requirements.txt
	grep -qx 'wagtail>=7.1,<7.2' build/wagtailsite-1.1.0/requirements.txt
	$(BLUEGREEN) build build/wagtailsite-1.1.0 --name wagtailsite --version 1.1.0 --with gunicorn --force

wagtail-artifacts: $(WAGTAIL_VERSIONS:%=artifacts/wagtailsite-%.tar.gz)

# Neither gunicorn nor a PostgreSQL driver is among its requirements. Its lab test runs
# it in the container runtime: the artifacts carry an image (the Dockerfile bluegreen
# generates, on the local base image).
artifacts/image/ihatemoney-%.tar.gz: | venv runtime-image
	@echo "fetching ihatemoney $*'s sdist from the package index, then building it"
	rm -rf build/ihatemoney-$* build/ihatemoney-sdist-$*
	$(BIN)/pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
	  'ihatemoney==$*' -d build/ihatemoney-sdist-$*
	tar -xzf build/ihatemoney-sdist-$*/ihatemoney-$*.tar.gz -C build
	$(BLUEGREEN) build build/ihatemoney-$* --version "$*" --with gunicorn --with psycopg2-binary \
	  --image --base-image $(RUNTIME_IMAGE) --output artifacts/image --force

ihatemoney-artifacts: $(IHATEMONEY_VERSIONS:%=artifacts/image/ihatemoney-%.tar.gz)

# Built once, locally (about 30 s); a failed build leaves no half image behind, which the
# check would then take for a finished one.
runtime-image: demo-deps
	@docker image inspect $(RUNTIME_IMAGE) >/dev/null 2>&1 || { \
	  echo "building $(RUNTIME_IMAGE) with mmdebstrap (about 30 s, once)"; \
	  mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
	    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	    --dpkgopt='path-exclude=/usr/share/locale/*' \
	    --customize-hook='rm -rf "$$1"/var/lib/apt/lists/*' bookworm - \
	  | docker import --change 'CMD ["python3"]' - $(RUNTIME_IMAGE) >/dev/null \
	  || { docker image rm -f $(RUNTIME_IMAGE) >/dev/null 2>&1; exit 1; }; \
	}

# Sample versions with a container image in them, in a directory of their own (the same
# file names as the artifacts above): with the Dockerfile bluegreen generates, but 2.0.0
# with the sample's own, so that both are released. The container runtime's lab test also
# releases the bad 2.0.3.
artifacts/image/sampleapp-%.tar.gz: $(call example_sources,sampleapp) | venv runtime-image
	$(BLUEGREEN) build examples/sampleapp --version "$*" --image --base-image $(RUNTIME_IMAGE) \
	  --output artifacts/image --force

artifacts/image/sampleapp-2.0.0.tar.gz: $(call example_sources,sampleapp) | venv runtime-image
	$(BLUEGREEN) build examples/sampleapp --version 2.0.0 --image --base-image $(RUNTIME_IMAGE) \
	  --dockerfile examples/sampleapp/Dockerfile --output artifacts/image --force

image-artifacts: $(IMAGE_VERSIONS:%=artifacts/image/sampleapp-%.tar.gz)

lab: deps venv
	$(BLUEGREEN) lab up $(LABS)

# The tests also run on second copies of the multi-host and single-host labs, so that
# more of them run side by side (see INTEGRATION_GROUPS): the same inventories with other
# ports, under inventories/scratch-* (not kept in git).
SECOND_LABS := scratch-lab2 scratch-single2
second-labs:
	@rm -rf inventories/scratch-lab2 inventories/scratch-single2
	@cp -r inventories/lab inventories/scratch-lab2
	@sed -i -E -e 's/ansible_port: 220([0-9])/ansible_port: 223\1/' \
	  -e 's/\{80: 8080\}/{80: 8084}/' -e 's/\{5432: 15432\}/{5432: 15433}/' \
	  inventories/scratch-lab2/hosts.yml
	@cp -r inventories/lab-single inventories/scratch-single2
	@sed -i -E -e 's/ansible_port: 2211/ansible_port: 2241/' -e 's/\{80: 8081, 443: 8443, 8092: 18092\}/{80: 8085, 443: 8445, 8092: 18096}/' \
	  inventories/scratch-single2/hosts.yml

# Tests start from fresh lab containers (the image is cached): releases installed by an
# earlier run, from other builds of the same versions, must not decide the outcome.
fresh-lab: deps test-venv second-labs
	$(BLUEGREEN) lab down $(LABS) $(SECOND_LABS)
	$(BLUEGREEN) lab up $(LABS) $(SECOND_LABS)

# Only what the demo needs: its packages, bluegreen, two artifacts and one lab.
# Users' traffic runs through both releases (curl, about 20 requests/s), so the
# post-switch analysis judges real answers and the releases end verified, not unverified.
demo: demo-deps venv demo-artifacts
	$(BLUEGREEN) lab up lab
	@echo "sending user traffic to http://127.0.0.1:8080/ while the releases run"
	@( while :; do curl -s -o /dev/null --max-time 5 http://127.0.0.1:8080/ || true; \
	     sleep 0.05; done ) & traffic=$$!; trap 'kill $$traffic' EXIT; \
	  $(BLUEGREEN) release --version 1.0.0 && $(BLUEGREEN) release --version 2.0.0
	$(BLUEGREEN) status

lint: test-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint --profile production --offline -q
	@# ansible-doc renders every module: tests/unit/test_collection.py checks it, in one call.
	$(BIN)/python -m bluegreen.yaml_windows  # at most 10 repeated 8-line windows in the YAML that runs

# The bluegreen.release collection laid out from library/, module_utils/, roles/ and
# playbooks/ (src/bluegreen/collection.py): build/bluegreen-release-<version>.tar.gz.
collection: test-venv
	$(BIN)/python -m bluegreen.collection --output-dir build

unit: test-venv
	$(BIN)/pytest -q tests/unit

# The labs are independent, so their tests run side by side: one pytest per lab group
# (tests/integration/conftest.py puts each test in the group of the lab it uses); each
# group's output goes to test-artifacts/integration-<group>.log and is shown at the end.
# Groups lab2 and single2 run their tests on the second copies of those labs.
INTEGRATION_GROUPS := lab lab2 single single2 django fleet
# The django group builds the Wagtail site's and ihatemoney's artifacts first, and the
# single group the container images, while the others run.
integration: fresh-lab artifacts
	@mkdir -p test-artifacts
	@pids=""; for g in $(INTEGRATION_GROUPS); do \
	  case $$g in \
	    lab2) labs="BLUEGREEN_TEST_LAB=scratch-lab2" ;; \
	    single2) labs="BLUEGREEN_TEST_SINGLE=scratch-single2" ;; \
	    *) labs="" ;; \
	  esac; \
	  prepare=true; [ $$g = django ] && prepare="$(MAKE) --no-print-directory wagtail-artifacts ihatemoney-artifacts"; \
	  [ $$g = single ] && prepare="$(MAKE) --no-print-directory image-artifacts"; \
	  { $$prepare && env $$labs BLUEGREEN_TEST_GROUP=$$g $(BIN)/pytest -q -p no:cacheprovider --durations=0 -m "group_$$g" tests/integration; } \
	    >test-artifacts/integration-$$g.log 2>&1 & pids="$$pids $$!:$$g"; \
	done; status=0; \
	for entry in $$pids; do \
	  pid=$${entry%%:*}; g=$${entry##*:}; \
	  if wait $$pid; then echo "integration ($$g): passed"; else echo "integration ($$g): FAILED"; status=1; fi; \
	  cat test-artifacts/integration-$$g.log; \
	done; exit $$status

molecule: deps test-venv artifacts
	PATH="$(CURDIR)/$(BIN):$$PATH" BLUEGREEN_LAB_IMAGE="$$($(BLUEGREEN) lab image)" $(BIN)/molecule test

# Built once, before the jobs that share it start.
lab-image: deps test-venv
	@$(BLUEGREEN) lab image >/dev/null

# Most of a lab test is waiting (SSH round trips, analysis windows, health checks), so
# the unit tests start first and run beside everything else; the lint, the artifacts, the
# container images and the lab image are made side by side, then the molecule scenario
# runs beside the lab tests: not beside image builds on the machine's engine, during which
# one of molecule's tasks got an empty answer from that engine in ci53. Each one's output
# is kept in test-artifacts/ and shown when it fails.
test: deps test-venv
	@mkdir -p test-artifacts
	@$(MAKE) --no-print-directory unit >test-artifacts/unit.log 2>&1 & unit=$$!; \
	$(MAKE) --no-print-directory -j3 --output-sync=target lint artifacts lab-image \
	  image-artifacts ihatemoney-artifacts \
	  || { kill $$unit; exit 1; }; \
	$(MAKE) --no-print-directory molecule >test-artifacts/molecule.log 2>&1 & molecule=$$!; \
	status=0; $(MAKE) --no-print-directory integration || status=1; \
	wait $$unit || { echo "unit tests failed:"; tail -n 60 test-artifacts/unit.log; status=1; }; \
	tail -n 3 test-artifacts/unit.log; \
	wait $$molecule || { echo "molecule failed:"; tail -n 80 test-artifacts/molecule.log; status=1; }; \
	tail -n 3 test-artifacts/molecule.log; \
	exit $$status

bench: lab artifacts
	$(BIN)/python bench/switch_under_load.py
	$(BIN)/python bench/rollback_time.py

clean:
	-$(BLUEGREEN) lab down $(LABS) $(SECOND_LABS)
	rm -rf $(VENV) artifacts state build
