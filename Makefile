# Doorbell MDM. Two commands matter: `make run` and `make test`.
GO      ?= go
BIN     := bin/doorbell
APT_PKGS := mosquitto-clients mosquitto

.PHONY: run test build dist deps vet fmt-check clean

## run: start the server with its embedded defaults (HTTP :8080, MQTT :1883, data in ./doorbell-data)
run:
	$(GO) run ./cmd/doorbell serve

## build: the single binary in bin/
build:
	$(GO) build -o $(BIN) ./cmd/doorbell

## dist: static binaries for Linux (amd64, arm64) and Android (arm64) in dist/
DIST_TARGETS := linux/amd64 linux/arm64 android/arm64
dist:
	@for t in $(DIST_TARGETS); do \
	  os=$${t%/*}; arch=$${t#*/}; out=dist/doorbell-$$os-$$arch; \
	  echo "building $$out"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '-s -w' -o $$out ./cmd/doorbell || exit 1; \
	done

## test: install what the suite needs, then vet and run every test
test: deps fmt-check vet
	$(GO) test -race -count=1 -timeout 12m ./...

## deps: Go modules, and Debian packages the tests use (installed when root)
deps:
	$(GO) mod download
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (run as root or install them)"; exit 1; fi; \
	fi

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

clean:
	rm -rf bin dist/doorbell-linux-* dist/doorbell-android-*
