# prescientfs — see README.md.
SHELL := /bin/bash
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
MINIO_VERSION := v0.0.0-20260212201848-7aac2a2c5b7c
export PATH := $(PATH):$(GOBIN)
BIN := bin/prescientfs
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# How long each fuzz target runs: a count of executions ("20000x"), not a
# duration. Go 1.26's fuzz coordinator can fail a run with "context deadline
# exceeded" when a duration ends (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME ?= 50000x
# TestQGIS fails instead of skipping when PyQGIS is missing (deps installs
# it); `make test PRESCIENTFS_REQUIRE_QGIS=` lets it skip.
export PRESCIENTFS_REQUIRE_QGIS ?= 1
# How long `make soak` runs TestSoak (a Go duration; 60 s inside `make test`).
SOAK ?= 10m

.PHONY: all build deps test test-repeat unit e2e soak fuzz bench lint demo clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/prescientfs

# deps installs what the tests, the demo and the benchmarks need when it is
# missing: FUSE 3, GDAL, QGIS with its Python bindings (Debian packages; needs
# root or sudo) and a pinned MinIO.
deps:
	@need=""; \
	command -v fusermount3 >/dev/null || need="$$need fuse3"; \
	command -v gdal_translate >/dev/null || need="$$need gdal-bin"; \
	command -v qgis >/dev/null || need="$$need qgis"; \
	dpkg -s python3-qgis >/dev/null 2>&1 || need="$$need python3-qgis"; \
	if [ -n "$$need" ]; then \
		echo "installing:$$need"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$need; \
	fi
	@if [ -z "$$MINIO_BIN" ] && ! command -v minio >/dev/null; then \
		echo "installing MinIO $(MINIO_VERSION) (compiles; takes a few minutes once)"; \
		$(GO) install github.com/minio/minio@$(MINIO_VERSION); \
	fi

# test: unit tests and the end-to-end suite (real MinIO, STAC server, FUSE, GDAL), all with -race.
test: deps
	$(GO) test -race -count=1 -p 1 -timeout 25m ./...

# test-repeat: the e2e package N times in a row (make test-repeat N=5), each
# run a fresh process with fresh servers; prints every run's result and time
# and fails if any run failed. A test that fails one run in N is a bug.
N ?= 5
test-repeat: deps
	@fails=0; for i in $$(seq 1 $(N)); do \
		start=$$(date +%s); \
		if $(GO) test -race -count=1 -timeout 25m ./e2e/ > .test-repeat-$$i.log 2>&1; then res=PASS; else res=FAIL; fails=$$((fails+1)); fi; \
		echo "run $$i/$(N): $$res in $$(( $$(date +%s) - start )) s (log: .test-repeat-$$i.log)"; \
		[ $$res = PASS ] || grep -E '^(--- FAIL|FAIL|panic)' .test-repeat-$$i.log | head -20; \
	done; \
	echo "$$fails of $(N) runs failed"; [ $$fails = 0 ]

# soak: TestSoak alone for SOAK (make soak SOAK=30m): 32 readers over 250+
# files with 5 s credentials renewing and MinIO restarted mid-run; prints
# its figures. Not part of `make test`, which runs it for 60 s.
soak: deps
	PRESCIENTFS_SOAK=$(SOAK) $(GO) test -race -count=1 -timeout 0 -run '^TestSoak$$' -v ./e2e/

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: deps
	$(GO) test -race -count=1 -timeout 25m -v ./e2e/

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzSafeName$$' -fuzztime $(FUZZTIME) ./stacindex/
	$(GO) test -run '^$$' -fuzz '^FuzzResolve$$' -fuzztime $(FUZZTIME) ./stacindex/
	$(GO) test -run '^$$' -fuzz '^FuzzParseItem$$' -fuzztime $(FUZZTIME) ./stacindex/
	$(GO) test -run '^$$' -fuzz '^FuzzPages$$' -fuzztime $(FUZZTIME) ./stacindex/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./fs/objread/cogtile/

# bench: the real stack, 1 GiB objects and a >=1 GiB COG; prints ratios against
# direct aws-sdk-go-v2 reads in the same run. Never part of `make test`.
bench: deps build
	$(GO) run ./e2e/cmd/bench -bin $(BIN) -dir .bench

# lint: gofmt, vet, staticcheck, gosec, and go.mod tidy. gosec checks the
# shipped code (cmd/, fs/, creds/, stacindex/); e2e/ (the test harness, its
# servers and e2e/cmd/bench) is not shipped and is excluded. A finding is
# fixed, or justified on its line: `// #nosec G115 -- why it cannot happen`.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	$(GO) run github.com/securego/gosec/v2/cmd/gosec@v2.30.0 -quiet -exclude-dir=e2e ./...
	@$(GO) mod tidy -diff

# demo: the local stack with sample imagery, mounted at ./mnt; Ctrl-C tears it down.
demo: deps build
	./e2e/demo.sh $(BIN) mnt

clean:
	rm -rf bin .bench .demo .test-repeat-*.log
