# streetorder. On a fresh clone with ../shared beside it:
#   make demo   creates .venv if missing, installs, scans sample photos, writes a report
#   make test   creates .venv if missing, installs, runs the whole test suite
#   make setup  (root, Debian) system packages: a CJK font for synthetic flyers (vision/data/flyers/)
# The install is redone whenever pyproject.toml changes (the stamp file records the last one).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint setup postgres browser labelstudio rtsp

setup:
	fc-list :lang=zh file | grep -q . || (apt-get update && apt-get install -y fonts-wqy-microhei fonts-wqy-zenhei fonts-arphic-ukai)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[dev]'
	touch $(INSTALLED)

demo: $(INSTALLED)
	$(PY) -m serve.cli.demo

test: $(INSTALLED) postgres browser labelstudio rtsp
	$(PY) -m pytest

# The storage and API tests also run on a real PostgreSQL that tests/conftest.py starts and stops;
# without the server (not root, no apt) they are skipped with that reason.
postgres:
	@command -v pg_ctl >/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  { [ "$$(id -u)" = 0 ] && (apt-get install -y postgresql || (apt-get update && apt-get install -y postgresql)); } || \
	  echo "PostgreSQL not installed: its tests will be skipped"

# The stream tests read a real RTSP server: GStreamer's (tests/rtsp_server.py, run by Debian's python3
# with its GObject bindings); without it (not root, no apt) that test is skipped with that reason.
RTSP_PACKAGES := python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
rtsp:
	@/usr/bin/python3 -c "import gi; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null || \
	  { [ "$$(id -u)" = 0 ] && (apt-get install -y --no-install-recommends $(RTSP_PACKAGES) || \
	    (apt-get update && apt-get install -y --no-install-recommends $(RTSP_PACKAGES))); } || \
	  echo "GStreamer's RTSP server not installed: the RTSP stream test will be skipped"

# The web console's end-to-end tests drive Debian's chromium through chromedriver (a CJK font for
# the Chinese screenshots); without them (not root, no apt) those tests are skipped with that reason.
BROWSER_PACKAGES := chromium chromium-driver fonts-wqy-microhei
browser:
	@{ command -v chromium && command -v chromedriver; } >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && (apt-get install -y --no-install-recommends $(BROWSER_PACKAGES) || \
	    (apt-get update && apt-get install -y --no-install-recommends $(BROWSER_PACKAGES))); } || \
	  echo "chromium not installed: the console's browser tests will be skipped"

# The annotators' loop test (tests/test_labelstudio_server.py) runs a real Label Studio from PyPI in a
# virtualenv of its own (it pins Django and much else, so never in .venv); created once, marked
# complete by .installed. Without it (no PyPI) that test is skipped with this reason. sentry-sdk 3
# (which pip picks for it) stops Label Studio 1.23 at its start: "Unknown option 'send_default_pii'".
LABELSTUDIO_VERSION := 1.23.2
LABELSTUDIO_VENV ?= $(HOME)/.cache/streetorder/labelstudio-venv
labelstudio:
	@test -f $(LABELSTUDIO_VENV)/.installed || \
	  { rm -rf $(LABELSTUDIO_VENV) && $(PYTHON) -m venv $(LABELSTUDIO_VENV) && \
	    $(LABELSTUDIO_VENV)/bin/pip install -q label-studio==$(LABELSTUDIO_VERSION) 'sentry-sdk<3' && \
	    touch $(LABELSTUDIO_VENV)/.installed; } || \
	  echo "Label Studio not installed: tests/test_labelstudio_server.py will be skipped"

lint: $(INSTALLED)
	$(VENV)/bin/ruff check vision serve tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
